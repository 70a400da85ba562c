#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "buf.h"
#include "evaluate.h"
#include "jsonpos.h"
#include "path.h"

/* Bounds on one PCRE2 match: far above what a lookup or a sane pattern needs,
 * far below what a catastrophic pattern would burn. Hitting one refuses the value. */
#define GW_REGEX_MATCH_LIMIT 100000
#define GW_REGEX_DEPTH_LIMIT 1000

/* ---- jansson's memory --------------------------------------------------- */

/* While a thread parses and validates a body, jansson allocates from that request's arena: no malloc and free per
 * value, and no walk of the tree to free it, since the arena's reset releases it. Everywhere else (rules, config,
 * other threads) jansson keeps using the heap. A document parsed in the window is never freed after it, and a value
 * from outside is never freed in it, so a free inside the window is always of arena memory. */
static __thread gw_arena_t *json_arena;

static void *json_alloc(size_t size)
{
    return json_arena != NULL ? gw_arena_alloc(json_arena, size) : malloc(size);
}

static void json_release(void *p)
{
    if (json_arena == NULL)
        free(p);
}

static void install_json_alloc(void)
{
    /* outside the window the functions are malloc and free: values allocated before this still free correctly */
    json_set_alloc_funcs(json_alloc, json_release);
}

static pthread_once_t json_alloc_once = PTHREAD_ONCE_INIT;

void gw_evaluator_init(gw_evaluator_t *ev, const gw_limits_t *limits)
{
    pthread_once(&json_alloc_once, install_json_alloc);
    gw_arena_init(&ev->arena);
    ev->limits = *limits;
    ev->policy = NULL;
    /* no captures are used: one pair suffices for every pattern */
    ev->match_data = pcre2_match_data_create(1, NULL);
    ev->match_context = pcre2_match_context_create(NULL);
    if (ev->match_data == NULL || ev->match_context == NULL)
        gw_fatal("out of memory (PCRE2 match state)");
    pcre2_set_match_limit(ev->match_context, GW_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(ev->match_context, GW_REGEX_DEPTH_LIMIT);
}

void gw_evaluator_dispose(gw_evaluator_t *ev)
{
    pcre2_match_data_free(ev->match_data);
    pcre2_match_context_free(ev->match_context);
    gw_arena_dispose(&ev->arena);
}

void gw_evaluator_reset(gw_evaluator_t *ev)
{
    gw_arena_reset(&ev->arena);
}

/* X-HTTP-Method-Override, trimmed and upper-cased as servers read it; NULL when absent or empty. */
static const char *override_method(gw_evaluator_t *ev, const gw_request_t *req, size_t *len)
{
    const char *s = req->method_override.base;
    size_t n = req->method_override.len;
    if (req->method_override.count == 0)
        return NULL;
    while (n > 0 && (*s == ' ' || *s == '\t'))
        ++s, --n;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        --n;
    if (n == 0 || n > 16)
        return NULL;
    char *upper = gw_arena_alloc(&ev->arena, n + 1);
    for (size_t i = 0; i < n; ++i)
        upper[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
    upper[n] = '\0';
    *len = n;
    return upper;
}

const gw_route_t *gw_evaluate_route(gw_evaluator_t *ev, const gw_ruleset_t *rules, const gw_request_t *req)
{
    size_t path_len, override_len = 0;
    /* the CRM may act on the overriding method: a route of either method validates the request, the
     * override's first, so that no combination of method and override escapes validation */
    const char *override = override_method(ev, req, &override_len);
    if (!gw_ruleset_has_method(rules, req->method, req->method_len) &&
        (override == NULL || !gw_ruleset_has_method(rules, override, override_len)))
        return NULL; /* e.g. a GET: no route of its method, so its path need not even be normalised */
    const char *path = gw_path_normalize(&ev->arena, req->path, req->path_len, &path_len);
    const gw_route_t *route = NULL;
    if (override != NULL)
        route = gw_ruleset_match(rules, override, override_len, path, path_len, ev->match_data, ev->match_context);
    if (route == NULL)
        route = gw_ruleset_match(rules, req->method, req->method_len, path, path_len, ev->match_data, ev->match_context);
    return route;
}

static gw_violation_t *add(gw_result_t *out, gw_violation_code_t code, gw_mode_t mode, const char *pointer)
{
    if (mode == GW_MODE_OFF)
        return NULL;
    gw_violation_t v = {.code = code, .mode = mode, .pointer = pointer, .limit = -1, .found = -1};
    return gw_violations_add(&out->violations, &v);
}

static const char *header_excerpt(gw_evaluator_t *ev, const gw_header_value_t *h)
{
    gw_buf_t buf = GW_BUF_INIT;
    gw_buf_append_excerpt(&buf, h->base, h->len, 40, 0);
    const char *s = gw_arena_strndup(&ev->arena, buf.base != NULL ? buf.base : "", buf.len);
    gw_buf_dispose(&buf);
    return s;
}

static void check_headers(gw_evaluator_t *ev, const gw_request_t *req, gw_result_t *out)
{
    const gw_mode_t mode = out->route->schema->modes[GW_KIND_HEADERS];
    out->framework_version = 1;
    if (req->framework_version.count != 0) {
        int v = req->framework_version.count == 1
                    ? gw_framework_version_parse(req->framework_version.base, req->framework_version.len,
                                                 ev->limits.max_framework_version)
                    : 0;
        if (v != 0) {
            out->framework_version = v;
        } else {
            gw_violation_t *viol = add(out, GW_V_FRAMEWORK_VERSION, mode, "REST-Framework-Version");
            if (viol != NULL) {
                viol->excerpt = header_excerpt(ev, &req->framework_version);
                viol->limit = ev->limits.max_framework_version;
                viol->actual = req->framework_version.count > 1 ? "sent more than once" : NULL;
            }
        }
    }
    if (req->upsert_mode.count != 0 &&
        (req->upsert_mode.count > 1 || !gw_upsert_mode_is_valid(req->upsert_mode.base, req->upsert_mode.len))) {
        gw_violation_t *viol = add(out, GW_V_UPSERT_MODE, mode, "Upsert-Mode");
        if (viol != NULL) {
            viol->excerpt = header_excerpt(ev, &req->upsert_mode);
            viol->actual = req->upsert_mode.count > 1 ? "sent more than once" : NULL;
        }
    }
}

static gw_violation_code_t parse_error_code(const json_error_t *jerr)
{
    switch (json_error_code(jerr)) {
    case json_error_invalid_utf8:
        return GW_V_INVALID_UTF8;
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return GW_V_NUL_CHARACTER;
    case json_error_duplicate_key:
        return GW_V_DUPLICATE_KEY;
    case json_error_numeric_overflow:
        return GW_V_NUMBER_OVERFLOW;
    case json_error_stack_overflow:
        return GW_V_TOO_DEEP;
    default:
        /* jansson reports lone and misordered surrogates as syntax errors */
        return strncmp(jerr->text, "invalid Unicode", 15) == 0 ? GW_V_INVALID_UNICODE_ESCAPE : GW_V_INVALID_JSON;
    }
}

static void add_parse_error(gw_evaluator_t *ev, const gw_request_t *req, const json_error_t *jerr, gw_result_t *out)
{
    gw_buf_t buf = GW_BUF_INIT;
    gw_json_pointer_at(req->body, req->body_len, (size_t)jerr->position, &buf);
    const char *pointer = gw_arena_strndup(&ev->arena, buf.base != NULL ? buf.base : "", buf.len);
    buf.len = 0;
    /* jansson's text quotes input ("near '...'"): it is untrusted, so it is escaped and capped */
    gw_buf_append_excerpt(&buf, jerr->text, strlen(jerr->text), 100, 1);
    gw_buf_printf(&buf, " (line %d, column %d)", jerr->line, jerr->column);
    gw_violation_t *viol = add(out, parse_error_code(jerr), GW_MODE_ENFORCE, pointer);
    if (viol != NULL) {
        viol->excerpt = gw_arena_strndup(&ev->arena, buf.base, buf.len);
        if (viol->code == GW_V_TOO_DEEP)
            viol->limit = (int64_t)ev->limits.max_depth;
    }
    gw_buf_dispose(&buf);
}

static void validate_body(gw_evaluator_t *ev, const gw_request_t *req, gw_result_t *out)
{
    if (req->body_len == 0) {
        add(out, GW_V_EMPTY_BODY, GW_MODE_ENFORCE, "");
        return;
    }
    json_error_t jerr;
    json_arena = &ev->arena; /* the document lives in the arena until the evaluator's next reset */
    /* JSON_DECODE_ANY: a scalar document is reported as "not an object", not as a syntax error */
    json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (doc == NULL) {
        json_arena = NULL;
        add_parse_error(ev, req, &jerr, out);
        return;
    }
    if (!json_is_object(doc)) {
        gw_violation_t *viol = add(out, GW_V_NOT_AN_OBJECT, GW_MODE_ENFORCE, "");
        if (viol != NULL)
            viol->actual = json_is_array(doc) ? "an array" : json_is_string(doc) ? "a string" : "a scalar";
    } else {
        gw_validate_params_t params = {.operation = out->route->operation,
                                       .max_depth = ev->limits.max_depth,
                                       .match_data = ev->match_data,
                                       .match_context = ev->match_context,
                                       .policy = ev->policy};
        gw_validate_document(out->route->schema, doc, &params, &out->violations);
    }
    json_arena = NULL; /* doc is not freed: the arena's reset releases it */
}

void gw_result_init_single(gw_result_t *result, gw_violation_t *v, int status)
{
    memset(result, 0, sizeof(*result));
    result->decision = GW_DECISION_REJECT;
    result->status = status;
    result->violations.items = v;
    result->violations.count = result->violations.total = result->violations.enforced = result->violations.max = 1;
}

void gw_evaluate(gw_evaluator_t *ev, const gw_route_t *route, const gw_request_t *req, gw_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->route = route;
    out->framework_version = 1;
    gw_violations_init(&out->violations, &ev->arena, ev->limits.max_violations);
    out->accepts_json = req->accept.count == 0 || gw_accept_allows_json(req->accept.base, req->accept.len);

    check_headers(ev, req, out);
    if (req->body_too_large || req->body_len > ev->limits.max_body) {
        /* structural: the body is not even read, whatever the mode */
        gw_violation_t *viol = add(out, GW_V_BODY_TOO_LARGE, GW_MODE_ENFORCE, "");
        if (viol != NULL) {
            viol->limit = (int64_t)ev->limits.max_body;
            viol->found = req->body_too_large ? -1 : (int64_t)req->body_len;
        }
    } else if (req->content_type.count != 1 ||
               !gw_content_type_is_json(req->content_type.base, req->content_type.len)) {
        gw_violation_t *viol = add(out, GW_V_MEDIA_TYPE, GW_MODE_ENFORCE, "Content-Type");
        if (viol != NULL) {
            viol->excerpt = req->content_type.count != 0 ? header_excerpt(ev, &req->content_type) : NULL;
            viol->actual = req->content_type.count == 0 ? "missing" : req->content_type.count > 1 ? "sent more than once" : NULL;
        }
    } else {
        validate_body(ev, req, out);
    }

    if (out->violations.enforced != 0) {
        out->decision = GW_DECISION_REJECT;
        out->status = out->violations.status;
    } else {
        out->decision = out->violations.total != 0 ? GW_DECISION_REPORT : GW_DECISION_FORWARD;
    }
}

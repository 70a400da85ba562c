/*
 * fuzz_rules: bytes are a rule file, compiled by gw_ruleset_load_buffer().
 *
 * Invariants, beyond "no crash, no sanitizer report":
 *  - either a rule set comes back and the error is untouched, or NULL comes
 *    back with an error text that starts with the file name given;
 *  - a rule set has a 64-hex-digit digest, a canonical form that is a JSON
 *    object and a `rules show` listing, and every route is usable: its
 *    template path routes, and a few fixed bodies evaluate on it without a
 *    crash (the decision is then consistent with the violations);
 *  - a value deep down is validated: for each route, a document descending
 *    through schema'd objects and arrays as deep as the schemas allow (about
 *    300 levels for a recursive schema) with an enforced violation at the
 *    bottom is rejected with the largest limits.max-depth a configuration
 *    accepts (1000);
 *  - it is released without leaks (LeakSanitizer in the fuzz and ASan builds).
 */
#include "config.h"
#include "fuzz_util.h"
#include "rules.h"

#define NAME "fuzz-rules.json"

static gw_evaluator_t ev, ev_deep;
static int initialised;

static const char *const bodies[] = {
    "{}",
    "{\"a\":\"x\",\"b\":1,\"c\":true,\"d\":null,\"e\":[{\"f\":\"2024-02-29T10:00:00Z\"}],\"g\":{\"h\":1.5}}",
    "{\"Description\":\"\\u00e9\\ud83d\\ude00\",\"ObjectTypeCd\":\"MOO_OPTY\",\"links\":[],\"StartTime\":\"2024-01-01\"}",
    "[1]",
};

/* The template with each {param} replaced by a segment that usually matches it. */
static void concrete_path(const char *tmpl, gw_buf_t *out)
{
    for (const char *p = tmpl; *p != '\0'; ++p) {
        if (*p == '{' && strchr(p, '}') != NULL) {
            gw_buf_appendz(out, "1");
            p = strchr(p, '}');
        } else {
            gw_buf_append(out, p, 1);
        }
    }
}

/* The largest limits.max-depth the configuration loader accepts (1000 when this was written). */
static size_t largest_max_depth(void)
{
    size_t lo = 1, hi = (size_t)1 << 20; /* lo is accepted; hi is not */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        char yaml[64];
        snprintf(yaml, sizeof(yaml), "limits:\n  max-depth: %zu\n", mid);
        gw_config_t *config = gw_config_load_text("depth.yaml", "/", yaml, strlen(yaml), NULL);
        if (config != NULL)
            lo = mid;
        else
            hi = mid;
        gw_config_destroy(config);
    }
    return lo;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!initialised) {
        gw_limits_t limits = GW_LIMITS_DEFAULT;
        limits.max_violations = 5;
        gw_evaluator_init(&ev, &limits);
        limits.max_depth = largest_max_depth();
        gw_evaluator_init(&ev_deep, &limits);
        initialised = 1;
    }
    return 0;
}

/* ---- deep values are validated too ---------------------------------------- */

/* A field that can be entered without a violation of its own: an object with a schema or an array of items. */
static const gw_field_t *descent_field(const gw_schema_t *schema)
{
    for (size_t i = 0; i < schema->nfields; ++i) {
        const gw_field_t *f = &schema->fields[i];
        if (!f->read_only && !f->create_only && f->schema != NULL &&
            (f->type == GW_TYPE_OBJECT || f->type == GW_TYPE_ARRAY))
            return f;
    }
    return NULL;
}

/* A member that is an enforced violation in this schema (wrong type, or unknown), or 0 when there is none. */
static int bad_member(const gw_schema_t *schema, json_t *obj)
{
    for (size_t i = 0; i < schema->nfields; ++i) {
        const gw_field_t *f = &schema->fields[i];
        if (f->read_only || f->create_only || f->type == GW_TYPE_ANY || f->modes[GW_KIND_TYPE] != GW_MODE_ENFORCE)
            continue;
        json_object_set_new(obj, f->name, f->type == GW_TYPE_STRING ? json_integer(1) : json_string("x"));
        return 1;
    }
    if (schema->unknown == GW_UNKNOWN_REJECT && schema->modes[GW_KIND_UNKNOWN] == GW_MODE_ENFORCE &&
        gw_schema_find(schema, "crmgate-fuzz-unknown", 20) == NULL) {
        json_object_set_new(obj, "crmgate-fuzz-unknown", json_true());
        return 1;
    }
    return 0;
}

/*
 * Builds, for a route's schema, a document that descends through schema'd
 * objects and arrays as deep as the schemas allow (a recursive schema: about
 * 300 levels) and holds an enforced violation at the bottom; judged as an
 * update (no required fields) with the largest max-depth a configuration may
 * set (1000), it must be rejected: found, or refused as too deep.
 */
static void check_deep(const gw_route_t *route)
{
    json_t *doc = json_object(), *obj = doc;
    const gw_schema_t *schema = route->schema;
    size_t depth = 1, bytes = 0;
    const gw_field_t *f;
    while (depth < 300 && bytes < 512 * 1024 && (f = descent_field(schema)) != NULL) {
        json_t *child = json_object();
        if (f->type == GW_TYPE_ARRAY) {
            json_object_set_new(obj, f->name, json_pack("[o]", child));
            depth += 2;
        } else {
            json_object_set_new(obj, f->name, child);
            depth += 1;
        }
        bytes += f->name_len + 8;
        obj = child;
        schema = f->schema;
    }
    if (bad_member(schema, obj)) {
        char *text = json_dumps(doc, JSON_COMPACT);
        FUZZ_CHECK(text != NULL, "cannot dump the deep document");
        gw_route_t update = *route;
        update.operation = GW_OP_UPDATE;
        gw_request_t req;
        memset(&req, 0, sizeof(req));
        req.method = route->method;
        req.method_len = strlen(route->method);
        req.path = route->path;
        req.path_len = strlen(route->path);
        req.content_type = (gw_header_value_t){"application/json", 16, 1};
        req.body = text;
        req.body_len = strlen(text);
        gw_result_t result;
        gw_evaluator_reset(&ev_deep);
        gw_evaluate(&ev_deep, &update, &req, &result);
        if (result.decision != GW_DECISION_REJECT && !fuzz_allowed("deep-values")) {
            fprintf(stderr, "==crmgate-fuzz== body (%zu levels): %.300s%s\n", depth, text, strlen(text) > 300 ? "..." : "");
            FUZZ_CHECK(0, "[deep-values] route %s %s: a violation %zu levels deep was not found (decision %d, %zu violations)",
                       route->method, route->path, depth, (int)result.decision, result.violations.total);
        }
        free(text);
    }
    json_decref(doc);
}

static void use(gw_ruleset_t *rules)
{
    const char *digest = gw_ruleset_digest(rules);
    FUZZ_CHECK(digest != NULL && strlen(digest) == 64 && strspn(digest, "0123456789abcdef") == 64, "bad digest \"%s\"",
               digest != NULL ? digest : "(null)");
    json_t *canonical = gw_ruleset_canonical(rules);
    FUZZ_CHECK(json_is_object(canonical), "the canonical form is not an object");
    json_decref(canonical);
    gw_buf_t shown = GW_BUF_INIT;
    gw_ruleset_show(rules, &shown);
    gw_buf_dispose(&shown);

    for (size_t i = 0; i < gw_ruleset_route_count(rules); ++i) {
        const gw_route_t *route = gw_ruleset_route(rules, i);
        FUZZ_CHECK(route->method != NULL && route->path != NULL && route->path[0] == '/' && route->schema != NULL,
                   "route %zu is incomplete", i);
        gw_buf_t path = GW_BUF_INIT;
        concrete_path(route->path, &path);
        gw_request_t req;
        memset(&req, 0, sizeof(req));
        req.method = route->method;
        req.method_len = strlen(route->method);
        req.path = path.base;
        req.path_len = path.len;
        req.content_type = (gw_header_value_t){"application/json", 16, 1};
        gw_evaluator_reset(&ev);
        (void)gw_evaluate_route(&ev, rules, &req); /* may find an earlier route, or none for odd parameters */
        for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); ++b) {
            gw_result_t result;
            req.body = bodies[b];
            req.body_len = strlen(bodies[b]);
            gw_evaluator_reset(&ev);
            gw_evaluate(&ev, route, &req, &result);
            const gw_violations_t *list = &result.violations;
            FUZZ_CHECK(list->count <= list->total && list->enforced <= list->total, "inconsistent counts");
            FUZZ_CHECK((result.decision == GW_DECISION_REJECT) == (list->enforced != 0) &&
                           (result.decision == GW_DECISION_FORWARD) == (list->total == 0),
                       "decision %d with %zu violations, %zu enforced", (int)result.decision, list->total, list->enforced);
            for (size_t k = 0; k < list->count; ++k)
                FUZZ_CHECK(list->items[k].pointer != NULL, "a violation without a pointer");
            if (result.decision == GW_DECISION_REJECT)
                fuzz_check_rejection(&result);
        }
        gw_buf_dispose(&path);
        check_deep(route);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    LLVMFuzzerInitialize(NULL, NULL);
    gw_error_t err;
    gw_error_clear(&err);
    gw_ruleset_t *rules = gw_ruleset_load_buffer(NAME, (const char *)data, size, NULL, &err);
    if (rules == NULL) {
        FUZZ_CHECK(err.text[0] != '\0', "NULL without an error text");
        FUZZ_CHECK(fuzz_starts_with(err.text, NAME), "the error does not start with the file name: %s", err.text);
        FUZZ_CHECK(memchr(err.text, '\0', sizeof(err.text)) != NULL, "the error is not terminated");
        return 0;
    }
    FUZZ_CHECK(err.text[0] == '\0', "a rule set came back with an error: %s", err.text);
    use(rules);
    gw_ruleset_addref(rules);
    gw_ruleset_release(rules);
    gw_ruleset_release(rules);
    return 0;
}

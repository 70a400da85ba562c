/*
 * fuzz_body: a request body against the shipped rules (rules/ of the source
 * tree), as POST .../interactions (create, schema "interaction") and as PATCH
 * of an interactionReferences item (update, schema "interactionReference"),
 * with the default limits and with tight ones (depth 4, 3 violations stored).
 *
 * Invariants, beyond "no crash, no sanitizer report":
 *  - differential: the body is parsed again with jansson and judged by an
 *    independent model of rules/interactions.json (read with jansson, not with
 *    the rule compiler): FORWARD means the model finds nothing, REPORT means
 *    it finds only unknown fields of "report" schemas, REJECT means it finds
 *    something enforced (or the body does not parse);
 *  - the result is consistent: counts, decision, status (413 > 415 > 400);
 *  - every violation has a pointer that is "", a header name, or "/..." in
 *    valid UTF-8, and a field violation's pointer resolves in the document;
 *  - a rejection renders in text, Oracle JSON (version 4) and problem+json,
 *    each well-formed (see fuzz_check_rejection);
 *  - time: one evaluation takes less than 200 ms of CPU per 64 KiB.
 */
#include <time.h>
#include "fuzz_util.h"
#include "rules.h"

#ifndef CRMGATE_SOURCE_DIR
#error "CRMGATE_SOURCE_DIR must name the source tree (set by tests/CMakeLists.txt)"
#endif

#define BUDGET_NS_PER_64K (200LL * 1000 * 1000)

typedef struct st_target_t {
    const char *method;
    const char *path;
    const char *schema; /* the schema the route must resolve to */
    gw_operation_t operation;
    const gw_route_t *route;
} target_t;

static target_t targets[] = {
    {"POST", "/crmRestApi/resources/11.13.18.05/interactions", "interaction", GW_OP_CREATE, NULL},
    {"PATCH", "/crmRestApi/resources/11.13.18.05/interactions/300100123/child/interactionReferences/300100456",
     "interactionReference", GW_OP_UPDATE, NULL},
};

static gw_ruleset_t *rules;
static gw_evaluator_t ev_default, ev_tight;
static json_t *model;      /* rules/interactions.json as jansson reads it */
static json_t *model_schemas;
static int model_usable;   /* the model covers every mode the file sets */
static int check_timing = 1;

/* ---- the independent model ---------------------------------------------- */

enum { MODEL_OK = 0, MODEL_REPORT = 1, MODEL_VIOLATION = 2 };

typedef struct st_model_ctx_t {
    int update;
    const char *unit;
    size_t max_depth;
    int verdict;
    char why[256];
} model_ctx_t;

static void model_flag(model_ctx_t *m, int verdict, const char *why, const char *key)
{
    if (verdict > m->verdict) {
        m->verdict = verdict;
        snprintf(m->why, sizeof(m->why), "%s (member \"%.100s\")", why, key);
    }
}

/* Whether the file sets a mode anywhere: the model assumes every rule enforces. */
static int sets_a_mode(json_t *v)
{
    const char *key;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, key, child)
        {
            if (strcmp(key, "mode") == 0 || sets_a_mode(child))
                return 1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            if (sets_a_mode(child))
                return 1;
        }
    }
    return 0;
}

static int two_digits(const char *s, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return 0;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

/* ISO 8601 as the README documents it: YYYY-MM-DD, then for a date-time
 * 'T'hh:mm:ss[.fraction of 1-9 digits][Z|+hh:mm|-hh:mm]; seconds may be 60. */
static int model_iso8601(const char *s, size_t len, int with_time)
{
    int yh, yl, mo, d, h, mi, se;
    if (len < 10 || !two_digits(s, &yh) || !two_digits(s + 2, &yl) || s[4] != '-' || !two_digits(s + 5, &mo) ||
        s[7] != '-' || !two_digits(s + 8, &d))
        return 0;
    int y = yh * 100 + yl;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1)
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return 0;
    if (!with_time)
        return len == 10;
    if (len < 19 || s[10] != 'T' || !two_digits(s + 11, &h) || s[13] != ':' || !two_digits(s + 14, &mi) ||
        s[16] != ':' || !two_digits(s + 17, &se) || h > 23 || mi > 59 || se > 60)
        return 0;
    const char *p = s + 19, *end = s + len;
    if (p < end && *p == '.') {
        const char *digits = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            ++p;
        if (p == digits || p - digits > 9)
            return 0;
    }
    if (p == end)
        return 1;
    if (*p == 'Z')
        return p + 1 == end;
    int zh, zm;
    return (*p == '+' || *p == '-') && end - p == 6 && two_digits(p + 1, &zh) && p[3] == ':' && two_digits(p + 4, &zm) &&
           zh <= 23 && zm <= 59;
}

static size_t model_length(const char *s, size_t len, const char *unit)
{
    if (strcmp(unit, "bytes") == 0)
        return len;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t seq = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        n += strcmp(unit, "utf16") == 0 && seq == 4 ? 2 : 1;
        i += seq;
    }
    return n;
}

/* Nesting levels of v, the value itself counting 1 when it is a container. */
static size_t model_depth(json_t *v)
{
    size_t deepest = 0, i;
    const char *key;
    json_t *child;
    if (json_is_object(v)) {
        json_object_foreach(v, key, child)
        {
            size_t d = model_depth(child);
            if (d > deepest)
                deepest = d;
        }
        return deepest + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            size_t d = model_depth(child);
            if (d > deepest)
                deepest = d;
        }
        return deepest + 1;
    }
    return 0;
}

static void model_object(model_ctx_t *m, const char *schema_name, json_t *obj);

static void model_field(model_ctx_t *m, const char *key, json_t *def, json_t *v)
{
    const char *type = fuzz_member_string(def, "type");
    if (json_is_true(json_object_get(def, "readOnly"))) {
        model_flag(m, MODEL_VIOLATION, "a read-only field is present", key);
        return;
    }
    if (json_is_true(json_object_get(def, "createOnly")) && m->update) {
        model_flag(m, MODEL_VIOLATION, "a create-only field is present in an update", key);
        return;
    }
    if (json_is_null(v))
        return;
    if (strcmp(type, "string") == 0) {
        if (!json_is_string(v)) {
            model_flag(m, MODEL_VIOLATION, "not a string", key);
            return;
        }
        json_t *max = json_object_get(def, "maxLength");
        if (max != NULL && model_length(json_string_value(v), json_string_length(v), m->unit) > (size_t)json_integer_value(max))
            model_flag(m, MODEL_VIOLATION, "longer than maxLength", key);
        const char *lookup = fuzz_member_string(def, "lookup");
        if (lookup != NULL) {
            json_t *codes = json_object_get(json_object_get(model, "lookups"), lookup), *code;
            size_t i;
            int found = 0;
            json_array_foreach(codes, i, code)
            {
                found |= json_string_length(code) == json_string_length(v) &&
                         memcmp(json_string_value(code), json_string_value(v), json_string_length(v)) == 0;
            }
            if (!found)
                model_flag(m, MODEL_VIOLATION, "not a code of its lookup", key);
        }
        /* a pattern would need PCRE2 here: the shipped rules have none (checked at start-up) */
    } else if (strcmp(type, "int64") == 0 || strcmp(type, "int32") == 0) {
        if (!json_is_integer(v))
            model_flag(m, MODEL_VIOLATION, "not an integer", key);
        else if (type[3] == '3' && (json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX))
            model_flag(m, MODEL_VIOLATION, "out of the int32 range", key);
    } else if (strcmp(type, "number") == 0) {
        if (!json_is_number(v))
            model_flag(m, MODEL_VIOLATION, "not a number", key);
    } else if (strcmp(type, "bool") == 0) {
        if (!json_is_boolean(v))
            model_flag(m, MODEL_VIOLATION, "not a boolean", key);
    } else if (strcmp(type, "datetime") == 0 || strcmp(type, "date") == 0) {
        if (!json_is_string(v) || !model_iso8601(json_string_value(v), json_string_length(v), type[4] == 't'))
            model_flag(m, MODEL_VIOLATION, "not an ISO 8601 date or date-time", key);
    } else if (strcmp(type, "object") == 0) {
        if (!json_is_object(v))
            model_flag(m, MODEL_VIOLATION, "not an object", key);
        else if (fuzz_member_string(def, "schema") != NULL)
            model_object(m, fuzz_member_string(def, "schema"), v);
    } else if (strcmp(type, "array") == 0) {
        if (!json_is_array(v)) {
            model_flag(m, MODEL_VIOLATION, "not an array", key);
        } else if (fuzz_member_string(def, "items") != NULL) {
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item)
            {
                if (!json_is_object(item))
                    model_flag(m, MODEL_VIOLATION, "an array item is not an object", key);
                else
                    model_object(m, fuzz_member_string(def, "items"), item);
            }
        }
    }
}

static void model_object(model_ctx_t *m, const char *schema_name, json_t *obj)
{
    json_t *schema = json_object_get(model_schemas, schema_name);
    json_t *fields = json_object_get(schema, "fields");
    const char *unknown = fuzz_member_string(schema, "unknown-fields");
    const char *key;
    json_t *v, *def;
    json_object_foreach(obj, key, v)
    {
        if ((def = json_object_get(fields, key)) != NULL)
            model_field(m, key, def, v);
        else if (unknown == NULL || strcmp(unknown, "reject") == 0)
            model_flag(m, MODEL_VIOLATION, "an unknown field of a rejecting schema", key);
        else if (strcmp(unknown, "report") == 0)
            model_flag(m, MODEL_REPORT, "an unknown field of a reporting schema", key);
    }
    if (m->update)
        return;
    json_object_foreach(fields, key, def)
    {
        json_t *present = json_object_get(obj, key);
        if (json_is_true(json_object_get(def, "required")) && (present == NULL || json_is_null(present)))
            model_flag(m, MODEL_VIOLATION, "a required field is missing or null", key);
    }
}

/* ---- JSON pointers ---------------------------------------------------------- */

/* Resolves an RFC 6901 pointer; NULL when it names nothing. */
static json_t *resolve_pointer(json_t *doc, const char *pointer)
{
    json_t *v = doc;
    const char *p = pointer;
    char *token = malloc(strlen(pointer) + 1);
    if (token == NULL)
        abort();
    while (v != NULL && *p == '/') {
        ++p;
        size_t n = 0;
        for (; *p != '\0' && *p != '/'; ++p) {
            char c = *p;
            if (c == '~') {
                if (p[1] == '0' || p[1] == '1')
                    c = *++p == '0' ? '~' : '/';
                else
                    c = 0; /* not a valid escape: names nothing */
            }
            token[n++] = c;
        }
        token[n] = '\0';
        if (memchr(token, 0, n) != NULL) {
            v = NULL;
        } else if (json_is_object(v)) {
            v = json_object_get(v, token);
        } else if (json_is_array(v)) {
            char *end;
            unsigned long i = strtoul(token, &end, 10);
            v = n == 0 || *end != '\0' || token[0] < '0' || token[0] > '9' || (n > 1 && token[0] == '0')
                    ? NULL
                    : json_array_get(v, i);
        } else {
            v = NULL;
        }
    }
    free(token);
    return v != NULL && *p == '\0' ? v : NULL;
}

static int is_header_name(const char *s)
{
    return strcmp(s, "Content-Type") == 0 || strcmp(s, "Upsert-Mode") == 0 || strcmp(s, "REST-Framework-Version") == 0;
}

static int is_field_code(gw_violation_code_t code)
{
    switch (code) {
    case GW_V_MAX_LENGTH:
    case GW_V_READ_ONLY:
    case GW_V_CREATE_ONLY:
    case GW_V_LOOKUP:
    case GW_V_TYPE:
    case GW_V_NUMBER_RANGE:
    case GW_V_DATETIME:
    case GW_V_PATTERN:
    case GW_V_UNKNOWN_FIELD:
    case GW_V_TOO_DEEP:
        return 1;
    default:
        return 0;
    }
}

static int status_rank(int status)
{
    return status == 413 ? 3 : status == 415 ? 2 : status == 400 ? 1 : 0;
}

/* ---- one evaluation ------------------------------------------------------ */

static long long cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void print_body(const uint8_t *data, size_t size)
{
    fprintf(stderr, "==crmgate-fuzz== body: ");
    fuzz_print_escaped(stderr, (const char *)data, size, 2000);
    fputc('\n', stderr);
}

static void check_one(gw_evaluator_t *ev, const target_t *t, const uint8_t *data, size_t size)
{
    gw_request_t req;
    memset(&req, 0, sizeof(req));
    req.method = t->method;
    req.method_len = strlen(t->method);
    req.path = t->path;
    req.path_len = strlen(t->path);
    req.content_type = (gw_header_value_t){"application/json", 16, 1};
    req.body = (const char *)data;
    req.body_len = size;

    gw_result_t result;
    gw_evaluator_reset(ev);
    long long start = cpu_ns();
    gw_evaluate(ev, t->route, &req, &result);
    long long spent = cpu_ns() - start;
    long long budget = BUDGET_NS_PER_64K * (size > 65536 ? (long long)(size + 65535) / 65536 : 1);
    if (check_timing && spent > budget) {
        print_body(data, size);
        FUZZ_CHECK(0, "%s %s: evaluating %zu bytes took %lld ms of CPU (budget %lld ms)", t->method, t->schema, size,
                   spent / 1000000, budget / 1000000);
    }

    /* the result is consistent */
    const gw_violations_t *list = &result.violations;
    FUZZ_CHECK(result.route == t->route, "the result names another route");
    FUZZ_CHECK(list->count <= list->max && list->count <= list->total && list->enforced <= list->total,
               "counts: %zu stored, %zu found, %zu enforced, max %zu", list->count, list->total, list->enforced, list->max);
    FUZZ_CHECK(list->count == list->total || list->count == list->max, "violations were dropped below the cap");
    switch (result.decision) {
    case GW_DECISION_FORWARD:
        FUZZ_CHECK(list->total == 0 && result.status == 0, "FORWARD with %zu violations", list->total);
        break;
    case GW_DECISION_REPORT:
        FUZZ_CHECK(list->total != 0 && list->enforced == 0 && result.status == 0, "REPORT with %zu enforced",
                   list->enforced);
        break;
    case GW_DECISION_REJECT:
        FUZZ_CHECK(list->enforced != 0 && status_rank(result.status) != 0, "REJECT with %zu enforced, status %d",
                   list->enforced, result.status);
        break;
    default:
        FUZZ_CHECK(0, "decision %d on a route", (int)result.decision);
    }
    size_t enforced_stored = 0;
    for (size_t i = 0; i < list->count; ++i) {
        const gw_violation_t *v = &list->items[i];
        FUZZ_CHECK((unsigned)v->code < GW_V__COUNT, "violation %zu: code %d", i, (int)v->code);
        FUZZ_CHECK(v->mode == GW_MODE_ENFORCE || v->mode == GW_MODE_REPORT, "violation %zu: mode %d", i, (int)v->mode);
        FUZZ_CHECK(v->pointer != NULL, "violation %zu (%s): NULL pointer", i, gw_violation_code_name(v->code));
        FUZZ_CHECK(v->pointer[0] == '\0' || v->pointer[0] == '/' || is_header_name(v->pointer),
                   "violation %zu (%s): pointer \"%s\" is not a JSON pointer or a header name", i,
                   gw_violation_code_name(v->code), v->pointer);
        if (!fuzz_utf8_valid(v->pointer, strlen(v->pointer)) && !fuzz_allowed("pointer-utf8")) {
            print_body(data, size);
            FUZZ_CHECK_NAMED("pointer-utf8", 0, "violation %zu (%s): the pointer is not valid UTF-8", i,
                             gw_violation_code_name(v->code));
        }
        if (v->mode == GW_MODE_ENFORCE) {
            ++enforced_stored;
            FUZZ_CHECK(status_rank(gw_violation_status(v->code)) <= status_rank(result.status),
                       "status %d is below the %d of an enforced %s", result.status, gw_violation_status(v->code),
                       gw_violation_code_name(v->code));
        }
    }
    FUZZ_CHECK(enforced_stored != 0 || list->enforced == 0, "a rejection stores none of its %zu enforced reasons",
               list->enforced);

    /* differential: jansson again, and the model */
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        FUZZ_CHECK(result.decision == GW_DECISION_REJECT && result.status == 400, "a body that is %s was not rejected",
                   doc == NULL ? "not JSON" : "not an object");
    } else {
        for (size_t i = 0; i < list->count; ++i) {
            const gw_violation_t *v = &list->items[i];
            if (is_field_code(v->code) && resolve_pointer(doc, v->pointer) == NULL) {
                print_body(data, size);
                FUZZ_CHECK(0, "violation %zu (%s): pointer \"%s\" names nothing in the body", i,
                           gw_violation_code_name(v->code), v->pointer);
            }
        }
        if (model_usable) {
            model_ctx_t m = {.update = t->operation == GW_OP_UPDATE,
                             .unit = fuzz_member_string(model, "length-unit") != NULL ? fuzz_member_string(model, "length-unit")
                                                                                      : "characters",
                             .max_depth = ev->limits.max_depth};
            model_object(&m, t->schema, doc);
            if (model_depth(doc) > m.max_depth)
                model_flag(&m, MODEL_VIOLATION, "nested deeper than the limit", "");
            int expected = m.verdict == MODEL_OK       ? GW_DECISION_FORWARD
                           : m.verdict == MODEL_REPORT ? GW_DECISION_REPORT
                                                       : GW_DECISION_REJECT;
            if ((int)result.decision != expected) {
                print_body(data, size);
                for (size_t i = 0; i < list->count; ++i)
                    fprintf(stderr, "==crmgate-fuzz== violation %s %s %s\n", gw_violation_code_name(list->items[i].code),
                            list->items[i].pointer, gw_mode_name(list->items[i].mode));
                FUZZ_CHECK(0, "%s %s: crmgate decided %d, the model %d (%s)", t->method, t->schema, (int)result.decision,
                           expected, m.verdict == MODEL_OK ? "nothing wrong" : m.why);
            }
        }
    }
    json_decref(doc);

    if (result.decision == GW_DECISION_REJECT) {
        /* the rendering checks print the document; the body helps to reproduce */
        fuzz_check_rejection(&result);
    }
}

/* ---- libFuzzer entry points ---------------------------------------------- */

static void load_model(void)
{
    json_error_t jerr;
    model = json_load_file(CRMGATE_SOURCE_DIR "/rules/interactions.json", JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_CHECK(model != NULL, "cannot read rules/interactions.json: %s", jerr.text);
    model_schemas = json_object_get(model, "schemas");
    model_usable = 1;
    /* the model knows modes only as "everything enforced"; patterns need PCRE2 */
    char *text = json_dumps(model, 0);
    int has_pattern = text == NULL || strstr(text, "\"pattern\"") != NULL;
    free(text);
    if (sets_a_mode(model) || has_pattern) {
        fprintf(stderr, "fuzz_body: rules/interactions.json sets modes or patterns: the differential model is off\n");
        model_usable = 0;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (rules != NULL)
        return 0;
    const char *paths[] = {CRMGATE_SOURCE_DIR "/rules"};
    gw_error_t err;
    gw_error_clear(&err);
    rules = gw_ruleset_load(paths, 1, NULL, &err);
    FUZZ_CHECK(rules != NULL, "the shipped rules do not load: %s", err.text);
    gw_limits_t limits = GW_LIMITS_DEFAULT;
    gw_evaluator_init(&ev_default, &limits);
    limits.max_depth = 4;
    limits.max_violations = 3;
    gw_evaluator_init(&ev_tight, &limits);
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); ++i) {
        gw_request_t req;
        memset(&req, 0, sizeof(req));
        req.method = targets[i].method;
        req.method_len = strlen(targets[i].method);
        req.path = targets[i].path;
        req.path_len = strlen(targets[i].path);
        targets[i].route = gw_evaluate_route(&ev_default, rules, &req);
        FUZZ_CHECK(targets[i].route != NULL && strcmp(targets[i].route->schema->name, targets[i].schema) == 0 &&
                       targets[i].route->operation == targets[i].operation,
                   "%s %s does not route to schema %s", targets[i].method, targets[i].path, targets[i].schema);
    }
    load_model();
    const char *timing = getenv("CRMGATE_FUZZ_NO_TIMING");
    check_timing = timing == NULL || timing[0] == '\0' || strcmp(timing, "0") == 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (rules == NULL)
        LLVMFuzzerInitialize(NULL, NULL);
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); ++i)
        check_one(&ev_default, &targets[i], data, size);
    check_one(&ev_tight, &targets[0], data, size);
    return 0;
}

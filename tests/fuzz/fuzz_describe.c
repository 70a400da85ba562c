/*
 * fuzz_describe: bytes are an ADF describe document, imported by
 * gw_describe_import() twice: without a lookups file, and with a small fixed
 * one that maps every attribute named ObjectTypeCd to a lookup.
 *
 * Invariants, beyond "no crash, no sanitizer report":
 *  - on success the error is untouched and the output is a rule file that
 *    gw_ruleset_load_buffer() compiles (a rule file the importer writes must
 *    always be valid), ending in a newline, with two routes per resource and
 *    child (POST and PATCH); the same input imports to the same bytes again;
 *    an empty body evaluates on every route; a collection the document does
 *    not describe routes nowhere (no name becomes a wildcard);
 *  - on failure the output buffer is empty and the error starts with the name
 *    of the document it is about (the describe or the lookups file).
 */
#include "describe.h"
#include "fuzz_util.h"
#include "rules.h"

#define NAME "describe.json"
#define LOOKUPS_NAME "lookups.json"

static const char lookups[] = "{\"lookups\": {\"ORA_FUZZ_CD\": [\"A\", \"B.C\", \"D|E\"]},"
                              " \"attributes\": {\"ObjectTypeCd\": \"ORA_FUZZ_CD\"}}";

static gw_evaluator_t ev;
static int initialised;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!initialised) {
        gw_limits_t limits = GW_LIMITS_DEFAULT;
        gw_evaluator_init(&ev, &limits);
        initialised = 1;
    }
    return 0;
}

static void print_input(const uint8_t *data, size_t size)
{
    fprintf(stderr, "==crmgate-fuzz== describe: ");
    fuzz_print_escaped(stderr, (const char *)data, size, 2000);
    fputc('\n', stderr);
}

/* Whether a resource or child name (the keys of "Resources" and of "children", recursively) holds '{' or '}'. */
static int has_brace_name(json_t *resources)
{
    const char *name;
    json_t *desc;
    if (!json_is_object(resources))
        return 0;
    json_object_foreach(resources, name, desc)
    {
        if (strpbrk(name, "{}") != NULL || has_brace_name(json_object_get(desc, "children")))
            return 1;
    }
    return 0;
}

static void import_one(const uint8_t *data, size_t size, int with_lookups)
{
    gw_buf_t out = GW_BUF_INIT;
    gw_error_t err;
    gw_error_clear(&err);
    int rc = gw_describe_import(NAME, (const char *)data, size, LOOKUPS_NAME, with_lookups ? lookups : NULL,
                                with_lookups ? sizeof(lookups) - 1 : 0, &out, &err);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1, "import returned %d", rc);
        FUZZ_CHECK(out.len == 0, "a failed import left %zu bytes of output", out.len);
        FUZZ_CHECK(err.text[0] != '\0', "a failed import without an error text");
        FUZZ_CHECK(fuzz_starts_with(err.text, NAME) || (with_lookups && fuzz_starts_with(err.text, LOOKUPS_NAME)),
                   "the error does not start with a file name: %s", err.text);
        gw_buf_dispose(&out);
        return;
    }
    FUZZ_CHECK(err.text[0] == '\0', "a successful import set an error: %s", err.text);
    FUZZ_CHECK(out.len != 0 && out.base[out.len - 1] == '\n', "the rule file does not end in a newline");
    FUZZ_CHECK(strlen(out.base) == out.len, "the rule file holds a NUL byte");

    gw_error_t cerr;
    gw_error_clear(&cerr);
    gw_ruleset_t *rules = gw_ruleset_load_buffer("imported.json", out.base, out.len, NULL, &cerr);
    if (rules == NULL) {
        /* a resource or child name with '{' or '}' makes a path template that does not compile: named apart,
         * so that it can be tolerated while fuzzing for other invalid outputs */
        json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
        int brace = has_brace_name(json_object_get(doc, "Resources"));
        json_decref(doc);
        const char *check = brace ? "import-brace" : "import-compiles";
        if (!fuzz_allowed(check)) {
            print_input(data, size);
            fprintf(stderr, "==crmgate-fuzz== imported rule file%s:\n%.*s\n", with_lookups ? " (with lookups)" : "",
                    out.len > 8000 ? 8000 : (int)out.len, out.base);
            fuzz_fail(__FILE__, __LINE__, "[%s] the importer wrote a rule file that does not compile: %s", check, cerr.text);
        }
        gw_buf_dispose(&out);
        return;
    }
    /* a collection the document does not describe routes nowhere (a name must not become a wildcard) */
    static const char *const probes[][2] = {{"POST", "/crmRestApi/resources/11.13.18.05/crmgate-fuzz-none"},
                                            {"PATCH", "/crmRestApi/resources/11.13.18.05/crmgate-fuzz-none/1"}};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); ++i) {
        gw_request_t req;
        memset(&req, 0, sizeof(req));
        req.method = probes[i][0];
        req.method_len = strlen(probes[i][0]);
        req.path = probes[i][1];
        req.path_len = strlen(probes[i][1]);
        gw_evaluator_reset(&ev);
        const gw_route_t *route = gw_evaluate_route(&ev, rules, &req);
        if (route != NULL && strstr((const char *)out.base, "crmgate-fuzz-none") == NULL) {
            json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
            const char *check = has_brace_name(json_object_get(doc, "Resources")) ? "import-brace" : "import-routes";
            json_decref(doc);
            if (!fuzz_allowed(check)) {
                print_input(data, size);
                fuzz_fail(__FILE__, __LINE__, "[%s] %s %s, which the document does not describe, routes to %s %s", check,
                          probes[i][0], probes[i][1], route->method, route->path);
            }
        }
    }
    size_t nroutes = gw_ruleset_route_count(rules);
    FUZZ_CHECK(nroutes >= 2 && nroutes % 2 == 0, "%zu routes from an import", nroutes);
    for (size_t i = 0; i < nroutes; ++i) {
        const gw_route_t *route = gw_ruleset_route(rules, i);
        gw_request_t req;
        memset(&req, 0, sizeof(req));
        req.method = route->method;
        req.method_len = strlen(route->method);
        req.path = "/";
        req.path_len = 1;
        req.content_type = (gw_header_value_t){"application/json", 16, 1};
        req.body = "{}";
        req.body_len = 2;
        gw_result_t result;
        gw_evaluator_reset(&ev);
        gw_evaluate(&ev, route, &req, &result);
        FUZZ_CHECK(result.decision != GW_DECISION_PASS_THROUGH, "decision PASS_THROUGH on a route");
    }
    gw_ruleset_release(rules);

    /* the output depends only on the inputs */
    gw_buf_t again = GW_BUF_INIT;
    gw_error_clear(&err);
    rc = gw_describe_import(NAME, (const char *)data, size, LOOKUPS_NAME, with_lookups ? lookups : NULL,
                            with_lookups ? sizeof(lookups) - 1 : 0, &again, &err);
    FUZZ_CHECK(rc == 0 && again.len == out.len && memcmp(again.base, out.base, out.len) == 0,
               "importing the same document twice gave different rule files");
    gw_buf_dispose(&again);
    gw_buf_dispose(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    LLVMFuzzerInitialize(NULL, NULL);
    import_one(data, size, 0);
    import_one(data, size, 1);
    return 0;
}

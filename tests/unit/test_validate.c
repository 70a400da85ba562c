/* The validator and the evaluation around it, through gw_evaluate on an inline rule set. */
#include <stdlib.h>
#include "../../gateway/evaluate.h"
#include "../../gateway/render.h"
#include "check.h"

static const char *rules_json =
    "{\"crmgate-rules\": 1, \"lookups\": {\"L\": [\"A\", \"B\"]},"
    " \"schemas\": {"
    "  \"root\": {\"unknown-fields\": \"reject\", \"fields\": {"
    "    \"s\": {\"type\": \"string\", \"maxLength\": 3},"
    "    \"i64\": {\"type\": \"int64\"}, \"i32\": {\"type\": \"int32\"}, \"n\": {\"type\": \"number\"},"
    "    \"b\": {\"type\": \"bool\"}, \"dt\": {\"type\": \"datetime\"}, \"d\": {\"type\": \"date\"},"
    "    \"ro\": {\"type\": \"string\", \"readOnly\": true}, \"co\": {\"type\": \"string\", \"createOnly\": true},"
    "    \"req\": {\"type\": \"string\", \"required\": true}, \"lk\": {\"type\": \"string\", \"lookup\": \"L\"},"
    "    \"pat\": {\"type\": \"string\", \"pattern\": \"[0-9]{3}\"}, \"any\": {\"type\": \"any\"},"
    "    \"kids\": {\"type\": \"array\", \"items\": \"kid\"}, \"obj\": {\"type\": \"object\", \"schema\": \"kid\"}}},"
    "  \"kid\": {\"unknown-fields\": \"report\", \"fields\": {\"s\": {\"type\": \"string\", \"maxLength\": 2},"
    "    \"kids\": {\"type\": \"array\", \"items\": \"kid\"}}}},"
    " \"routes\": [{\"method\": \"POST\", \"path\": \"/r\", \"schema\": \"root\"},"
    "  {\"method\": \"PATCH\", \"path\": \"/r/{id}\", \"schema\": \"root\"}]}";

static gw_ruleset_t *rules;
static gw_evaluator_t ev;
static gw_result_t result;

/* Evaluates a POST (create) or PATCH (update) of body; returns the decision. */
static gw_decision_t run(const char *method, const char *body)
{
    gw_request_t req = {.method = method, .method_len = strlen(method),
                        .path = strcmp(method, "POST") == 0 ? "/r" : "/r/1",
                        .content_type = {"application/json", 16, 1}, .body = body, .body_len = strlen(body)};
    req.path_len = strlen(req.path);
    gw_evaluator_reset(&ev);
    const gw_route_t *route = gw_evaluate_route(&ev, rules, &req);
    if (route == NULL)
        return GW_DECISION_PASS_THROUGH;
    gw_evaluate(&ev, route, &req, &result);
    return result.decision;
}

/* The violations as "CODE POINTER" lines, for compact checks. */
static const char *summary(void)
{
    static char buf[4096];
    buf[0] = '\0';
    for (size_t i = 0; i < result.violations.count; ++i) {
        const gw_violation_t *v = &result.violations.items[i];
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s %s%s", i ? "; " : "", gw_violation_code_name(v->code),
                 v->pointer, v->mode == GW_MODE_REPORT ? " (report)" : "");
    }
    return buf;
}

#define VALID(method, body)                                                                                                   \
    do {                                                                                                                       \
        gw_decision_t d_ = run(method, body);                                                                                  \
        CHECK_REPORT(d_ == GW_DECISION_FORWARD, "%s %s is valid (%s)", method, body, summary());                               \
    } while (0)
#define INVALID(method, body, expected)                                                                                       \
    do {                                                                                                                       \
        gw_decision_t d_ = run(method, body);                                                                                  \
        CHECK_REPORT(d_ == GW_DECISION_REJECT && strcmp(summary(), expected) == 0, "%s %s -> %s (got %s)", method, body,      \
                     expected, summary());                                                                                     \
    } while (0)

static void test_strings(void)
{
    VALID("POST", "{\"req\":\"x\",\"s\":\"abc\"}");
    INVALID("POST", "{\"req\":\"x\",\"s\":\"abcd\"}", "CRMGATE-MAX-LENGTH /s");
    /* é raw, é escaped, an emoji raw and escaped: one character each */
    VALID("POST", "{\"req\":\"x\",\"s\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}");
    VALID("POST", "{\"req\":\"x\",\"s\":\"\\u00e9\\u00e9\\u00e9\"}");
    VALID("POST", "{\"req\":\"x\",\"s\":\"\xf0\x9f\x98\x80\\ud83d\\ude00a\"}");
    INVALID("POST", "{\"req\":\"x\",\"s\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"}", "CRMGATE-MAX-LENGTH /s");
    CHECK_INT_EQ(result.violations.items[0].found, 4);
    CHECK_INT_EQ(result.violations.items[0].limit, 3);
    INVALID("POST", "{\"req\":\"x\",\"s\":5}", "CRMGATE-TYPE /s");
    VALID("POST", "{\"req\":\"x\",\"lk\":\"A\"}");
    INVALID("POST", "{\"req\":\"x\",\"lk\":\"A\\n\"}", "CRMGATE-LOOKUP /lk");
    INVALID("POST", "{\"req\":\"x\",\"lk\":\"a\"}", "CRMGATE-LOOKUP /lk");
    INVALID("POST", "{\"req\":\"x\",\"lk\":\"A|B\"}", "CRMGATE-LOOKUP /lk");
    VALID("POST", "{\"req\":\"x\",\"pat\":\"123\"}");
    INVALID("POST", "{\"req\":\"x\",\"pat\":\"1234\"}", "CRMGATE-PATTERN /pat"); /* patterns match the whole value */
    INVALID("POST", "{\"req\":\"x\",\"pat\":\"x123\"}", "CRMGATE-PATTERN /pat");
}

static void test_numbers(void)
{
    VALID("POST", "{\"req\":\"x\",\"i64\":9223372036854775807}");
    VALID("POST", "{\"req\":\"x\",\"i64\":-9223372036854775808}");
    INVALID("POST", "{\"req\":\"x\",\"i64\":9223372036854775808}", "CRMGATE-NUMBER-OVERFLOW /i64");
    INVALID("POST", "{\"req\":\"x\",\"i64\":18446744073709551616}", "CRMGATE-NUMBER-OVERFLOW /i64");
    INVALID("POST", "{\"req\":\"x\",\"i64\":1.5}", "CRMGATE-TYPE /i64");
    INVALID("POST", "{\"req\":\"x\",\"i64\":1e2}", "CRMGATE-TYPE /i64");
    INVALID("POST", "{\"req\":\"x\",\"i64\":\"1\"}", "CRMGATE-TYPE /i64");
    VALID("POST", "{\"req\":\"x\",\"i32\":2147483647}");
    VALID("POST", "{\"req\":\"x\",\"i32\":-2147483648}");
    INVALID("POST", "{\"req\":\"x\",\"i32\":2147483648}", "CRMGATE-NUMBER-RANGE /i32");
    VALID("POST", "{\"req\":\"x\",\"n\":1.5}");
    VALID("POST", "{\"req\":\"x\",\"n\":-3}");
    INVALID("POST", "{\"req\":\"x\",\"n\":true}", "CRMGATE-TYPE /n");
    VALID("POST", "{\"req\":\"x\",\"b\":false}");
    INVALID("POST", "{\"req\":\"x\",\"b\":\"true\"}", "CRMGATE-TYPE /b");
}

static void test_dates(void)
{
    static const char *good[] = {"2017-03-03T04:01:13-08:00", "2017-03-03T04:01:13Z", "2017-03-03T04:01:13.123+05:30",
                                 "2017-03-03T04:01:13", "2024-02-29T00:00:00Z", "2016-12-31T23:59:60Z"};
    static const char *bad[] = {"2017-13-03T04:01:13Z", "2017-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2017-03-03 04:01:13Z",
                                "2017-03-03T24:00:00Z", "2017-03-03T04:01:13+0800", "2017-03-03", "x", "2017-03-03T04:01:13.Z"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); ++i)
        CHECK_REPORT(gw_is_iso8601(good[i], strlen(good[i]), 1), "%s is a date-time", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        CHECK_REPORT(!gw_is_iso8601(bad[i], strlen(bad[i]), 1), "%s is not a date-time", bad[i]);
    CHECK(gw_is_iso8601("2017-03-03", 10, 0));
    CHECK(!gw_is_iso8601("2017-03-03T00:00:00Z", 20, 0));
    INVALID("POST", "{\"req\":\"x\",\"dt\":\"2017-13-03T04:01:13Z\"}", "CRMGATE-DATETIME /dt");
    INVALID("POST", "{\"req\":\"x\",\"d\":7}", "CRMGATE-TYPE /d");
}

static void test_presence(void)
{
    INVALID("POST", "{}", "CRMGATE-REQUIRED /req");
    INVALID("POST", "{\"req\":null}", "CRMGATE-REQUIRED /req");
    VALID("PATCH", "{}"); /* required applies on create only */
    VALID("POST", "{\"req\":\"x\",\"s\":null,\"i64\":null}"); /* null clears an optional field */
    INVALID("POST", "{\"req\":\"x\",\"ro\":\"v\"}", "CRMGATE-READ-ONLY /ro");
    INVALID("POST", "{\"req\":\"x\",\"ro\":null}", "CRMGATE-READ-ONLY /ro"); /* refused even when null */
    VALID("POST", "{\"req\":\"x\",\"co\":\"v\"}");
    INVALID("PATCH", "{\"co\":\"v\"}", "CRMGATE-CREATE-ONLY /co");
    INVALID("POST", "{\"req\":\"x\",\"zz\":1}", "CRMGATE-UNKNOWN-FIELD /zz");
}

static void test_nesting(void)
{
    /* every violation is collected, each with its pointer; report-mode ones ride along */
    gw_decision_t d = run("POST", "{\"s\":\"abcd\",\"kids\":[{\"s\":\"ok\"},{\"s\":\"bad\",\"x\":1},7],"
                                  "\"obj\":{\"kids\":[{\"s\":\"toolong\"}]},\"a/b\":1}");
    CHECK(d == GW_DECISION_REJECT);
    CHECK_STR_EQ(summary(), "CRMGATE-MAX-LENGTH /s; CRMGATE-MAX-LENGTH /kids/1/s; CRMGATE-UNKNOWN-FIELD /kids/1/x (report); "
                            "CRMGATE-TYPE /kids/2; CRMGATE-MAX-LENGTH /obj/kids/0/s; CRMGATE-UNKNOWN-FIELD /a~1b; "
                            "CRMGATE-REQUIRED /req");
    /* only report-mode violations: forwarded, with the violations kept for the audit */
    d = run("POST", "{\"req\":\"x\",\"kids\":[{\"x\":1}]}");
    CHECK(d == GW_DECISION_REPORT);
    CHECK_STR_EQ(summary(), "CRMGATE-UNKNOWN-FIELD /kids/0/x (report)");
    INVALID("POST", "{\"req\":\"x\",\"kids\":{}}", "CRMGATE-TYPE /kids");
    INVALID("POST", "{\"req\":\"x\",\"obj\":[]}", "CRMGATE-TYPE /obj");
}

static void test_depth(void)
{
    /* the limit is 32 levels: the top object is 1 */
    char body[400];
    strcpy(body, "{\"req\":\"x\",\"any\":");
    for (int i = 0; i < 30; ++i)
        strcat(body, "[");
    for (int i = 0; i < 30; ++i)
        strcat(body, "]");
    strcat(body, "}");
    VALID("POST", body); /* 1 + 1 (any's array) + 29 = ... 31 levels */
    strcpy(body, "{\"req\":\"x\",\"any\":");
    for (int i = 0; i < 31; ++i)
        strcat(body, "[");
    for (int i = 0; i < 31; ++i)
        strcat(body, "]");
    strcat(body, "}");
    VALID("POST", body); /* exactly 32 */
    strcpy(body, "{\"req\":\"x\",\"any\":");
    for (int i = 0; i < 32; ++i)
        strcat(body, "[");
    for (int i = 0; i < 32; ++i)
        strcat(body, "]");
    strcat(body, "}");
    INVALID("POST", body, "CRMGATE-TOO-DEEP /any");
    /* beyond jansson's own limit: still a clean rejection */
    size_t n = 10000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    CHECK(run("POST", deep) == GW_DECISION_REJECT);
    CHECK(result.violations.count == 1 && result.violations.items[0].code == GW_V_TOO_DEEP);
    free(deep);
}

static void test_structure(void)
{
    INVALID("POST", "", "CRMGATE-EMPTY-BODY ");
    INVALID("POST", "[]", "CRMGATE-NOT-AN-OBJECT ");
    INVALID("POST", "\"x\"", "CRMGATE-NOT-AN-OBJECT ");
    INVALID("POST", "{\"req\":\"x\",}", "CRMGATE-INVALID-JSON "); /* after the comma: the object itself */
    INVALID("POST", "{\"req\":\"\xff\"}", "CRMGATE-INVALID-UTF8 /req");
    INVALID("POST", "{\"req\":\"\\ud800\"}", "CRMGATE-INVALID-UNICODE-ESCAPE /req");
    INVALID("POST", "{\"req\":\"a\\u0000b\"}", "CRMGATE-NUL-CHARACTER /req");
    INVALID("POST", "{\"req\":\"x\",\"kids\":[{\"s\":\"a\",\"s\":\"b\"}]}", "CRMGATE-DUPLICATE-KEY /kids/0/s");
    INVALID("POST", "{\"req\":\"x\"} {}", "CRMGATE-INVALID-JSON ");
}

/* X-HTTP-Method-Override: a route of the override or of the real method validates; none escapes. */
static void test_method_override(void)
{
    static const struct {
        const char *method, *path, *override;
        gw_operation_t want;
    } cases[] = {
        {"POST", "/r/1", "PATCH", GW_OP_UPDATE}, {"POST", "/r/1", " patch ", GW_OP_UPDATE},
        {"PATCH", "/r/1", "GET", GW_OP_UPDATE},  {"POST", "/r", "", GW_OP_CREATE},
        {"POST", "/r", "GET", GW_OP_CREATE},
        /* a method no route has is judged by its override: the shortcut for such methods must not skip it */
        {"GET", "/r/1", "PATCH", GW_OP_UPDATE},  {"PUT", "/r", "post", GW_OP_CREATE},
        {"GET", "/r/1/", "PATCH", GW_OP_UPDATE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        gw_request_t req = {.method = cases[i].method, .method_len = strlen(cases[i].method), .path = cases[i].path,
                            .path_len = strlen(cases[i].path),
                            .method_override = {cases[i].override, strlen(cases[i].override), 1}};
        gw_evaluator_reset(&ev);
        const gw_route_t *route = gw_evaluate_route(&ev, rules, &req);
        CHECK_REPORT(route != NULL && route->operation == cases[i].want, "%s %s with override \"%s\" is validated as %s",
                     cases[i].method, cases[i].path, cases[i].override, cases[i].want == GW_OP_CREATE ? "create" : "update");
    }
    gw_request_t get = {.method = "GET", .method_len = 3, .path = "/r/1", .path_len = 4};
    CHECK(gw_evaluate_route(&ev, rules, &get) == NULL);
    gw_request_t get_override = {.method = "GET", .method_len = 3, .path = "/r/1", .path_len = 4,
                                 .method_override = {"DELETE", 6, 1}};
    CHECK(gw_evaluate_route(&ev, rules, &get_override) == NULL); /* neither method has a route */
    CHECK(gw_ruleset_has_method(rules, "POST", 4) && gw_ruleset_has_method(rules, "PATCH", 5));
    CHECK(!gw_ruleset_has_method(rules, "GET", 3) && !gw_ruleset_has_method(rules, "POS", 3) &&
          !gw_ruleset_has_method(rules, "POSTS", 5));
}

static void test_cap(void)
{
    gw_limits_t limits = GW_LIMITS_DEFAULT;
    limits.max_violations = 2;
    gw_evaluator_dispose(&ev);
    gw_evaluator_init(&ev, &limits);
    CHECK(run("POST", "{\"req\":\"x\",\"ro\":1,\"s\":\"long\",\"b\":1,\"n\":\"x\"}") == GW_DECISION_REJECT);
    CHECK_INT_EQ(result.violations.count, 2);
    CHECK_INT_EQ(result.violations.total, 4);
    gw_rendered_t out;
    gw_render_rejection(&result, GW_ERRORS_ORACLE, "id", &out);
    CHECK_CONTAINS(out.body.base, "CRMGATE-MORE /: 2 more violations");
    gw_buf_dispose(&out.body);
    limits.max_body = 10;
    gw_evaluator_dispose(&ev);
    gw_evaluator_init(&ev, &limits);
    CHECK(run("POST", "{\"req\":\"x\"}") == GW_DECISION_REJECT && result.status == 413); /* 11 bytes */
    /* over the cap: the status still comes from every violation, and enforced ones displace reported ones */
    limits.max_body = 1024;
    limits.max_violations = 1;
    gw_evaluator_dispose(&ev);
    gw_evaluator_init(&ev, &limits);
    CHECK(run("POST", "{\"req\":\"x\",\"kids\":[{\"x\":1}],\"s\":\"long\"}") == GW_DECISION_REJECT);
    CHECK_STR_EQ(summary(), "CRMGATE-MAX-LENGTH /s");
    CHECK_INT_EQ(result.violations.total, 2);
    CHECK(run("POST", "{\"req\":\"\"}") == GW_DECISION_FORWARD);                         /* 10 bytes */
    gw_evaluator_dispose(&ev);
    gw_evaluator_init(&ev, &(gw_limits_t)GW_LIMITS_DEFAULT);
}

int main(void)
{
    gw_error_t err;
    gw_error_clear(&err);
    rules = gw_ruleset_load_buffer("inline.json", rules_json, strlen(rules_json), NULL, &err);
    CHECK_REPORT(rules != NULL, "inline rules compile (%s)", err.text);
    if (rules == NULL)
        return check_done();
    gw_evaluator_init(&ev, &(gw_limits_t)GW_LIMITS_DEFAULT);
    test_strings();
    test_numbers();
    test_dates();
    test_presence();
    test_nesting();
    test_depth();
    test_structure();
    test_method_override();
    test_cap();
    gw_evaluator_dispose(&ev);
    gw_ruleset_release(rules);
    return check_done();
}

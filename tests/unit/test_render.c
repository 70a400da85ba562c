/* Error documents: each format is well formed, carries what clients read, and escapes hostile values. */
#include <jansson.h>
#include "../../gateway/render.h"
#include "check.h"

static gw_result_t make_result(gw_violation_t *items, size_t n, int version)
{
    gw_result_t r;
    memset(&r, 0, sizeof(r));
    r.decision = GW_DECISION_REJECT;
    r.status = 400;
    r.framework_version = version;
    r.accepts_json = 1;
    r.violations.items = items;
    r.violations.count = r.violations.total = r.violations.enforced = n;
    r.violations.max = n;
    return r;
}

int main(void)
{
    gw_violation_t v[3] = {
        {.code = GW_V_MAX_LENGTH, .pointer = "/Description", .field = "Description", .expected = "characters",
         .limit = 1000, .found = 1001},
        {.code = GW_V_LOOKUP, .pointer = "/interactionReferences/1/ObjectTypeCd", .field = "ObjectTypeCd",
         .expected = "ORA_SVC_IM_REF_OBJECT_TYPE_CD", .excerpt = "\\\"</script>\\x0a", .limit = -1, .found = -1},
        {.code = GW_V_UNKNOWN_FIELD, .mode = GW_MODE_REPORT, .pointer = "/X", .field = "X", .expected = "interaction",
         .limit = -1, .found = -1},
    };
    gw_rendered_t out;

    /* version 1 (or absent): Oracle's plain text, one line per enforced violation */
    gw_result_t r = make_result(v, 3, 1);
    gw_render_rejection(&r, GW_ERRORS_ORACLE, "rid", &out);
    CHECK_STR_EQ(out.content_type, "text/plain; charset=utf-8");
    CHECK_STR_EQ(out.body.base,
                 "CRMGATE-MAX-LENGTH /Description: Description is too long: 1001 characters, the maximum is 1000.\n"
                 "CRMGATE-LOOKUP /interactionReferences/1/ObjectTypeCd: ObjectTypeCd \"\\\"</script>\\x0a\" is not a code "
                 "of lookup ORA_SVC_IM_REF_OBJECT_TYPE_CD.\n");
    gw_buf_dispose(&out.body);

    /* version 4: Oracle's JSON error document */
    r = make_result(v, 3, 4);
    gw_render_rejection(&r, GW_ERRORS_ORACLE, "rid", &out);
    CHECK_STR_EQ(out.content_type, "application/vnd.oracle.adf.error+json");
    json_error_t jerr;
    json_t *doc = json_loads(out.body.base, 0, &jerr);
    CHECK(doc != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(doc, "title")), "Bad Request");
    CHECK_STR_EQ(json_string_value(json_object_get(doc, "status")), "400"); /* a string, as Oracle sends it */
    json_t *details = json_object_get(doc, "o:errorDetails");
    CHECK_INT_EQ(json_array_size(details), 2); /* the report-mode one is not a reason to reject */
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(details, 1), "o:errorPath")),
                 "/interactionReferences/1/ObjectTypeCd");
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(details, 1), "o:errorCode")), "CRMGATE-LOOKUP");
    CHECK_CONTAINS(json_string_value(json_object_get(json_array_get(details, 0), "detail")), "1001 characters");
    json_decref(doc);
    gw_buf_dispose(&out.body);

    /* version 4 but the client accepts only text: text */
    r.accepts_json = 0;
    gw_render_rejection(&r, GW_ERRORS_ORACLE, "rid", &out);
    CHECK_STR_EQ(out.content_type, "text/plain; charset=utf-8");
    gw_buf_dispose(&out.body);

    /* problem+json: numeric status, instance = request id, errors[] with limits */
    r = make_result(v, 3, 1);
    gw_render_rejection(&r, GW_ERRORS_PROBLEM_JSON, "req-42", &out);
    CHECK_STR_EQ(out.content_type, "application/problem+json");
    doc = json_loads(out.body.base, 0, &jerr);
    CHECK(doc != NULL);
    CHECK_INT_EQ(json_integer_value(json_object_get(doc, "status")), 400);
    CHECK_STR_EQ(json_string_value(json_object_get(doc, "instance")), "req-42");
    json_t *errors = json_object_get(doc, "errors");
    CHECK_INT_EQ(json_array_size(errors), 2);
    CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(errors, 0), "limit")), 1000);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(errors, 0), "pointer")), "/Description");
    CHECK(json_object_get(json_array_get(errors, 1), "limit") == NULL);
    json_decref(doc);
    gw_buf_dispose(&out.body);

    /* excerpts of HTML error pages: the text, without tags, scripts and styles */
    static const char page[] = "<html><head><style>h1{color:red}</style><title>503</title></head><body><h1>Down</h1>"
                               "<script>var x = \"<b>\";</script>\n  for   maintenance</body></html>";
    gw_buf_t ex = GW_BUF_INIT;
    gw_upstream_excerpt(page, sizeof(page) - 1, 1, 120, &ex);
    CHECK_STR_EQ(ex.base, "503 Down for maintenance");
    ex.len = 0;
    gw_upstream_excerpt("<p>unclosed <script>x", 21, 1, 120, &ex);
    CHECK_STR_EQ(ex.base, "unclosed");
    ex.len = 0;
    gw_upstream_excerpt("plain \"text\"\n", 13, 0, 5, &ex);
    CHECK_STR_EQ(ex.base, "plain...");
    gw_buf_dispose(&ex);

    /* every code has a detail sentence */
    for (int code = 0; code < GW_V__COUNT; ++code) {
        gw_violation_t any = {.code = (gw_violation_code_t)code, .pointer = "/p", .field = "f", .expected = "int64",
                              .actual = "a string", .excerpt = "x", .limit = 1, .found = 2};
        gw_buf_t detail = GW_BUF_INIT;
        gw_violation_detail(&any, &detail);
        CHECK_REPORT(detail.len > 10 && detail.base[detail.len - 1] == '.', "%s has a sentence: %s",
                     gw_violation_code_name(any.code), detail.base ? detail.base : "(none)");
        gw_buf_dispose(&detail);
    }
    return check_done();
}

/* Header checks: Content-Type, Upsert-Mode, REST-Framework-Version, Accept. */
#include "../../gateway/evaluate.h"
#include "check.h"

#define CT(s) gw_content_type_is_json(s, strlen(s))
#define UM(s) gw_upsert_mode_is_valid(s, strlen(s))
#define FV(s) gw_framework_version_parse(s, strlen(s), 9)
#define AC(s) gw_accept_allows_json(s, strlen(s))

int main(void)
{
    CHECK(CT("application/json"));
    CHECK(CT("Application/JSON"));
    CHECK(CT("application/json; charset=UTF-8"));
    CHECK(CT("application/json;charset=\"utf-8\""));
    CHECK(CT("application/vnd.oracle.adf.resourceitem+json"));
    CHECK(CT("application/vnd.oracle.adf.resourceitem+json; charset=utf-8"));
    CHECK(CT(" application/json "));
    CHECK(!CT("application/json; charset=latin1"));
    CHECK(!CT("application/json; garbage"));
    CHECK(!CT("text/plain"));
    CHECK(!CT("application/jsonx"));
    CHECK(!CT("application/vnd.oracle.adf.batch+json"));
    CHECK(!CT(""));

    CHECK(UM("true"));
    CHECK(UM("false"));
    CHECK(!UM("TRUE"));
    CHECK(!UM("yes"));
    CHECK(!UM("true "));
    CHECK(!UM(""));

    CHECK_INT_EQ(FV("1"), 1);
    CHECK_INT_EQ(FV("4"), 4);
    CHECK_INT_EQ(FV("9"), 9);
    CHECK_INT_EQ(FV("0"), 0);
    CHECK_INT_EQ(FV("10"), 0);
    CHECK_INT_EQ(FV("-1"), 0);
    CHECK_INT_EQ(FV("+4"), 0);
    CHECK_INT_EQ(FV("4.0"), 0);
    CHECK_INT_EQ(FV("x"), 0);
    CHECK_INT_EQ(FV(""), 0);
    CHECK_INT_EQ(FV("99999999999999999999"), 0);
    CHECK_INT_EQ(gw_framework_version_parse("12", 2, 20), 12);

    CHECK(AC("*/*"));
    CHECK(AC("application/json"));
    CHECK(AC("text/html, application/vnd.oracle.adf.error+json;q=0.9"));
    CHECK(AC("application/*"));
    CHECK(!AC("text/plain"));
    CHECK(!AC("application/json;q=0"));
    CHECK(!AC("application/json; q=0.000, text/plain"));
    CHECK(AC("application/json;q=0.5"));
    CHECK(AC("text/plain;q=0, */*"));
    CHECK(!AC("text/html, text/plain"));
    return check_done();
}

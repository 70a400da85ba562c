/* JSON pointers for parse errors, which jansson reports by byte position only. */
#include "../../gateway/jsonpos.h"
#include "check.h"

static void expect_at(const char *json, size_t offset, const char *want)
{
    gw_buf_t buf = GW_BUF_INIT;
    gw_json_pointer_at(json, strlen(json), offset, &buf);
    const char *got = buf.base != NULL ? buf.base : "";
    CHECK_REPORT(strcmp(got, want) == 0, "pointer_at(%s, %zu) == \"%s\" (got \"%s\")", json, offset, want, got);
    gw_buf_dispose(&buf);
}

int main(void)
{
    const char *doc = "{\"a\": 1, \"b\": [10, {\"c\": x}]}";
    expect_at(doc, 0, "");
    expect_at(doc, strchr(doc, '1') - doc, "/a");
    expect_at(doc, strchr(doc, 'x') - doc, "/b/1/c");
    expect_at(doc, strstr(doc, "10") - doc + 2, "/b/0");
    expect_at("{\"a/b~c\": !}", 10, "/a~1b~0c");
    expect_at("{\"\\u0041\": !}", 11, "/A"); /* escaped keys are decoded */
    expect_at("{\"x\": \"a,b[c{\", \"y\": !", 21, "/y"); /* brackets inside strings are not structure */
    expect_at("[[[[", 4, "/0/0/0/0");
    expect_at("{\"a\": {\"Descr\xe9ption\": 1}}", 14, "/a"); /* a key cut off where the parser stopped names nothing */
    /* deep input is bounded: at most 64 levels are kept */
    char deep[2001];
    memset(deep, '[', 2000);
    deep[2000] = '\0';
    gw_buf_t buf = GW_BUF_INIT;
    gw_json_pointer_at(deep, 2000, 2000, &buf);
    CHECK_INT_EQ(buf.len, 64 * 2);
    gw_buf_dispose(&buf);
    /* an offset past the end is clamped */
    expect_at("{\"a\":", 100, "/a");
    return check_done();
}

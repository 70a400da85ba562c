/* Buffers and the JSON string escaper the audit record is built with: every byte value comes out as JSON that
 * parses back to itself (or to U+FFFD for bytes that are not UTF-8), and long input is capped. */
#include <jansson.h>
#include "../../gateway/buf.h"
#include "check.h"

/* the escaped form of bytes, parsed back by jansson; NULL when it is not a valid JSON string */
static char *round_trip(const char *bytes, size_t len, size_t max, size_t *out_len)
{
    gw_buf_t buf = GW_BUF_INIT;
    gw_buf_append_json_string(&buf, bytes, len, max);
    json_error_t err;
    json_t *v = json_loadb(buf.base, buf.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err); /* NUL comes out as \u0000 */
    gw_buf_dispose(&buf);
    if (v == NULL || !json_is_string(v)) {
        json_decref(v);
        return NULL;
    }
    *out_len = json_string_length(v);
    char *s = malloc(*out_len + 1);
    memcpy(s, json_string_value(v), *out_len + 1);
    json_decref(v);
    return s;
}

int main(void)
{
    int same = 0, replaced = 0, broken = 0;
    for (int c = 0; c < 256; ++c) {
        char in[3] = {'a', (char)c, 'z'};
        size_t n;
        char *out = round_trip(in, 3, 100, &n);
        if (out == NULL)
            ++broken;
        else if (c < 0x80 && n == 3 && memcmp(out, in, 3) == 0)
            ++same;
        else if (c >= 0x80 && n == 5 && memcmp(out, "a\xef\xbf\xbdz", 5) == 0) /* a lone byte >= 0x80: U+FFFD */
            ++replaced;
        free(out);
    }
    CHECK_INT_EQ(broken, 0);
    CHECK_INT_EQ(same, 128);
    CHECK_INT_EQ(replaced, 128);

    size_t n;
    char *out = round_trip("caf\xc3\xa9 \xe2\x82\xac", 9, 100, &n); /* valid UTF-8 is kept */
    CHECK(out != NULL && n == 9 && memcmp(out, "caf\xc3\xa9 \xe2\x82\xac", 9) == 0);
    free(out);
    out = round_trip("0123456789", 10, 4, &n); /* capped input ends with "..." */
    CHECK_STR_EQ(out, "0123...");
    free(out);

    gw_buf_t buf = GW_BUF_INIT;
    for (int i = 0; i < 1000; ++i)
        gw_buf_append(&buf, "abc", 3);
    CHECK(buf.len == 3000 && buf.base[3000] == '\0' && memcmp(buf.base + 2997, "abc", 3) == 0);
    gw_buf_dispose(&buf);
    return check_done();
}

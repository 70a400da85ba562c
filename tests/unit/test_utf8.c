/* Length counting for maxLength, and the excerpt escaping used in messages. */
#include "../../gateway/buf.h"
#include "../../gateway/utf8.h"
#include "check.h"

static void test_valid_sequences(void)
{
    CHECK_INT_EQ(gw_utf8_valid_sequence("a", 1), 1);
    CHECK_INT_EQ(gw_utf8_valid_sequence("\xc3\xa9", 2), 2);         /* é */
    CHECK_INT_EQ(gw_utf8_valid_sequence("\xe2\x82\xac", 3), 3);     /* € */
    CHECK_INT_EQ(gw_utf8_valid_sequence("\xf0\x9f\x98\x80", 4), 4); /* 😀 */
    CHECK_INT_EQ(gw_utf8_valid_sequence("\xc3", 1), 0);             /* truncated */
    CHECK_INT_EQ(gw_utf8_valid_sequence("\xc0\xaf", 2), 0);         /* overlong '/' */
    CHECK_INT_EQ(gw_utf8_valid_sequence("\xe0\x80\xaf", 3), 0);     /* overlong */
    CHECK_INT_EQ(gw_utf8_valid_sequence("\xed\xa0\x80", 3), 0);     /* surrogate U+D800 */
    CHECK_INT_EQ(gw_utf8_valid_sequence("\xf4\x90\x80\x80", 4), 0); /* above U+10FFFF */
    CHECK_INT_EQ(gw_utf8_valid_sequence("\x80", 1), 0);             /* lone continuation */
    CHECK_INT_EQ(gw_utf8_valid_sequence("\xff", 1), 0);
}

static void test_lengths(void)
{
    const char *s = "a\xc3\xa9\xf0\x9f\x98\x80"; /* a é 😀 : 7 bytes */
    CHECK_INT_EQ(gw_utf8_length(s, 7, GW_LENGTH_BYTES), 7);
    CHECK_INT_EQ(gw_utf8_length(s, 7, GW_LENGTH_CHARACTERS), 3);
    CHECK_INT_EQ(gw_utf8_length(s, 7, GW_LENGTH_UTF16), 4); /* the emoji is a surrogate pair */
    CHECK_INT_EQ(gw_utf8_length("", 0, GW_LENGTH_CHARACTERS), 0);
}

static void test_excerpt(void)
{
    gw_buf_t buf = GW_BUF_INIT;
    gw_buf_append_excerpt(&buf, "a\"b\\c\n\x01\xc3\xa9", 9, 40, 1);
    CHECK_STR_EQ(buf.base, "a\\\"b\\\\c\\x0a\\x01\xc3\xa9");
    buf.len = 0;
    gw_buf_append_excerpt(&buf, "\xc3\xa9", 2, 40, 0); /* keep_utf8 off: bytes are escaped */
    CHECK_STR_EQ(buf.base, "\\xc3\\xa9");
    buf.len = 0;
    gw_buf_append_excerpt(&buf, "abcdef", 6, 3, 1);
    CHECK_STR_EQ(buf.base, "abc...");
    buf.len = 0;
    gw_buf_append_excerpt(&buf, "\xc3", 1, 3, 1); /* a broken sequence is escaped, never copied */
    CHECK_STR_EQ(buf.base, "\\xc3");
    gw_buf_dispose(&buf);
}

int main(void)
{
    test_valid_sequences();
    test_lengths();
    test_excerpt();
    return check_done();
}

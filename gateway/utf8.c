#include "utf8.h"

size_t gw_utf8_valid_sequence(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    if (len == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    size_t need;
    unsigned min;
    unsigned cp;
    if ((s[0] & 0xe0) == 0xc0) {
        need = 2, min = 0x80, cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        need = 3, min = 0x800, cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        need = 4, min = 0x10000, cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    for (size_t i = 1; i < need; ++i) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range, or a surrogate */
    return need;
}

size_t gw_utf8_length(const char *str, size_t len, gw_length_unit_t unit)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t count = 0;
    switch (unit) {
    case GW_LENGTH_BYTES:
        return len;
    case GW_LENGTH_CHARACTERS:
        /* every character has exactly one byte that is not a continuation byte */
        for (size_t i = 0; i < len; ++i)
            count += (s[i] & 0xc0) != 0x80;
        return count;
    case GW_LENGTH_UTF16:
        /* a 4-byte sequence is a supplementary character: a surrogate pair */
        for (size_t i = 0; i < len; ++i)
            count += ((s[i] & 0xc0) != 0x80) + ((s[i] & 0xf8) == 0xf0);
        return count;
    }
    return len;
}

#include <string.h>
#include "path.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends one decoded segment to dst (which holds the result so far) and applies dot-segment rules. */
static size_t add_segment(char *dst, size_t dst_len, const char *seg, size_t seg_len)
{
    const char *semicolon = memchr(seg, ';', seg_len);
    if (semicolon != NULL)
        seg_len = (size_t)(semicolon - seg);
    if (seg_len == 0 || (seg_len == 1 && seg[0] == '.'))
        return dst_len;
    if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
        while (dst_len > 0 && dst[dst_len - 1] != '/')
            --dst_len;
        return dst_len > 0 ? dst_len - 1 : 0;
    }
    dst[dst_len++] = '/';
    memcpy(dst + dst_len, seg, seg_len);
    return dst_len + seg_len;
}

/* Cuts the query or fragment off *len; returns 1 when what is left is already what normalisation would make of it:
 * it starts with '/', has no escape, parameter, empty or dot-led segment, and no trailing '/'. Clients send such
 * paths nearly always: one pass over them suffices. */
static int cut_query_is_normal(const char *path, size_t *len)
{
    /* the bytes that need a closer look; a table keeps the loop to one load and one branch a byte */
    static const unsigned char special[256] = {['?'] = 1, ['#'] = 1, ['%'] = 1, [';'] = 1, ['/'] = 1};
    int normal = *len != 0 && path[0] == '/';
    for (size_t i = 0; i < *len; ++i) {
        char c = path[i];
        if (!special[(unsigned char)c])
            continue;
        if (c == '?' || c == '#') {
            *len = i;
            break;
        }
        if (c == '%' || c == ';' || (c == '/' && i + 1 < *len && (path[i + 1] == '/' || path[i + 1] == '.')))
            normal = 0;
    }
    return normal && *len != 0 && (*len == 1 || path[*len - 1] != '/');
}

const char *gw_path_normalize(gw_arena_t *arena, const char *path, size_t len, size_t *out_len)
{
    if (cut_query_is_normal(path, &len)) {
        *out_len = len;
        return gw_arena_strndup(arena, path, len);
    }
    /* decode first, so that %2F and %2E%2E take part in segment handling */
    char *decoded = gw_arena_alloc(arena, len + 1);
    size_t dlen = 0;
    for (size_t i = 0; i < len; ++i) {
        int hi, lo;
        if (path[i] == '%' && i + 2 < len && (hi = hex_value(path[i + 1])) >= 0 && (lo = hex_value(path[i + 2])) >= 0) {
            decoded[dlen++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            decoded[dlen++] = path[i];
        }
    }
    char *dst = gw_arena_alloc(arena, dlen + 2);
    size_t dst_len = 0, seg_start = 0;
    for (size_t i = 0; i <= dlen; ++i) {
        if (i == dlen || decoded[i] == '/') {
            dst_len = add_segment(dst, dst_len, decoded + seg_start, i - seg_start);
            seg_start = i + 1;
        }
    }
    if (dst_len == 0)
        dst[dst_len++] = '/';
    dst[dst_len] = '\0';
    *out_len = dst_len;
    return dst;
}

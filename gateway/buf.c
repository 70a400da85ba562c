#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "buf.h"
#include "utf8.h"

void gw_buf_grow(gw_buf_t *buf, size_t extra)
{
    if (buf->cap - buf->len > extra)
        return;
    size_t cap = buf->cap == 0 ? 256 : buf->cap;
    while (cap - buf->len <= extra) {
        if (cap > SIZE_MAX / 2)
            gw_fatal("buffer size overflow");
        cap *= 2;
    }
    char *base = realloc(buf->base, cap);
    if (base == NULL)
        gw_fatal("out of memory (buffer of %zu bytes)", cap);
    buf->base = base;
    buf->cap = cap;
}

void gw_buf_printf(gw_buf_t *buf, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int needed = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (needed < 0)
        gw_fatal("vsnprintf failed for format \"%s\"", fmt);
    gw_buf_reserve(buf, (size_t)needed);
    va_start(args, fmt);
    vsnprintf(buf->base + buf->len, (size_t)needed + 1, fmt, args);
    va_end(args);
    buf->len += (size_t)needed;
}

void gw_buf_dispose(gw_buf_t *buf)
{
    free(buf->base);
    buf->base = NULL;
    buf->len = buf->cap = 0;
}

void gw_buf_append_excerpt(gw_buf_t *buf, const char *bytes, size_t len, size_t max_chars, int keep_utf8)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, chars = 0;
    while (i < len) {
        if (chars == max_chars) {
            gw_buf_appendz(buf, "...");
            return;
        }
        unsigned char c = (unsigned char)bytes[i];
        size_t seq;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            gw_buf_append(buf, esc, 2);
            ++i;
        } else if (c >= 0x20 && c < 0x7f) {
            gw_buf_append(buf, &bytes[i], 1);
            ++i;
        } else if (keep_utf8 && c >= 0x80 && (seq = gw_utf8_valid_sequence(bytes + i, len - i)) != 0) {
            gw_buf_append(buf, &bytes[i], seq);
            i += seq;
        } else {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            gw_buf_append(buf, esc, 4);
            ++i;
        }
        ++chars;
    }
}

/* 1 for the bytes a JSON string takes as they are: printable ASCII other than the quote and the backslash */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init" /* the quote and the backslash are cleared after their ranges */
static const unsigned char json_plain[256] = {
#define P4(c) [c] = 1, [c + 1] = 1, [c + 2] = 1, [c + 3] = 1
#define P16(c) P4(c), P4(c + 4), P4(c + 8), P4(c + 12)
    P16(0x20), P16(0x30), P16(0x40), P16(0x50), P16(0x60), P16(0x70), ['"'] = 0, ['\\'] = 0,
#undef P16
#undef P4
};
#pragma GCC diagnostic pop

void gw_buf_append_json_string(gw_buf_t *buf, const char *bytes, size_t len, size_t max_bytes)
{
    static const char hex[] = "0123456789abcdef";
    int cut = len > max_bytes;
    if (cut)
        len = max_bytes;
    gw_buf_reserve(buf, len + 8);
    gw_buf_append(buf, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)bytes[i];
        size_t run = i;
        while (run < len && json_plain[(unsigned char)bytes[run]]) /* one load a byte: every record has a path */
            ++run;
        if (run > i) {
            gw_buf_append(buf, bytes + i, run - i);
            i = run;
            continue;
        }
        size_t seq;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            gw_buf_append(buf, esc, 2);
            ++i;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            gw_buf_append(buf, esc, 6);
            ++i;
        } else if ((seq = gw_utf8_valid_sequence(bytes + i, len - i)) != 0) {
            gw_buf_append(buf, bytes + i, seq);
            i += seq;
        } else {
            gw_buf_appendz(buf, "\\ufffd");
            ++i;
        }
    }
    if (cut)
        gw_buf_appendz(buf, "...");
    gw_buf_append(buf, "\"", 1);
}

size_t gw_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return SIZE_MAX;
    size_t row[41];
    for (size_t j = 0; j <= lb; ++j)
        row[j] = j;
    for (size_t i = 1; i <= la; ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; ++j) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

void gw_fatal(const char *fmt, ...)
{
    va_list args;
    fputs("crmgate: fatal: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    abort();
}

void gw_log(const char *level, const char *fmt, ...)
{
    char line[2048], stamp[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_list args;
    va_start(args, fmt);
    vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);
    /* one fprintf per line so lines from several threads never interleave */
    fprintf(stderr, "%s.%03ldZ crmgate[%s]: %s\n", stamp, now.tv_nsec / 1000000, level, line);
}

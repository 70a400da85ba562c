/*
 * Growable byte buffers, bounded escaping of untrusted bytes, and the fatal
 * error path. Out-of-memory is a bug-class failure here as in h2o: it aborts.
 */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct st_gw_buf_t {
    char *base; /* heap, owned by the buffer; always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
} gw_buf_t;

#define GW_BUF_INIT {NULL, 0, 0}

/** Grows the buffer so that extra more bytes and a NUL fit (the slow path of gw_buf_reserve). */
void gw_buf_grow(gw_buf_t *buf, size_t extra);

/* Inline: the audit record is built from dozens of small appends on every request. */
static inline void gw_buf_reserve(gw_buf_t *buf, size_t extra)
{
    if (buf->cap - buf->len <= extra)
        gw_buf_grow(buf, extra);
}

static inline void gw_buf_append(gw_buf_t *buf, const void *bytes, size_t len)
{
    gw_buf_reserve(buf, len);
    if (len != 0)
        memcpy(buf->base + buf->len, bytes, len);
    buf->len += len;
    buf->base[buf->len] = '\0';
}

static inline void gw_buf_appendz(gw_buf_t *buf, const char *s)
{
    gw_buf_append(buf, s, strlen(s));
}

void gw_buf_printf(gw_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_buf_dispose(gw_buf_t *buf);

/**
 * Appends an excerpt of untrusted bytes that is safe to show anywhere: printable
 * ASCII is kept, quotes and backslashes are escaped, anything else becomes \xNN
 * (valid UTF-8 sequences are kept whole when keep_utf8 is set), and at most
 * max_chars input characters are taken; a cut excerpt ends with "...".
 */
void gw_buf_append_excerpt(gw_buf_t *buf, const char *bytes, size_t len, size_t max_chars, int keep_utf8);

/**
 * Appends bytes as a JSON string literal (with the quotes): quotes, backslashes
 * and control characters escaped, invalid UTF-8 replaced by U+FFFD, and at most
 * max_bytes of input taken (a cut string ends with "...").
 */
void gw_buf_append_json_string(gw_buf_t *buf, const char *bytes, size_t len, size_t max_bytes);

/** Levenshtein distance of two short strings (SIZE_MAX when either is over 40 bytes): for "did you mean". */
size_t gw_edit_distance(const char *a, const char *b);

/** Prints "crmgate: fatal: ..." to stderr and aborts. */
void gw_fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/** Log lines go to stderr, one line each, prefixed with time and level. */
void gw_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define gw_log_info(...) gw_log("info", __VA_ARGS__)
#define gw_log_warn(...) gw_log("warn", __VA_ARGS__)
#define gw_log_error(...) gw_log("error", __VA_ARGS__)

#endif

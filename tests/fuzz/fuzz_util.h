/*
 * Shared helpers of the fuzz targets: invariant checks that abort (so that
 * libFuzzer and the replay driver both report them), an independent UTF-8
 * validator, and the checks of rendered error documents used by fuzz_body and
 * fuzz_render. Header-only: every target is one translation unit plus this.
 */
#ifndef CRMGATE_FUZZ_UTIL_H
#define CRMGATE_FUZZ_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "buf.h"
#include "evaluate.h"
#include "render.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant failed: say which, with the file and line of the check, and abort. */
static void __attribute__((format(printf, 3, 4), noreturn, unused)) fuzz_fail(const char *file, int line, const char *fmt, ...)
{
    va_list args;
    fprintf(stderr, "\n==crmgate-fuzz== invariant failed at %s:%d: ", file, line);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    abort();
}

#define FUZZ_CHECK(cond, ...)                                                                                              \
    do {                                                                                                                   \
        if (!(cond))                                                                                                       \
            fuzz_fail(__FILE__, __LINE__, __VA_ARGS__);                                                                    \
    } while (0)

/*
 * Known bugs can be tolerated while fuzzing for the others: CRMGATE_FUZZ_ALLOW
 * is a comma-separated list of check names (see README.md). The replay ctests
 * never set it, so a reproducer in the corpus fails until its bug is fixed.
 */
static int __attribute__((unused)) fuzz_allowed(const char *check)
{
    static const char *allow;
    static int read;
    if (!read) {
        allow = getenv("CRMGATE_FUZZ_ALLOW");
        read = 1;
    }
    if (allow == NULL)
        return 0;
    size_t n = strlen(check);
    for (const char *p = allow; (p = strstr(p, check)) != NULL; p += n)
        if ((p == allow || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

/* Like FUZZ_CHECK, unless the named check is tolerated through CRMGATE_FUZZ_ALLOW. */
#define FUZZ_CHECK_NAMED(name, cond, ...)                                                                                  \
    do {                                                                                                                   \
        if (!(cond) && !fuzz_allowed(name))                                                                                \
            fuzz_fail(__FILE__, __LINE__, "[" name "] " __VA_ARGS__);                                                      \
    } while (0)

/*
 * Strict UTF-8 (RFC 3629), written independently of gateway/utf8.c: no
 * overlong forms, no surrogates, nothing above U+10FFFF. Returns the number of
 * code points, or -1 when the bytes are not UTF-8.
 */
static long __attribute__((unused)) fuzz_utf8_count(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    long count = 0;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c < 0x80) {
            ++i, ++count;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return -1;
        }
        if (len - i <= need)
            return -1;
        for (size_t k = 1; k <= need; ++k) {
            if ((s[i + k] & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += need + 1;
        ++count;
    }
    return count;
}

static int __attribute__((unused)) fuzz_utf8_valid(const char *s, size_t len)
{
    return fuzz_utf8_count(s, len) >= 0;
}

/* Prints bytes C-escaped (for messages about an invariant). */
static void __attribute__((unused)) fuzz_print_escaped(FILE *fp, const char *s, size_t len, size_t max)
{
    fputc('"', fp);
    for (size_t i = 0; i < len && i < max; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, fp);
        else
            fprintf(fp, "\\x%02x", c);
    }
    fputs(len > max ? "\"..." : "\"", fp);
}

static int __attribute__((unused)) fuzz_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- rendered error documents ------------------------------------------- */

static const char *__attribute__((unused)) fuzz_member_string(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* How many stored violations a rendering shows: the enforced ones. */
static size_t fuzz_shown(const gw_result_t *result)
{
    size_t n = 0;
    for (size_t i = 0; i < result->violations.count; ++i)
        n += result->violations.items[i].mode == GW_MODE_ENFORCE;
    return n;
}

static void fuzz_dump_rendered(const char *what, const gw_buf_t *body)
{
    fprintf(stderr, "==crmgate-fuzz== %s (%zu bytes): ", what, body->len);
    fuzz_print_escaped(stderr, body->base != NULL ? body->base : "", body->len, 4000);
    fputc('\n', stderr);
}

#define FUZZ_CHECK_DOC(cond, what, body, ...)                                                                              \
    do {                                                                                                                   \
        if (!(cond)) {                                                                                                     \
            fuzz_dump_rendered(what, body);                                                                                \
            fuzz_fail(__FILE__, __LINE__, __VA_ARGS__);                                                                    \
        }                                                                                                                  \
    } while (0)

#define FUZZ_CHECK_DOC_NAMED(name, cond, what, body, ...)                                                                  \
    do {                                                                                                                   \
        if (!(cond) && !fuzz_allowed(name)) {                                                                              \
            fuzz_dump_rendered(what, body);                                                                                \
            fuzz_fail(__FILE__, __LINE__, "[" name "] " __VA_ARGS__);                                                      \
        }                                                                                                                  \
    } while (0)

/*
 * Renders a rejection in every format and checks each document:
 *  - text: valid UTF-8, exactly one line per shown violation (plus the
 *    CRMGATE-MORE line when violations were left out), no CR;
 *  - Oracle JSON (framework version 4, JSON accepted): parses, "status" is the
 *    status as a string, one o:errorDetails item per shown violation (plus
 *    CRMGATE-MORE), each with its code, its pointer and a detail;
 *  - problem+json: parses, "status" is the status, one "errors" item per shown
 *    violation with its code, pointer and detail, and "limit" when it has one.
 */
static void __attribute__((unused)) fuzz_check_rejection(const gw_result_t *in)
{
    gw_result_t result = *in;
    size_t shown = fuzz_shown(&result);
    int more = result.violations.total > result.violations.count;
    gw_rendered_t r;
    json_error_t jerr;

    /* text: framework version 1 */
    result.framework_version = 1;
    result.accepts_json = 1;
    gw_render_rejection(&result, GW_ERRORS_ORACLE, "fuzz-request-id", &r);
    FUZZ_CHECK(r.content_type != NULL && fuzz_starts_with(r.content_type, "text/plain"), "text: content type %s",
               r.content_type);
    {
        const char *s = r.body.base != NULL ? r.body.base : "";
        size_t lines = 0;
        for (size_t i = 0; i < r.body.len; ++i)
            lines += s[i] == '\n';
        FUZZ_CHECK_DOC(fuzz_utf8_valid(s, r.body.len), "text", &r.body, "text rejection is not valid UTF-8");
        FUZZ_CHECK_DOC_NAMED("text-lines", lines == shown + (size_t)more, "text", &r.body,
                             "text rejection has %zu lines for %zu shown violations%s", lines, shown,
                             more ? " and the CRMGATE-MORE line" : "");
        FUZZ_CHECK_DOC_NAMED("text-lines", memchr(s, '\r', r.body.len) == NULL, "text", &r.body,
                             "text rejection holds a raw CR");
        FUZZ_CHECK_DOC(r.body.len == 0 || s[r.body.len - 1] == '\n', "text", &r.body, "text rejection does not end a line");
    }
    gw_buf_dispose(&r.body);

    /* Oracle JSON: framework version 4 */
    result.framework_version = 4;
    result.accepts_json = 1;
    gw_render_rejection(&result, GW_ERRORS_ORACLE, "fuzz-request-id", &r);
    FUZZ_CHECK(strcmp(r.content_type, "application/vnd.oracle.adf.error+json") == 0, "oracle: content type %s",
               r.content_type);
    {
        FUZZ_CHECK_DOC(r.body.base != NULL && fuzz_utf8_valid(r.body.base, r.body.len), "oracle json", &r.body,
                       "Oracle JSON is not valid UTF-8");
        json_t *doc = json_loadb(r.body.base, r.body.len, JSON_REJECT_DUPLICATES, &jerr);
        FUZZ_CHECK_DOC(doc != NULL, "oracle json", &r.body, "Oracle JSON does not parse: %s", jerr.text);
        char status[16];
        snprintf(status, sizeof(status), "%d", result.status);
        const char *st = fuzz_member_string(doc, "status");
        FUZZ_CHECK_DOC(st != NULL && strcmp(st, status) == 0, "oracle json", &r.body, "Oracle JSON status is not \"%s\"",
                       status);
        FUZZ_CHECK_DOC(fuzz_member_string(doc, "title") != NULL, "oracle json", &r.body, "Oracle JSON has no title");
        json_t *details = json_object_get(doc, "o:errorDetails");
        FUZZ_CHECK_DOC(json_is_array(details) && json_array_size(details) == shown + (size_t)more, "oracle json", &r.body,
                       "Oracle JSON has %zu o:errorDetails for %zu shown violations", json_array_size(details), shown);
        size_t k = 0;
        for (size_t i = 0; i < result.violations.count; ++i) {
            const gw_violation_t *v = &result.violations.items[i];
            if (v->mode != GW_MODE_ENFORCE)
                continue;
            json_t *item = json_array_get(details, k++);
            const char *code = fuzz_member_string(item, "o:errorCode"), *path = fuzz_member_string(item, "o:errorPath");
            FUZZ_CHECK_DOC(code != NULL && strcmp(code, gw_violation_code_name(v->code)) == 0, "oracle json", &r.body,
                           "item %zu: o:errorCode is not %s", k - 1, gw_violation_code_name(v->code));
            FUZZ_CHECK_DOC(path != NULL && strcmp(path, v->pointer) == 0, "oracle json", &r.body,
                           "item %zu: o:errorPath is missing or not the violation's pointer", k - 1);
            FUZZ_CHECK_DOC(fuzz_member_string(item, "detail") != NULL, "oracle json", &r.body, "item %zu: no detail",
                           k - 1);
        }
        json_decref(doc);
    }
    gw_buf_dispose(&r.body);

    /* problem+json */
    gw_render_rejection(&result, GW_ERRORS_PROBLEM_JSON, "fuzz-request-id", &r);
    FUZZ_CHECK(strcmp(r.content_type, "application/problem+json") == 0, "problem: content type %s", r.content_type);
    {
        FUZZ_CHECK_DOC(r.body.base != NULL && fuzz_utf8_valid(r.body.base, r.body.len), "problem+json", &r.body,
                       "problem+json is not valid UTF-8");
        json_t *doc = json_loadb(r.body.base, r.body.len, JSON_REJECT_DUPLICATES, &jerr);
        FUZZ_CHECK_DOC(doc != NULL, "problem+json", &r.body, "problem+json does not parse: %s", jerr.text);
        json_t *status = json_object_get(doc, "status");
        FUZZ_CHECK_DOC(json_is_integer(status) && json_integer_value(status) == result.status, "problem+json", &r.body,
                       "problem+json status is not %d", result.status);
        FUZZ_CHECK_DOC(fuzz_member_string(doc, "type") != NULL && fuzz_member_string(doc, "title") != NULL &&
                           fuzz_member_string(doc, "detail") != NULL,
                       "problem+json", &r.body, "problem+json lacks type, title or detail");
        const char *instance = fuzz_member_string(doc, "instance");
        FUZZ_CHECK_DOC(instance != NULL && strcmp(instance, "fuzz-request-id") == 0, "problem+json", &r.body,
                       "problem+json instance is not the request id");
        json_t *errors = json_object_get(doc, "errors");
        FUZZ_CHECK_DOC(json_is_array(errors) && json_array_size(errors) == shown, "problem+json", &r.body,
                       "problem+json has %zu errors for %zu shown violations", json_array_size(errors), shown);
        size_t k = 0;
        for (size_t i = 0; i < result.violations.count; ++i) {
            const gw_violation_t *v = &result.violations.items[i];
            if (v->mode != GW_MODE_ENFORCE)
                continue;
            json_t *item = json_array_get(errors, k++);
            const char *code = fuzz_member_string(item, "code"), *ptr = fuzz_member_string(item, "pointer");
            FUZZ_CHECK_DOC(code != NULL && strcmp(code, gw_violation_code_name(v->code)) == 0, "problem+json", &r.body,
                           "error %zu: code is not %s", k - 1, gw_violation_code_name(v->code));
            FUZZ_CHECK_DOC(ptr != NULL && strcmp(ptr, v->pointer) == 0, "problem+json", &r.body,
                           "error %zu: pointer is missing or not the violation's pointer", k - 1);
            FUZZ_CHECK_DOC(fuzz_member_string(item, "detail") != NULL, "problem+json", &r.body, "error %zu: no detail",
                           k - 1);
            json_t *limit = json_object_get(item, "limit");
            FUZZ_CHECK_DOC(v->limit >= 0 ? json_is_integer(limit) && json_integer_value(limit) == v->limit : limit == NULL,
                           "problem+json", &r.body, "error %zu: limit does not match", k - 1);
        }
        json_decref(doc);
    }
    gw_buf_dispose(&r.body);
}

#endif

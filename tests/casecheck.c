/*
 * casecheck: runs one case folder through the validation core and compares the
 * verdict with the folder's `expected` (and `expected-body`, when present).
 * The format is described in tests/cases/README.md.
 *
 * Usage: casecheck RULES_PATH CASE_DIR
 * Exit status: 0 the verdict matches, 1 it does not, 2 the case is malformed.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "buf.h"
#include "evaluate.h"
#include "render.h"
#include "rules.h"

#define EXIT_MATCH 0
#define EXIT_MISMATCH 1
#define EXIT_MALFORMED 2

/* A case folder, read into memory. The request's strings point into `request`. */
typedef struct st_case_t {
    const char *dir;
    gw_buf_t request;
    gw_buf_t expected;
    gw_buf_t expected_body;
    int has_expected_body;
    gw_request_t req;
    gw_limits_t limits;
} case_t;

/* The headers a case can set, and where each one goes in gw_request_t. */
static const struct {
    const char *name;
    size_t offset;
} mapped_headers[] = {
    {"Content-Type", offsetof(gw_request_t, content_type)},
    {"Accept", offsetof(gw_request_t, accept)},
    {"Upsert-Mode", offsetof(gw_request_t, upsert_mode)},
    {"REST-Framework-Version", offsetof(gw_request_t, framework_version)},
    {"X-HTTP-Method-Override", offsetof(gw_request_t, method_override)},
};

/* ---- files -------------------------------------------------------------- */

static void case_path(gw_buf_t *out, const char *dir, const char *name)
{
    out->len = 0;
    gw_buf_printf(out, "%s/%s", dir, name);
}

/* Reads a whole file; returns 0, or -1 with errno set (ENOENT: it does not exist). */
static int read_file(const char *path, gw_buf_t *out)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return -1;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0)
        gw_buf_append(out, chunk, n);
    int failed = ferror(fp);
    fclose(fp);
    if (failed) {
        errno = EIO;
        return -1;
    }
    if (out->base == NULL)
        gw_buf_append(out, "", 0); /* an empty file still yields a NUL-terminated buffer */
    return 0;
}

/* Reads CASE_DIR/name; a missing file is an error only when it is required. */
static int read_case_file(const char *dir, const char *name, gw_buf_t *out, int required, int *found)
{
    gw_buf_t path = GW_BUF_INIT;
    case_path(&path, dir, name);
    int ret = read_file(path.base, out);
    *found = ret == 0;
    if (ret != 0 && (required || errno != ENOENT)) {
        fprintf(stderr, "casecheck: %s: %s\n", path.base, strerror(errno));
    } else {
        ret = 0;
    }
    gw_buf_dispose(&path);
    return ret;
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- the request file --------------------------------------------------- */

/* Returns the line starting at *pos (without "\n" or "\r\n") and moves *pos past it; -1 at the end. */
static int next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *line_len)
{
    if (*pos >= len)
        return -1;
    const char *start = text + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    size_t n = nl != NULL ? (size_t)(nl - start) : len - *pos;
    *pos += n + (nl != NULL);
    if (n > 0 && start[n - 1] == '\r')
        --n;
    *line = start;
    *line_len = n;
    return 0;
}

static void trim_ows(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t'))
        ++*s, --*len;
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        --*len;
}

/* "METHOD TARGET" or "METHOD TARGET HTTP/1.x". */
static int parse_request_line(const char *line, size_t len, gw_request_t *req)
{
    const char *sp = memchr(line, ' ', len);
    if (sp == NULL || sp == line)
        return -1;
    req->method = line;
    req->method_len = (size_t)(sp - line);
    req->path = sp + 1;
    const char *end = line + len;
    const char *sp2 = memchr(req->path, ' ', (size_t)(end - req->path));
    req->path_len = (size_t)((sp2 != NULL ? sp2 : end) - req->path);
    if (req->path_len == 0)
        return -1;
    if (sp2 != NULL && !((size_t)(end - sp2 - 1) >= 5 && memcmp(sp2 + 1, "HTTP/", 5) == 0))
        return -1;
    return 0;
}

/* Maps one "Name: value" line; headers the engine does not judge are ignored. */
static int parse_header(const char *line, size_t len, gw_request_t *req)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL || colon == line)
        return -1;
    size_t name_len = (size_t)(colon - line);
    const char *value = colon + 1;
    size_t value_len = len - name_len - 1;
    trim_ows(&value, &value_len);
    for (size_t i = 0; i < sizeof(mapped_headers) / sizeof(mapped_headers[0]); ++i) {
        if (strlen(mapped_headers[i].name) != name_len || strncasecmp(mapped_headers[i].name, line, name_len) != 0)
            continue;
        gw_header_value_t *h = (gw_header_value_t *)((char *)req + mapped_headers[i].offset);
        if (h->count++ == 0) { /* the engine sees the first value and the count */
            h->base = value;
            h->len = value_len;
        }
    }
    return 0;
}

/* Parses the request line and headers; the body is every byte after the empty line, untouched. */
static int parse_request(case_t *c)
{
    const char *text = c->request.base;
    size_t len = c->request.len, pos = 0;
    const char *line;
    size_t line_len;
    if (next_line(text, len, &pos, &line, &line_len) != 0 || parse_request_line(line, line_len, &c->req) != 0) {
        fprintf(stderr, "casecheck: %s/request: the first line must be \"METHOD TARGET [HTTP/1.1]\"\n", c->dir);
        return -1;
    }
    while (next_line(text, len, &pos, &line, &line_len) == 0) {
        if (line_len == 0) {
            c->req.body = text + pos;
            c->req.body_len = len - pos;
            return 0;
        }
        if (parse_header(line, line_len, &c->req) != 0) {
            fprintf(stderr, "casecheck: %s/request: bad header line \"%.*s\"\n", c->dir, (int)line_len, line);
            return -1;
        }
    }
    fprintf(stderr, "casecheck: %s/request: no empty line ends the headers\n", c->dir);
    return -1;
}

/* ---- the env file ------------------------------------------------------- */

static int parse_size(const char *s, size_t len, size_t *out)
{
    if (len == 0 || len > 18)
        return -1;
    size_t v = 0;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Applies one "key=value" line of the env file to the limits. */
static int apply_env_line(const char *line, size_t len, gw_limits_t *limits)
{
    static const struct {
        const char *key;
        size_t offset;
    } keys[] = {{"max-body", offsetof(gw_limits_t, max_body)},
                {"max-depth", offsetof(gw_limits_t, max_depth)},
                {"max-violations", offsetof(gw_limits_t, max_violations)}};
    const char *eq = memchr(line, '=', len);
    if (eq == NULL)
        return -1;
    size_t key_len = (size_t)(eq - line);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); ++i) {
        if (strlen(keys[i].key) == key_len && memcmp(keys[i].key, line, key_len) == 0)
            return parse_size(eq + 1, len - key_len - 1, (size_t *)((char *)limits + keys[i].offset));
    }
    return -1;
}

static int read_env(case_t *c)
{
    gw_buf_t env = GW_BUF_INIT;
    int found, ret = read_case_file(c->dir, "env", &env, 0, &found);
    size_t pos = 0;
    const char *line;
    size_t line_len;
    while (ret == 0 && found && next_line(env.base, env.len, &pos, &line, &line_len) == 0) {
        if (line_len == 0 || line[0] == '#')
            continue;
        if (apply_env_line(line, line_len, &c->limits) != 0) {
            fprintf(stderr, "casecheck: %s/env: bad line \"%.*s\" (max-body, max-depth or max-violations=N)\n",
                    c->dir, (int)line_len, line);
            ret = -1;
        }
    }
    gw_buf_dispose(&env);
    return ret;
}

/* ---- verdicts ----------------------------------------------------------- */

static void print_verdict(const gw_result_t *result, gw_buf_t *out)
{
    switch (result->decision) {
    case GW_DECISION_PASS_THROUGH:
        gw_buf_appendz(out, "pass-through\n");
        return;
    case GW_DECISION_FORWARD:
        gw_buf_appendz(out, "forward\n");
        break;
    case GW_DECISION_REPORT:
        gw_buf_appendz(out, "report\n");
        break;
    case GW_DECISION_REJECT:
        gw_buf_printf(out, "reject %d\n", result->status);
        break;
    }
    for (size_t i = 0; i < result->violations.count; ++i) {
        const gw_violation_t *v = &result->violations.items[i];
        gw_buf_printf(out, "%s %s%s\n", gw_violation_code_name(v->code), v->pointer[0] != '\0' ? v->pointer : "/",
                      v->mode == GW_MODE_REPORT ? " report" : "");
    }
}

/* The expected file without comments and blank lines, one "\n"-ended line each. */
static void normalize_expected(const gw_buf_t *in, gw_buf_t *out)
{
    size_t pos = 0;
    const char *line;
    size_t line_len;
    gw_buf_append(out, "", 0);
    while (next_line(in->base, in->len, &pos, &line, &line_len) == 0) {
        if (line_len == 0 || line[0] == '#')
            continue;
        gw_buf_append(out, line, line_len);
        gw_buf_append(out, "\n", 1);
    }
}

/* Prints a block so that a missing final newline stays visible. */
static void print_block(const char *title, const gw_buf_t *text)
{
    printf("%s:\n", title);
    fwrite(text->base, 1, text->len, stdout);
    if (text->len != 0 && text->base[text->len - 1] != '\n')
        printf("\n(no newline at end)\n");
}

static int compare(const char *what, const gw_buf_t *expected, const gw_buf_t *actual)
{
    if (expected->len == actual->len && memcmp(expected->base, actual->base, actual->len) == 0)
        return EXIT_MATCH;
    printf("%s mismatch\n", what);
    print_block("Expected", expected);
    print_block("Actual", actual);
    return EXIT_MISMATCH;
}

/* Compares the rendered error document (Oracle format, request id "case") with expected-body. */
static int compare_body(const case_t *c, const gw_result_t *result)
{
    gw_buf_t body = GW_BUF_INIT;
    gw_buf_append(&body, "", 0);
    if (result->decision == GW_DECISION_REJECT) {
        gw_rendered_t rendered;
        gw_render_rejection(result, GW_ERRORS_ORACLE, "case", &rendered);
        gw_buf_append(&body, rendered.body.base, rendered.body.len);
        gw_buf_dispose(&rendered.body);
    }
    int ret = compare("expected-body", &c->expected_body, &body);
    gw_buf_dispose(&body);
    return ret;
}

/* Judges the request with the rule set and compares the verdict (and body) with the expected files. */
static int run_case(const case_t *c, const gw_ruleset_t *rules)
{
    gw_evaluator_t ev;
    gw_evaluator_init(&ev, &c->limits);
    gw_result_t result = {.decision = GW_DECISION_PASS_THROUGH};
    const gw_route_t *route = gw_evaluate_route(&ev, rules, &c->req);
    if (route != NULL)
        gw_evaluate(&ev, route, &c->req, &result);

    gw_buf_t actual = GW_BUF_INIT, expected = GW_BUF_INIT;
    gw_buf_append(&actual, "", 0);
    print_verdict(&result, &actual);
    normalize_expected(&c->expected, &expected);
    int ret = compare("expected", &expected, &actual);
    if (ret == EXIT_MATCH && c->has_expected_body)
        ret = compare_body(c, &result);
    gw_buf_dispose(&actual);
    gw_buf_dispose(&expected);
    gw_evaluator_dispose(&ev);
    return ret;
}

/* ---- main --------------------------------------------------------------- */

/* The case's own rules/ directory wins over the suite's rule path. */
static gw_ruleset_t *load_rules(const char *rules_path, const char *dir)
{
    gw_buf_t local = GW_BUF_INIT;
    case_path(&local, dir, "rules");
    const char *path = is_directory(local.base) ? local.base : rules_path;
    gw_error_t err;
    gw_error_clear(&err);
    gw_ruleset_t *rules = gw_ruleset_load(&path, 1, NULL, &err);
    if (rules == NULL)
        fprintf(stderr, "casecheck: %s\n", err.text);
    gw_buf_dispose(&local);
    return rules;
}

static int read_case(case_t *c)
{
    int found;
    if (read_case_file(c->dir, "request", &c->request, 1, &found) != 0 ||
        read_case_file(c->dir, "expected", &c->expected, 1, &found) != 0 ||
        read_case_file(c->dir, "expected-body", &c->expected_body, 0, &c->has_expected_body) != 0)
        return -1;
    return parse_request(c) != 0 || read_env(c) != 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: casecheck RULES_PATH CASE_DIR\n");
        return EXIT_MALFORMED;
    }
    case_t c = {.dir = argv[2], .limits = GW_LIMITS_DEFAULT};
    int ret = EXIT_MALFORMED;
    if (read_case(&c) == 0) {
        gw_ruleset_t *rules = load_rules(argv[1], c.dir);
        if (rules != NULL) {
            ret = run_case(&c, rules);
            gw_ruleset_release(rules);
        }
    }
    gw_buf_dispose(&c.request);
    gw_buf_dispose(&c.expected);
    gw_buf_dispose(&c.expected_body);
    return ret;
}

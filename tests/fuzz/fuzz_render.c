/*
 * fuzz_render: bytes are decoded into a few violations (code, mode, pointer,
 * field, expected, actual, excerpt, limit, found), collected with
 * gw_violations_add() under a small cap, and rendered in every format; the
 * bytes left over are an upstream error body for gw_upstream_excerpt().
 *
 * The decoded values keep the producers' contract (gateway/validate.c,
 * evaluate.c, render.c): strings are valid UTF-8 (they come from jansson or
 * from the rule files) but may hold any character, excerpts went through
 * gw_buf_append_excerpt(), the fields a code's sentence needs are set, and a
 * status is an HTTP status.
 *
 * Invariants, beyond "no crash, no sanitizer report":
 *  - a rejection renders as text (valid UTF-8, one line per enforced
 *    violation, plus CRMGATE-MORE), Oracle JSON and problem+json (both parse
 *    with jansson, with the right status and one item per enforced violation):
 *    see fuzz_check_rejection();
 *  - gw_render_violation() and gw_render_upstream_error() give the document of
 *    the equivalent one-violation rejection, and that document is well-formed;
 *  - gw_upstream_excerpt() appends valid UTF-8 without raw control characters
 *    (C0 and DEL), of at most 4 * max_chars + 3 bytes ("\xNN" per character
 *    and "..."), and keeps what the buffer held before.
 *
 * Input layout (every read past the end gives 0):
 *   byte  nviol = b % 10, cap = 1 + b / 10 % 8
 *   byte  negotiation: bit 0 accepts JSON, bits 1-4 framework version
 *   per violation:
 *     byte code % GW_V__COUNT
 *     byte bit 0 report mode; bits 1-2 pointer: "", header, "/" + string;
 *          bit 3 field; bit 4 excerpt; bit 5 no actual (where allowed);
 *          bits 6-7 expected: string, "bool", "date", "datetime"
 *     2 bytes limit, 2 bytes found (big-endian; 0xffff is -1)
 *     strings as needed, each a length byte (% 48) and its bytes
 *   byte  upstream: bit 0 HTML, bits 1-2 upstream code, bits 3-7 status
 *   byte  max_chars for the excerpt
 *   rest  the upstream body
 */
#include "fuzz_util.h"
#include "validate.h"

typedef struct st_reader_t {
    const uint8_t *p;
    size_t n;
} reader_t;

static gw_arena_t arena;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static unsigned u8(reader_t *r)
{
    if (r->n == 0)
        return 0;
    --r->n;
    return *r->p++;
}

static int64_t u16_or_none(reader_t *r)
{
    unsigned hi = u8(r), lo = u8(r);
    unsigned v = hi << 8 | lo;
    return v == 0xffff ? -1 : (int64_t)v;
}

/* A string of the input, made valid UTF-8 (an invalid byte or a NUL becomes '?'). */
static const char *utf8_string(reader_t *r, const char *prefix)
{
    size_t len = u8(r) % 48;
    if (len > r->n)
        len = r->n;
    gw_buf_t buf = GW_BUF_INIT;
    gw_buf_appendz(&buf, prefix);
    for (size_t i = 0; i < len;) {
        size_t seq = fuzz_utf8_count((const char *)r->p + i, 1) == 1 ? 1 : 0;
        for (size_t k = 2; seq == 0 && k <= 4 && i + k <= len; ++k)
            if (fuzz_utf8_count((const char *)r->p + i, k) == 1)
                seq = k;
        if (seq == 0 || r->p[i] == 0) {
            gw_buf_append(&buf, "?", 1);
            ++i;
        } else {
            gw_buf_append(&buf, r->p + i, seq);
            i += seq;
        }
    }
    r->p += len;
    r->n -= len;
    const char *s = gw_arena_strndup(&arena, buf.base, buf.len);
    gw_buf_dispose(&buf);
    return s;
}

/* An excerpt as the validator makes one: escaped and capped. */
static const char *excerpt_string(reader_t *r)
{
    size_t len = u8(r) % 48;
    if (len > r->n)
        len = r->n;
    gw_buf_t buf = GW_BUF_INIT;
    gw_buf_append_excerpt(&buf, (const char *)r->p, len, 40, 1);
    r->p += len;
    r->n -= len;
    const char *s = gw_arena_strndup(&arena, buf.base != NULL ? buf.base : "", buf.len);
    gw_buf_dispose(&buf);
    return s;
}

static int actual_is_optional(gw_violation_code_t code)
{
    return code == GW_V_UPSERT_MODE || code == GW_V_FRAMEWORK_VERSION || code == GW_V_MEDIA_TYPE;
}

static void decode_violation(reader_t *r, gw_violation_t *v)
{
    static const char *const headers[] = {"Content-Type", "Upsert-Mode", "REST-Framework-Version"};
    static const char *const expected[] = {NULL, "bool", "date", "datetime"};
    memset(v, 0, sizeof(*v));
    v->code = (gw_violation_code_t)(u8(r) % GW_V__COUNT);
    unsigned flags = u8(r);
    v->mode = flags & 1 ? GW_MODE_REPORT : GW_MODE_ENFORCE;
    v->limit = u16_or_none(r);
    v->found = u16_or_none(r);
    switch (flags >> 1 & 3) {
    case 0:
        v->pointer = "";
        break;
    case 1:
        v->pointer = headers[u8(r) % 3];
        break;
    default:
        v->pointer = utf8_string(r, "/");
        break;
    }
    v->field = flags & 8 ? utf8_string(r, "") : NULL;
    v->excerpt = flags & 16 ? excerpt_string(r) : NULL;
    v->expected = expected[flags >> 6] != NULL ? expected[flags >> 6] : utf8_string(r, "");
    v->actual = flags & 32 && actual_is_optional(v->code) ? NULL : utf8_string(r, "");
}

/* Renders one violation alone, both ways, and checks they agree and are well-formed. */
static void check_single(const gw_violation_t *v, int status, gw_negotiation_t negotiation)
{
    gw_violation_t copy = *v;
    copy.mode = GW_MODE_ENFORCE;
    gw_result_t result;
    memset(&result, 0, sizeof(result));
    result.decision = GW_DECISION_REJECT;
    result.status = status;
    result.framework_version = negotiation.framework_version;
    result.accepts_json = negotiation.accepts_json;
    result.violations.items = &copy;
    result.violations.count = result.violations.total = result.violations.enforced = result.violations.max = 1;
    fuzz_check_rejection(&result);
    for (int f = 0; f < 2; ++f) {
        gw_error_format_t format = f == 0 ? GW_ERRORS_ORACLE : GW_ERRORS_PROBLEM_JSON;
        gw_rendered_t a, b;
        gw_render_violation(&copy, status, negotiation, format, "fuzz-request-id", &a);
        gw_render_rejection(&result, format, "fuzz-request-id", &b);
        FUZZ_CHECK(a.body.len == b.body.len && (a.body.len == 0 || memcmp(a.body.base, b.body.base, a.body.len) == 0) &&
                       strcmp(a.content_type, b.content_type) == 0,
                   "gw_render_violation differs from the rejection of the same violation");
        gw_buf_dispose(&a.body);
        gw_buf_dispose(&b.body);
    }
}

static void check_excerpt(const uint8_t *body, size_t len, int is_html, size_t max_chars)
{
    static const char prefix[] = "kept:";
    gw_buf_t out = GW_BUF_INIT;
    gw_buf_appendz(&out, prefix);
    gw_upstream_excerpt((const char *)body, len, is_html, max_chars, &out);
    FUZZ_CHECK(out.len >= sizeof(prefix) - 1 && memcmp(out.base, prefix, sizeof(prefix) - 1) == 0,
               "gw_upstream_excerpt changed what the buffer held");
    FUZZ_CHECK(strlen(out.base) == out.len, "the excerpt holds a NUL byte");
    const char *s = out.base + sizeof(prefix) - 1;
    size_t n = out.len - (sizeof(prefix) - 1);
    FUZZ_CHECK_DOC(fuzz_utf8_valid(s, n), "excerpt", &out, "the excerpt is not valid UTF-8");
    for (size_t i = 0; i < n; ++i)
        FUZZ_CHECK_DOC((unsigned char)s[i] >= 0x20 && s[i] != 0x7f, "excerpt", &out,
                       "the excerpt holds the raw control character 0x%02x", (unsigned char)s[i]);
    FUZZ_CHECK_DOC(n <= 4 * max_chars + 3, "excerpt", &out, "the excerpt has %zu bytes for max_chars %zu", n, max_chars);
    gw_buf_dispose(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader_t r = {data, size};
    gw_arena_reset(&arena);
    unsigned b0 = u8(&r), b1 = u8(&r);
    size_t nviol = b0 % 10, cap = 1 + b0 / 10 % 8;
    gw_negotiation_t negotiation = {.framework_version = (int)(b1 >> 1 & 15), .accepts_json = (int)(b1 & 1)};

    gw_result_t result;
    memset(&result, 0, sizeof(result));
    result.framework_version = negotiation.framework_version;
    result.accepts_json = negotiation.accepts_json;
    gw_violations_init(&result.violations, &arena, cap);
    for (size_t i = 0; i < nviol; ++i) {
        gw_violation_t v;
        decode_violation(&r, &v);
        gw_violations_add(&result.violations, &v);
    }
    const gw_violations_t *list = &result.violations;
    FUZZ_CHECK(list->total == nviol && list->count == (nviol < cap ? nviol : cap) && list->enforced <= list->total,
               "gw_violations_add counted %zu/%zu/%zu for %zu added under a cap of %zu", list->count, list->total,
               list->enforced, nviol, cap);
    if (list->enforced != 0) {
        result.decision = GW_DECISION_REJECT;
        result.status = list->status;
        FUZZ_CHECK(result.status == 400 || result.status == 413 || result.status == 415 || result.status == 503 ||
                       result.status >= 500,
                   "status %d", result.status);
        fuzz_check_rejection(&result);
        /* a rejection must show its reasons: the cap keeps enforced violations over reported ones */
        FUZZ_CHECK(fuzz_shown(&result) == (list->enforced < list->count ? list->enforced : list->count),
                   "%zu enforced violations shown, %zu enforced of %zu stored", fuzz_shown(&result), list->enforced,
                   list->count);
    }
    for (size_t i = 0; i < list->count; ++i)
        check_single(&list->items[i], gw_violation_status(list->items[i].code), negotiation);

    /* the upstream error body */
    unsigned up = u8(&r);
    size_t max_chars = u8(&r);
    check_excerpt(r.p, r.n, up & 1, max_chars);
    gw_buf_t excerpt = GW_BUF_INIT;
    gw_upstream_excerpt((const char *)r.p, r.n, up & 1, max_chars, &excerpt);
    static const gw_violation_code_t codes[] = {GW_V_UPSTREAM_ERROR, GW_V_UPSTREAM_UNREACHABLE, GW_V_UPSTREAM_TIMEOUT,
                                                GW_V_UPSTREAM_ERROR};
    gw_violation_code_t code = codes[up >> 1 & 3];
    int status = code == GW_V_UPSTREAM_ERROR ? 400 + (int)(up >> 3) * 6 : gw_violation_status(code);
    gw_violation_t v = {.code = code, .mode = GW_MODE_ENFORCE, .pointer = "", .actual = "an HTML page",
                        .excerpt = excerpt.base != NULL ? excerpt.base : "", .limit = code == GW_V_UPSTREAM_TIMEOUT ? 30000 : -1,
                        .found = status};
    check_single(&v, status, negotiation);
    for (int f = 0; f < 2; ++f) {
        gw_rendered_t a, b;
        gw_error_format_t format = f == 0 ? GW_ERRORS_ORACLE : GW_ERRORS_PROBLEM_JSON;
        gw_render_upstream_error(code, status, v.actual, v.excerpt, 30000, negotiation, format, "fuzz-request-id", &a);
        gw_render_violation(&v, status, negotiation, format, "fuzz-request-id", &b);
        FUZZ_CHECK(a.body.len == b.body.len && memcmp(a.body.base, b.body.base, a.body.len) == 0,
                   "gw_render_upstream_error differs from the violation it describes");
        gw_buf_dispose(&a.body);
        gw_buf_dispose(&b.body);
    }
    gw_buf_dispose(&excerpt);
    return 0;
}

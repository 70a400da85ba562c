#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "render.h"

const char *gw_status_title(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status >= 500 ? "Server Error" : "Client Error";
    }
}

/* The name a sentence uses for the offending thing. */
static const char *subject(const gw_violation_t *v)
{
    if (v->field != NULL)
        return v->field;
    return v->pointer != NULL && v->pointer[0] != '\0' ? v->pointer : "The value";
}

void gw_violation_detail(const gw_violation_t *v, gw_buf_t *out)
{
    const char *excerpt = v->excerpt != NULL ? v->excerpt : "";
    switch (v->code) {
    case GW_V_MAX_LENGTH:
        gw_buf_printf(out, "%s is too long: %" PRId64 " %s, the maximum is %" PRId64 ".", subject(v), v->found,
                      v->expected, v->limit);
        break;
    case GW_V_READ_ONLY:
        gw_buf_printf(out, "%s is read-only: the server sets it, so a request must not send it.", subject(v));
        break;
    case GW_V_CREATE_ONLY:
        gw_buf_printf(out, "%s can only be set when the item is created, not in an update.", subject(v));
        break;
    case GW_V_LOOKUP:
        gw_buf_printf(out, "%s \"%s\" is not a code of lookup %s.", subject(v), excerpt, v->expected);
        break;
    case GW_V_TYPE:
    {
        const char *type = strcmp(v->expected, "bool") == 0 ? "boolean" : v->expected;
        gw_buf_printf(out, "%s must be %s %s, not %s.", subject(v), strchr("aeiou", type[0]) != NULL ? "an" : "a", type,
                      v->actual);
    }
        break;
    case GW_V_NUMBER_RANGE:
        gw_buf_printf(out, "%s is out of range for %s (-2147483648 to 2147483647).", subject(v), v->expected);
        break;
    case GW_V_DATETIME:
        gw_buf_printf(out, "%s \"%s\" is not an ISO 8601 %s such as %s.", subject(v), excerpt,
                      strcmp(v->expected, "date") == 0 ? "date" : "date-time",
                      strcmp(v->expected, "date") == 0 ? "2017-03-03" : "2017-03-03T04:01:13-08:00");
        break;
    case GW_V_PATTERN:
        gw_buf_printf(out, "%s \"%s\" does not match the pattern %s.", subject(v), excerpt, v->expected);
        break;
    case GW_V_UNKNOWN_FIELD:
        gw_buf_printf(out, "%s is not a known attribute of %s.", subject(v), v->expected);
        break;
    case GW_V_REQUIRED:
        gw_buf_printf(out, "%s is required when creating an item, and it is %s.", subject(v), v->actual);
        break;
    case GW_V_UPSERT_MODE:
        if (v->actual != NULL)
            gw_buf_printf(out, "Header Upsert-Mode was %s; send it once, as true or false.", v->actual);
        else
            gw_buf_printf(out, "Header Upsert-Mode must be true or false, not \"%s\".", excerpt);
        break;
    case GW_V_FRAMEWORK_VERSION:
        if (v->actual != NULL)
            gw_buf_printf(out, "Header REST-Framework-Version was %s; send it once.", v->actual);
        else
            gw_buf_printf(out, "Header REST-Framework-Version must be an integer from 1 to %" PRId64 ", not \"%s\".",
                          v->limit, excerpt);
        break;
    case GW_V_INVALID_JSON:
        gw_buf_printf(out, "The request body is not valid JSON: %s.", excerpt);
        break;
    case GW_V_INVALID_UTF8:
        gw_buf_printf(out, "The request body is not valid UTF-8: %s.", excerpt);
        break;
    case GW_V_INVALID_UNICODE_ESCAPE:
        gw_buf_printf(out, "The request body has a \\u escape that is not a valid character (a lone surrogate?): %s.",
                      excerpt);
        break;
    case GW_V_NUL_CHARACTER:
        gw_buf_printf(out, "The request body contains a NUL character (\\u0000), which is not accepted: %s.", excerpt);
        break;
    case GW_V_DUPLICATE_KEY:
        gw_buf_printf(out, "The request body has the same key twice in one object: %s.", excerpt);
        break;
    case GW_V_NUMBER_OVERFLOW:
        gw_buf_printf(out, "The request body has a number out of range (integers must fit 64 bits): %s.", excerpt);
        break;
    case GW_V_NOT_AN_OBJECT:
        gw_buf_printf(out, "The request body must be a JSON object, not %s.", v->actual);
        break;
    case GW_V_EMPTY_BODY:
        gw_buf_printf(out, "The request body is empty; a JSON object is required.");
        break;
    case GW_V_TOO_DEEP:
        gw_buf_printf(out, "The request body nests deeper than %" PRId64 " levels.", v->limit);
        break;
    case GW_V_BODY_TOO_LARGE:
        if (v->found >= 0)
            gw_buf_printf(out, "The request body has %" PRId64 " bytes; the limit is %" PRId64 ".", v->found, v->limit);
        else
            gw_buf_printf(out, "The request body is larger than the limit of %" PRId64 " bytes.", v->limit);
        break;
    case GW_V_MEDIA_TYPE:
        if (v->actual != NULL)
            gw_buf_printf(out,
                          "Header Content-Type is %s; it must be application/json or "
                          "application/vnd.oracle.adf.resourceitem+json.",
                          v->actual);
        else
            gw_buf_printf(out,
                          "Content-Type \"%s\" is not accepted; use application/json or "
                          "application/vnd.oracle.adf.resourceitem+json (charset, if given, UTF-8).",
                          excerpt);
        break;
    case GW_V_AUDIT_UNAVAILABLE:
        gw_buf_printf(out, "The audit trail cannot be written, and requests are not served unaudited; try again later.");
        break;
    case GW_V_BAD_REQUEST:
        gw_buf_printf(out, "The request is not valid HTTP: %s.", excerpt);
        break;
    case GW_V_UPSTREAM_ERROR:
        if (v->excerpt != NULL && v->excerpt[0] != '\0')
            gw_buf_printf(out, "The CRM answered %" PRId64 " with %s: \"%s\".", v->found, v->actual, excerpt);
        else
            gw_buf_printf(out, "The CRM answered %" PRId64 " with %s.", v->found, v->actual);
        break;
    case GW_V_UPSTREAM_UNREACHABLE:
        gw_buf_printf(out, "The CRM could not be reached or broke the connection: %s.", excerpt);
        break;
    case GW_V_UPSTREAM_TIMEOUT:
        gw_buf_printf(out, "The CRM did not answer within %" PRId64 " ms.", v->limit);
        break;
    case GW_V__COUNT:
        break;
    }
}

/* Enforced violations are the reasons for the rejection; reported ones ride along in the audit only. */
static int is_shown(const gw_violation_t *v)
{
    return v->mode == GW_MODE_ENFORCE;
}

/* Appends a line of the text format with its control characters as \xHH: pointers and messages quote the client's
 * keys, and a raw CR or LF in one would split it into lines a client reads as violations of their own. */
static void append_line(gw_buf_t *out, const char *line, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f)
            gw_buf_printf(out, "\\x%02x", c);
        else
            gw_buf_append(out, &line[i], 1);
    }
    gw_buf_append(out, "\n", 1);
}

static void render_text(const gw_result_t *result, gw_buf_t *out)
{
    gw_buf_t line = GW_BUF_INIT;
    for (size_t i = 0; i < result->violations.count; ++i) {
        const gw_violation_t *v = &result->violations.items[i];
        if (!is_shown(v))
            continue;
        line.len = 0;
        gw_buf_printf(&line, "%s %s: ", gw_violation_code_name(v->code), v->pointer[0] != '\0' ? v->pointer : "/");
        gw_violation_detail(v, &line);
        append_line(out, line.base, line.len);
    }
    gw_buf_dispose(&line);
    if (result->violations.total > result->violations.count)
        gw_buf_printf(out, "CRMGATE-MORE /: %zu more violations were found and not listed.\n",
                      result->violations.total - result->violations.count);
}

static json_t *detail_string(const gw_violation_t *v)
{
    gw_buf_t detail = GW_BUF_INIT;
    gw_violation_detail(v, &detail);
    json_t *s = json_stringn(detail.base != NULL ? detail.base : "", detail.len);
    gw_buf_dispose(&detail);
    return s;
}

static void dump_into(json_t *doc, gw_buf_t *out)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        gw_fatal("out of memory rendering an error document");
    gw_buf_appendz(out, text);
    gw_buf_append(out, "\n", 1);
    free(text);
    json_decref(doc);
}

static void more_note(const gw_result_t *result, gw_buf_t *buf)
{
    gw_buf_printf(buf, "%zu more violations were found and not listed.", result->violations.total - result->violations.count);
}

static void render_oracle_json(const gw_result_t *result, gw_buf_t *out)
{
    json_t *details = json_array();
    for (size_t i = 0; i < result->violations.count; ++i) {
        const gw_violation_t *v = &result->violations.items[i];
        if (!is_shown(v))
            continue;
        json_t *item = json_object();
        json_object_set_new(item, "detail", detail_string(v));
        json_object_set_new(item, "o:errorCode", json_string(gw_violation_code_name(v->code)));
        json_object_set_new(item, "o:errorPath", json_string(v->pointer));
        json_array_append_new(details, item);
    }
    if (result->violations.total > result->violations.count) {
        gw_buf_t note = GW_BUF_INIT;
        more_note(result, &note);
        json_array_append_new(details, json_pack("{s:s, s:s, s:s}", "detail", note.base, "o:errorCode", "CRMGATE-MORE",
                                                 "o:errorPath", ""));
        gw_buf_dispose(&note);
    }
    char status[8];
    snprintf(status, sizeof(status), "%d", result->status);
    json_t *doc = json_object();
    json_object_set_new(doc, "title", json_string(gw_status_title(result->status)));
    json_object_set_new(doc, "status", json_string(status));
    json_object_set_new(doc, "o:errorDetails", details);
    dump_into(doc, out);
}

static void render_problem_json(const gw_result_t *result, const char *request_id, gw_buf_t *out)
{
    json_t *errors = json_array();
    size_t shown = 0;
    for (size_t i = 0; i < result->violations.count; ++i) {
        const gw_violation_t *v = &result->violations.items[i];
        if (!is_shown(v))
            continue;
        json_t *item = json_object();
        json_object_set_new(item, "pointer", json_string(v->pointer));
        json_object_set_new(item, "code", json_string(gw_violation_code_name(v->code)));
        json_object_set_new(item, "detail", detail_string(v));
        if (v->limit >= 0)
            json_object_set_new(item, "limit", json_integer(v->limit));
        json_array_append_new(errors, item);
        ++shown;
    }
    gw_buf_t detail = GW_BUF_INIT;
    if (result->violations.count == 1 && gw_violation_kind(result->violations.items[0].code) == GW_KIND_UPSTREAM)
        gw_violation_detail(&result->violations.items[0], &detail);
    else
        gw_buf_printf(&detail, "The request was refused: %zu violation%s.", result->violations.enforced,
                      result->violations.enforced == 1 ? "" : "s");
    if (result->violations.total > result->violations.count) {
        gw_buf_append(&detail, " ", 1);
        more_note(result, &detail);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "type", json_string(result->violations.count == 1 &&
                                                         gw_violation_kind(result->violations.items[0].code) == GW_KIND_UPSTREAM
                                                     ? "urn:crmgate:problem:upstream-error"
                                                     : "urn:crmgate:problem:request-rejected"));
    json_object_set_new(doc, "title", json_string(gw_status_title(result->status)));
    json_object_set_new(doc, "status", json_integer(result->status));
    json_object_set_new(doc, "detail", json_string(detail.base));
    if (request_id != NULL)
        json_object_set_new(doc, "instance", json_string(request_id));
    json_object_set_new(doc, "errors", errors);
    gw_buf_dispose(&detail);
    dump_into(doc, out);
}

void gw_render_rejection(const gw_result_t *result, gw_error_format_t format, const char *request_id,
                         gw_rendered_t *out)
{
    out->body = (gw_buf_t)GW_BUF_INIT;
    if (format == GW_ERRORS_PROBLEM_JSON) {
        out->content_type = "application/problem+json";
        render_problem_json(result, request_id, &out->body);
    } else if (result->framework_version >= 4 && result->accepts_json) {
        out->content_type = "application/vnd.oracle.adf.error+json";
        render_oracle_json(result, &out->body);
    } else {
        out->content_type = "text/plain; charset=utf-8";
        render_text(result, &out->body);
    }
}

void gw_render_violation(const gw_violation_t *v, int status, gw_negotiation_t negotiation, gw_error_format_t format,
                         const char *request_id, gw_rendered_t *out)
{
    gw_violation_t copy = *v;
    gw_result_t result;
    gw_result_init_single(&result, &copy, status);
    result.framework_version = negotiation.framework_version;
    result.accepts_json = negotiation.accepts_json;
    gw_render_rejection(&result, format, request_id, out);
}

void gw_render_upstream_error(gw_violation_code_t code, int status, const char *what, const char *excerpt, int64_t timeout_ms,
                              gw_negotiation_t negotiation, gw_error_format_t format, const char *request_id,
                              gw_rendered_t *out)
{
    gw_violation_t v = {.code = code, .mode = GW_MODE_ENFORCE, .pointer = "", .actual = what, .excerpt = excerpt,
                        .limit = code == GW_V_UPSTREAM_TIMEOUT ? timeout_ms : -1, .found = status};
    gw_render_violation(&v, status, negotiation, format, request_id, out);
}

/* Skips an HTML element whose content is not text (script, style): returns the offset of the '>' of its end tag. */
static size_t skip_raw_element(const char *body, size_t len, size_t i, const char *name)
{
    size_t name_len = strlen(name);
    for (; i + name_len + 2 <= len; ++i) {
        if (body[i] == '<' && body[i + 1] == '/' && strncasecmp(body + i + 2, name, name_len) == 0) {
            const char *end = memchr(body + i, '>', len - i);
            return end != NULL ? (size_t)(end - body) : len;
        }
    }
    return len;
}

void gw_upstream_excerpt(const char *body, size_t len, int is_html, size_t max_chars, gw_buf_t *out)
{
    gw_buf_t text = GW_BUF_INIT;
    int space = 0;
    for (size_t i = 0; i < len && text.len < max_chars * 4; ++i) {
        char c = body[i];
        if (is_html && c == '<') {
            const char *raw = i + 7 <= len && strncasecmp(body + i + 1, "script", 6) == 0  ? "script"
                              : i + 6 <= len && strncasecmp(body + i + 1, "style", 5) == 0 ? "style"
                                                                                         : NULL;
            const char *end = memchr(body + i, '>', len - i);
            if (end == NULL)
                break;
            i = (size_t)(end - body);
            if (raw != NULL)
                i = skip_raw_element(body, len, i, raw);
            space = 1;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = 1;
            continue;
        }
        if (space && text.len != 0)
            gw_buf_append(&text, " ", 1);
        space = 0;
        gw_buf_append(&text, &c, 1);
    }
    if (text.len != 0)
        gw_buf_append_excerpt(out, text.base, text.len, max_chars, 1);
    gw_buf_dispose(&text);
}

/* Checks of request headers: pure string functions over header values. */
#include <string.h>
#include <strings.h>
#include "evaluate.h"

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_ows(**s))
        ++*s, --*len;
    while (*len > 0 && is_ows((*s)[*len - 1]))
        --*len;
}

static int token_equals(const char *s, size_t len, const char *literal)
{
    return strlen(literal) == len && strncasecmp(s, literal, len) == 0;
}

/* One ";"-separated parameter of a header value, trimmed and split at its "=" (value NULL without one). */
typedef struct st_param_t {
    const char *name, *value;
    size_t name_len, value_len;
} param_t;

/* Takes the next parameter from *p (advanced past it); returns 0 when there is none left. */
static int next_param(const char **p, size_t *len, param_t *out)
{
    if (*len == 0)
        return 0;
    const char *semi = memchr(*p, ';', *len);
    size_t plen = semi != NULL ? (size_t)(semi - *p) : *len;
    const char *param = *p;
    size_t param_len = plen;
    trim(&param, &param_len);
    const char *eq = memchr(param, '=', param_len);
    *out = (param_t){param, NULL, param_len, 0};
    if (eq != NULL) {
        out->name_len = (size_t)(eq - param);
        out->value = eq + 1;
        out->value_len = param_len - out->name_len - 1;
        trim(&out->name, &out->name_len);
        trim(&out->value, &out->value_len);
        if (out->value_len >= 2 && out->value[0] == '"' && out->value[out->value_len - 1] == '"')
            ++out->value, out->value_len -= 2;
    }
    *len = semi != NULL ? *len - plen - 1 : 0;
    *p = semi != NULL ? semi + 1 : *p + plen;
    return 1;
}

/* The charset parameter, if any, must name UTF-8: JSON is UTF-8 (RFC 8259), and
 * a body declared in another charset would be judged on bytes the CRM reads differently. */
static int params_acceptable(const char *p, size_t len)
{
    param_t param;
    while (next_param(&p, &len, &param)) {
        if (param.value == NULL) {
            if (param.name_len != 0)
                return 0; /* a parameter must be name=value */
        } else if (token_equals(param.name, param.name_len, "charset") &&
                   !token_equals(param.value, param.value_len, "utf-8") && !token_equals(param.value, param.value_len, "utf8")) {
            return 0;
        }
    }
    return 1;
}

int gw_content_type_is_json(const char *value, size_t len)
{
    const char *semi = memchr(value, ';', len);
    const char *type = value;
    size_t type_len = semi != NULL ? (size_t)(semi - value) : len;
    trim(&type, &type_len);
    if (!token_equals(type, type_len, "application/json") &&
        !token_equals(type, type_len, "application/vnd.oracle.adf.resourceitem+json"))
        return 0;
    return semi == NULL || params_acceptable(semi + 1, len - (size_t)(semi - value) - 1);
}

int gw_upsert_mode_is_valid(const char *value, size_t len)
{
    return (len == 4 && memcmp(value, "true", 4) == 0) || (len == 5 && memcmp(value, "false", 5) == 0);
}

int gw_framework_version_parse(const char *value, size_t len, int max)
{
    if (len == 0 || len > 2)
        return 0;
    int v = 0;
    for (size_t i = 0; i < len; ++i) {
        if (value[i] < '0' || value[i] > '9')
            return 0;
        v = v * 10 + (value[i] - '0');
    }
    return v >= 1 && v <= max ? v : 0;
}

/* q=0 (RFC 9110: "not acceptable") in an Accept item's parameters. */
static int has_zero_quality(const char *p, size_t len)
{
    param_t param;
    while (next_param(&p, &len, &param)) {
        if (param.value != NULL && token_equals(param.name, param.name_len, "q") && param.value_len != 0) {
            size_t i = 0; /* the value is not NUL-terminated: bounded by its length */
            while (i < param.value_len && (param.value[i] == '0' || param.value[i] == '.'))
                ++i;
            return i == param.value_len;
        }
    }
    return 0;
}

int gw_accept_allows_json(const char *value, size_t len)
{
    while (len > 0) {
        const char *comma = memchr(value, ',', len);
        size_t item_len = comma != NULL ? (size_t)(comma - value) : len;
        const char *type = value;
        const char *semi = memchr(value, ';', item_len);
        size_t type_len = semi != NULL ? (size_t)(semi - value) : item_len;
        trim(&type, &type_len);
        if ((token_equals(type, type_len, "*/*") || token_equals(type, type_len, "application/*") ||
             token_equals(type, type_len, "application/json") ||
             token_equals(type, type_len, "application/vnd.oracle.adf.error+json")) &&
            !(semi != NULL && has_zero_quality(semi + 1, item_len - (size_t)(semi - value) - 1)))
            return 1;
        if (comma == NULL)
            break;
        len -= item_len + 1;
        value = comma + 1;
    }
    return 0;
}

#include <string.h>
#include "violation.h"

static const struct {
    const char *code;
    int status;
    gw_rule_kind_t kind;
} violation_table[] = {
#define GW_X(id, code, status, kind) {code, status, kind},
    GW_VIOLATION_LIST(GW_X)
#undef GW_X
};

const char *gw_violation_code_name(gw_violation_code_t code)
{
    return violation_table[code].code;
}

int gw_violation_status(gw_violation_code_t code)
{
    return violation_table[code].status;
}

gw_rule_kind_t gw_violation_kind(gw_violation_code_t code)
{
    return violation_table[code].kind;
}

const char *gw_rule_kind_name(gw_rule_kind_t kind)
{
    static const char *names[GW_KIND__COUNT] = {"maxLength", "readOnly", "createOnly", "lookup", "type",
                                                "pattern",   "unknown",  "required",   "headers", "structure",
                                                "upstream"};
    return names[kind];
}

const char *gw_mode_name(gw_mode_t mode)
{
    switch (mode) {
    case GW_MODE_ENFORCE:
        return "enforce";
    case GW_MODE_REPORT:
        return "report";
    case GW_MODE_OFF:
        return "off";
    }
    return "?";
}

void gw_policy_init(gw_policy_t *policy)
{
    policy->mode = GW_MODE_ENFORCE;
    for (int k = 0; k < GW_KIND__COUNT; ++k)
        policy->kind_modes[k] = GW_MODE_UNSET;
    policy->pointers = NULL;
    policy->npointers = 0;
}

int gw_mode_parse(const char *s, gw_mode_t *out)
{
    if (strcmp(s, "enforce") == 0)
        *out = GW_MODE_ENFORCE;
    else if (strcmp(s, "report") == 0)
        *out = GW_MODE_REPORT;
    else if (strcmp(s, "off") == 0)
        *out = GW_MODE_OFF;
    else
        return -1;
    return 0;
}

int gw_rule_kind_parse(const char *s, gw_rule_kind_t *out)
{
    for (int k = 0; k < GW_KIND__COUNT; ++k) {
        if (k != GW_KIND_STRUCTURE && k != GW_KIND_UPSTREAM && strcmp(s, gw_rule_kind_name((gw_rule_kind_t)k)) == 0) {
            *out = (gw_rule_kind_t)k;
            return 0;
        }
    }
    return -1;
}

/* Whether a pointer matches a pattern token by token; "*" stands for any one token. */
static int pointer_matches(const char *pattern, const char *pointer)
{
    while (*pattern != '\0' && *pointer != '\0') {
        if (*pattern != '/' || *pointer != '/')
            return 0;
        ++pattern, ++pointer;
        size_t plen = strcspn(pattern, "/"), vlen = strcspn(pointer, "/");
        if (!(plen == 1 && pattern[0] == '*') && !(plen == vlen && memcmp(pattern, pointer, plen) == 0))
            return 0;
        pattern += plen, pointer += vlen;
    }
    return *pattern == '\0' && *pointer == '\0';
}

gw_mode_t gw_policy_pointer_mode(const gw_policy_t *policy, const char *pointer, gw_mode_t mode)
{
    if (policy == NULL || pointer == NULL)
        return mode;
    for (size_t i = 0; i < policy->npointers; ++i)
        if (pointer_matches(policy->pointers[i].pattern, pointer))
            return policy->pointers[i].mode;
    return mode;
}

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

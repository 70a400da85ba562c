/*
 * Every reason crmgate answers with an error, in one list: the stable code
 * shown to clients, the HTTP status, and the rule kind that modes are set by.
 * The upstream codes describe errors of the CRM (the status is then the
 * CRM's). The codes are an API: never rename or reuse one.
 */
#ifndef GW_VIOLATION_H
#define GW_VIOLATION_H

#include <stddef.h>
#include <stdint.h>

/*      id                  code                         status kind          */
#define GW_VIOLATION_LIST(X)                                                                                                   \
    X(MAX_LENGTH, "CRMGATE-MAX-LENGTH", 400, GW_KIND_MAX_LENGTH)                                                               \
    X(READ_ONLY, "CRMGATE-READ-ONLY", 400, GW_KIND_READ_ONLY)                                                                  \
    X(CREATE_ONLY, "CRMGATE-CREATE-ONLY", 400, GW_KIND_CREATE_ONLY)                                                            \
    X(LOOKUP, "CRMGATE-LOOKUP", 400, GW_KIND_LOOKUP)                                                                           \
    X(TYPE, "CRMGATE-TYPE", 400, GW_KIND_TYPE)                                                                                 \
    X(NUMBER_RANGE, "CRMGATE-NUMBER-RANGE", 400, GW_KIND_TYPE)                                                                 \
    X(DATETIME, "CRMGATE-DATETIME", 400, GW_KIND_TYPE)                                                                         \
    X(PATTERN, "CRMGATE-PATTERN", 400, GW_KIND_PATTERN)                                                                        \
    X(UNKNOWN_FIELD, "CRMGATE-UNKNOWN-FIELD", 400, GW_KIND_UNKNOWN)                                                            \
    X(REQUIRED, "CRMGATE-REQUIRED", 400, GW_KIND_REQUIRED)                                                                     \
    X(UPSERT_MODE, "CRMGATE-UPSERT-MODE", 400, GW_KIND_HEADERS)                                                                \
    X(FRAMEWORK_VERSION, "CRMGATE-FRAMEWORK-VERSION", 400, GW_KIND_HEADERS)                                                    \
    X(INVALID_JSON, "CRMGATE-INVALID-JSON", 400, GW_KIND_STRUCTURE)                                                            \
    X(INVALID_UTF8, "CRMGATE-INVALID-UTF8", 400, GW_KIND_STRUCTURE)                                                            \
    X(INVALID_UNICODE_ESCAPE, "CRMGATE-INVALID-UNICODE-ESCAPE", 400, GW_KIND_STRUCTURE)                                        \
    X(NUL_CHARACTER, "CRMGATE-NUL-CHARACTER", 400, GW_KIND_STRUCTURE)                                                          \
    X(DUPLICATE_KEY, "CRMGATE-DUPLICATE-KEY", 400, GW_KIND_STRUCTURE)                                                          \
    X(NUMBER_OVERFLOW, "CRMGATE-NUMBER-OVERFLOW", 400, GW_KIND_STRUCTURE)                                                      \
    X(NOT_AN_OBJECT, "CRMGATE-NOT-AN-OBJECT", 400, GW_KIND_STRUCTURE)                                                          \
    X(EMPTY_BODY, "CRMGATE-EMPTY-BODY", 400, GW_KIND_STRUCTURE)                                                                \
    X(TOO_DEEP, "CRMGATE-TOO-DEEP", 400, GW_KIND_STRUCTURE)                                                                    \
    X(BODY_TOO_LARGE, "CRMGATE-BODY-TOO-LARGE", 413, GW_KIND_STRUCTURE)                                                        \
    X(MEDIA_TYPE, "CRMGATE-MEDIA-TYPE", 415, GW_KIND_STRUCTURE)                                                                \
    X(BAD_REQUEST, "CRMGATE-BAD-REQUEST", 400, GW_KIND_STRUCTURE)                                                              \
    X(AUDIT_UNAVAILABLE, "CRMGATE-AUDIT-UNAVAILABLE", 503, GW_KIND_STRUCTURE)                                                  \
    X(UPSTREAM_ERROR, "CRMGATE-UPSTREAM-ERROR", 500, GW_KIND_UPSTREAM)                                                         \
    X(UPSTREAM_UNREACHABLE, "CRMGATE-UPSTREAM-UNREACHABLE", 502, GW_KIND_UPSTREAM)                                             \
    X(UPSTREAM_TIMEOUT, "CRMGATE-UPSTREAM-TIMEOUT", 504, GW_KIND_UPSTREAM)

typedef enum en_gw_violation_code_t {
#define GW_X(id, code, status, kind) GW_V_##id,
    GW_VIOLATION_LIST(GW_X)
#undef GW_X
        GW_V__COUNT
} gw_violation_code_t;

/* Rule kinds: the unit a mode can be set for. Structural failures always reject. */
typedef enum en_gw_rule_kind_t {
    GW_KIND_MAX_LENGTH,
    GW_KIND_READ_ONLY,
    GW_KIND_CREATE_ONLY,
    GW_KIND_LOOKUP,
    GW_KIND_TYPE,
    GW_KIND_PATTERN,
    GW_KIND_UNKNOWN,
    GW_KIND_REQUIRED,
    GW_KIND_HEADERS,
    GW_KIND_STRUCTURE,
    GW_KIND_UPSTREAM, /* not a rule: what the CRM or the way to it did */
    GW_KIND__COUNT
} gw_rule_kind_t;

typedef enum en_gw_mode_t { GW_MODE_ENFORCE, GW_MODE_REPORT, GW_MODE_OFF } gw_mode_t;

#define GW_MODE_UNSET (-1) /* in policies: inherit from the less specific level */

/* A mode set by the configuration for the field(s) a JSON pointer pattern names ("*" matches any one token). */
typedef struct st_gw_pointer_mode_t {
    char *pattern;
    gw_mode_t mode;
} gw_pointer_mode_t;

/*
 * The modes the configuration sets. The most specific setting wins: a field (a
 * pointer here, or `mode` on a field in a rule file) over a rule kind (here)
 * over a schema and a rule file (their `mode`) over the whole configuration.
 * Structural failures always reject.
 */
typedef struct st_gw_policy_t {
    gw_mode_t mode;                   /* the whole configuration */
    int kind_modes[GW_KIND__COUNT];   /* a gw_mode_t, or GW_MODE_UNSET */
    const gw_pointer_mode_t *pointers; /* owned by the configuration */
    size_t npointers;
} gw_policy_t;

/** The policy of a configuration that sets nothing: everything enforced. */
void gw_policy_init(gw_policy_t *policy);
/** The mode the policy's pointers set for a violation at `pointer`, or `mode` when none matches. */
gw_mode_t gw_policy_pointer_mode(const gw_policy_t *policy, const char *pointer, gw_mode_t mode);
/** Parses "enforce", "report" or "off"; returns -1 otherwise. */
int gw_mode_parse(const char *s, gw_mode_t *out);
/** Parses a rule kind name as gw_rule_kind_name() prints it; returns -1 for unknown or structural kinds. */
int gw_rule_kind_parse(const char *s, gw_rule_kind_t *out);

/**
 * One violation. All strings are borrowed: from the arena of the evaluation
 * that produced it, or static / owned by the compiled rule set.
 */
typedef struct st_gw_violation_t {
    gw_violation_code_t code;
    gw_mode_t mode;       /* enforce rejects; report forwards and records */
    const char *pointer;  /* JSON pointer ("" is the whole document), or the header name */
    const char *field;    /* the field's name as the rule names it, or NULL */
    const char *expected; /* type, lookup name, pattern, media types...; NULL if none */
    const char *excerpt;  /* a short, escaped excerpt of the offending value; NULL if none */
    const char *actual;   /* what was found instead, e.g. "a string"; NULL if none */
    int64_t limit;        /* maxLength, max depth, body limit...; -1 if none */
    int64_t found;        /* the length, depth or size found; -1 if none */
} gw_violation_t;

const char *gw_violation_code_name(gw_violation_code_t code);
int gw_violation_status(gw_violation_code_t code);
gw_rule_kind_t gw_violation_kind(gw_violation_code_t code);
const char *gw_rule_kind_name(gw_rule_kind_t kind);
const char *gw_mode_name(gw_mode_t mode);

#endif

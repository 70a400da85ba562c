/*
 * The rule compiler: rule files (JSON) become an immutable, shared rule set.
 * Everything a request needs is prepared here once - regular expressions
 * compiled and JIT-compiled, field tables hashed, lookups turned into one
 * anchored alternation - so validating a request compiles nothing.
 *
 * Ownership: gw_ruleset_load() returns a new rule set with one reference.
 * Every holder calls gw_ruleset_addref()/gw_ruleset_release(); the last
 * release frees it. A rule set is never modified after it is returned, so
 * threads share it without locks.
 */
#ifndef GW_RULES_H
#define GW_RULES_H

#include <stddef.h>
#include <stdint.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "arena.h"
#include "error.h"
#include "utf8.h"
#include "violation.h"

typedef enum en_gw_field_type_t {
    GW_TYPE_ANY,
    GW_TYPE_STRING,
    GW_TYPE_INT32,
    GW_TYPE_INT64,
    GW_TYPE_NUMBER,
    GW_TYPE_BOOL,
    GW_TYPE_DATETIME,
    GW_TYPE_DATE,
    GW_TYPE_OBJECT,
    GW_TYPE_ARRAY
} gw_field_type_t;

typedef enum en_gw_unknown_policy_t { GW_UNKNOWN_REJECT, GW_UNKNOWN_REPORT, GW_UNKNOWN_ALLOW } gw_unknown_policy_t;

typedef enum en_gw_operation_t { GW_OP_CREATE, GW_OP_UPDATE } gw_operation_t;

typedef struct st_gw_schema_t gw_schema_t;

typedef struct st_gw_lookup_t {
    const char *name;
    const char **codes; /* in rule-file order */
    size_t ncodes;
    pcre2_code *re; /* anchored at both ends: ^(?:code|code...)\z, byte-exact */
} gw_lookup_t;

typedef struct st_gw_field_t {
    const char *name;
    size_t name_len;
    gw_field_type_t type;
    int64_t max_length; /* -1: none; counted in the schema's length unit */
    unsigned read_only : 1;
    unsigned create_only : 1;
    unsigned required : 1; /* on create */
    const gw_lookup_t *lookup;
    pcre2_code *pattern; /* anchored at both ends */
    const char *pattern_source;
    const gw_schema_t *schema; /* object: its schema; array: the schema of its items (NULL: any items) */
    gw_mode_t modes[GW_KIND__COUNT]; /* effective mode of each rule kind for this field */
} gw_field_t;

struct st_gw_schema_t {
    const char *name;
    const char *file;
    gw_field_t *fields;
    size_t nfields;
    uint32_t *index; /* open addressing: field position + 1, 0 = empty */
    uint32_t index_mask;
    const gw_field_t **required;
    size_t nrequired;
    gw_unknown_policy_t unknown;
    gw_length_unit_t length_unit;
    gw_mode_t modes[GW_KIND__COUNT]; /* for violations not tied to a known field (unknown, required) */
};

typedef struct st_gw_route_t {
    const char *method;
    size_t method_len;
    const char *path; /* the template as written, e.g. /crmRestApi/resources/{version}/interactions */
    const char *literal_prefix; /* the template up to its first parameter: a cheap pre-filter */
    size_t literal_prefix_len;
    const char *literal_suffix; /* the template after its last parameter ("" when it ends with one, or has none) */
    size_t literal_suffix_len;
    pcre2_code *re;
    const gw_schema_t *schema;
    gw_operation_t operation;
    const char *file;
    unsigned metric_id; /* set by the daemon before the rule set is published (see gw_ruleset_set_metric_ids) */
} gw_route_t;

/* What one rule file contributed. Schema and lookup names are local to their file. */
typedef struct st_gw_rule_file_t {
    const char *path;
    const gw_schema_t *schemas;
    size_t nschemas;
    const gw_lookup_t *lookups;
    size_t nlookups;
    const char **param_names; /* path parameters with their own pattern */
    const char **param_patterns;
    size_t nparams;
    gw_length_unit_t length_unit;
    gw_mode_t mode;
} gw_rule_file_t;

typedef struct st_gw_ruleset_t gw_ruleset_t;

/**
 * Compiles every path given: a directory contributes its *.json files (in name
 * order), a file itself, with the configuration's modes (policy; NULL: enforce
 * what the files do not set). Returns NULL and sets err when anything is wrong:
 * a broken rule set is never returned, so it can never replace a working one.
 */
gw_ruleset_t *gw_ruleset_load(const char *const *paths, size_t npaths, const gw_policy_t *policy, gw_error_t *err);
/** Compiles one rule document held in memory (tests, fuzzing); name is used in errors. policy may be NULL (enforce). */
gw_ruleset_t *gw_ruleset_load_buffer(const char *name, const char *json, size_t len, const gw_policy_t *policy,
                                     gw_error_t *err);
void gw_ruleset_addref(gw_ruleset_t *rules);
void gw_ruleset_release(gw_ruleset_t *rules);

/** Finds the route for a method and a normalised path (no query), or NULL. */
/** 1 when some route has this method: a request of any other method cannot match, whatever its path. */
int gw_ruleset_has_method(const gw_ruleset_t *rules, const char *method, size_t method_len);
const gw_route_t *gw_ruleset_match(const gw_ruleset_t *rules, const char *method, size_t method_len, const char *path,
                                   size_t path_len, pcre2_match_data *md, pcre2_match_context *mctx);
/** Finds a field of a schema by name, or NULL. */
const gw_field_t *gw_schema_find(const gw_schema_t *schema, const char *name, size_t len);

/** Gives each route its metrics label id; call before the rule set is shared. */
void gw_ruleset_set_metric_ids(gw_ruleset_t *rules, unsigned (*id_of)(const char *label));
size_t gw_ruleset_route_count(const gw_ruleset_t *rules);
const gw_route_t *gw_ruleset_route(const gw_ruleset_t *rules, size_t i);
size_t gw_ruleset_file_count(const gw_ruleset_t *rules);
const gw_rule_file_t *gw_ruleset_file(const gw_ruleset_t *rules, size_t i);
/**
 * Lower-case hex SHA-256 (64 characters) of the canonical form of the compiled
 * rules (see gw_ruleset_canonical): the same rules give the same digest whatever
 * the files' formatting, descriptions or names.
 */
const char *gw_ruleset_digest(const gw_ruleset_t *rules);
const char *gw_length_unit_name(gw_length_unit_t unit);
const char *gw_unknown_policy_name(gw_unknown_policy_t policy);

/* rules_show.c */
struct json_t;
/** The compiled rules as canonical JSON (a new reference): what the digest is computed over. */
struct json_t *gw_ruleset_canonical(const gw_ruleset_t *rules);
/** Appends the human-readable listing of `crmgate rules show`. */
struct st_gw_buf_t;
void gw_ruleset_show(const gw_ruleset_t *rules, struct st_gw_buf_t *out);
const char *gw_field_type_name(gw_field_type_t type);

/** Runs a compiled pattern over a whole subject; returns 1 on match, 0 on no match, -1 when a match limit was hit. */
int gw_regex_full_match(const pcre2_code *re, const char *subject, size_t len, pcre2_match_data *md,
                        pcre2_match_context *mctx);

#endif

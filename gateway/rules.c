#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "buf.h"
#include "rules.h"

#define GW_RULES_MAX_FILE_SIZE (16 * 1024 * 1024)
#define GW_RULES_FORMAT_VERSION 1

/* Everything a rule set owns lives in its arena, except the PCRE2 codes,
 * which are listed so they can be freed. */
struct st_gw_ruleset_t {
    atomic_uint refcount;
    gw_arena_t arena;
    gw_route_t *routes;
    size_t nroutes, routes_cap;
    gw_rule_file_t *files;
    size_t nfiles, files_cap;
    pcre2_code **codes;
    size_t ncodes, codes_cap;
    EVP_MD_CTX *digest_ctx; /* only while loading */
    char digest[65];
};

/* The state of compiling one rule file. */
typedef struct st_rule_file_t {
    gw_ruleset_t *rules;
    const char *file;
    gw_error_t *err;
    json_t *params;       /* borrowed from the document: name -> regex source */
    json_t *lookups_json; /* borrowed */
    gw_lookup_t *lookups;
    size_t nlookups;
    gw_schema_t *schemas;
    size_t nschemas;
    gw_length_unit_t length_unit;
    gw_mode_t mode;             /* the file's own, or the configuration's */
    const gw_policy_t *policy;  /* the configuration's modes */
} rule_file_t;

void gw_error_set(gw_error_t *err, const char *fmt, ...)
{
    if (err == NULL || err->text[0] != '\0')
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, args);
    va_end(args);
}

/* ---- small helpers ------------------------------------------------------ */

static void *grow(void *array, size_t *cap, size_t count, size_t elem)
{
    if (count < *cap)
        return array;
    size_t newcap = *cap == 0 ? 8 : *cap * 2;
    void *p = realloc(array, newcap * elem);
    if (p == NULL)
        gw_fatal("out of memory");
    *cap = newcap;
    return p;
}

static char *arena_strdup(gw_ruleset_t *rules, const char *s)
{
    return gw_arena_strndup(&rules->arena, s, strlen(s));
}

/* Escapes a JSON pointer token (RFC 6901) into buf. */
static void pointer_token(gw_buf_t *buf, const char *token)
{
    for (; *token != '\0'; ++token) {
        if (*token == '~')
            gw_buf_appendz(buf, "~0");
        else if (*token == '/')
            gw_buf_appendz(buf, "~1");
        else
            gw_buf_append(buf, token, 1);
    }
}

/* Sets "FILE: /a/b/c: message" where the pointer is built from up to four tokens (NULL ends). */
static void __attribute__((format(printf, 4, 5)))
fail_at(rule_file_t *rf, const char *const *tokens, size_t ntokens, const char *fmt, ...)
{
    gw_buf_t ptr = GW_BUF_INIT;
    char msg[700];
    for (size_t i = 0; i < ntokens; ++i) {
        gw_buf_appendz(&ptr, "/");
        pointer_token(&ptr, tokens[i]);
    }
    va_list args;
    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    gw_error_set(rf->err, "%s: %s: %s", rf->file, ptr.len == 0 ? "/" : ptr.base, msg);
    gw_buf_dispose(&ptr);
}

#define FAIL(rf, msg_and_args...) fail_at(rf, path_tokens, npath, msg_and_args)

/* Returns the known key closest to key (for "did you mean"), or NULL. */
static const char *closest_key(const char *key, const char *const *known)
{
    const char *best = NULL;
    size_t best_distance = 3;
    for (; *known != NULL; ++known) {
        size_t d = gw_edit_distance(key, *known);
        if (d < best_distance)
            best = *known, best_distance = d;
    }
    return best;
}

/* Checks that obj has only known keys; fails with a suggestion otherwise. */
static int check_keys(rule_file_t *rf, const char *const *path_tokens, size_t npath, json_t *obj, const char *const *known)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        const char *const *k;
        for (k = known; *k != NULL; ++k)
            if (strcmp(*k, key) == 0)
                break;
        if (*k == NULL) {
            const char *hint = closest_key(key, known);
            gw_buf_t list = GW_BUF_INIT;
            for (k = known; *k != NULL; ++k)
                gw_buf_printf(&list, "%s%s", k == known ? "" : ", ", *k);
            if (hint != NULL)
                FAIL(rf, "unknown key \"%s\" (did you mean \"%s\"?)", key, hint);
            else
                FAIL(rf, "unknown key \"%s\" (known keys: %s)", key, list.base);
            gw_buf_dispose(&list);
            return -1;
        }
    }
    return 0;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Reads an optional member of the given JSON type; -1 (error set) if present with another type. */
static int get_member(rule_file_t *rf, const char *const *path_tokens, size_t npath, json_t *obj, const char *key,
                      json_type type, json_t **out)
{
    const char *tokens[8];
    memcpy(tokens, path_tokens, npath * sizeof(*tokens));
    tokens[npath] = key;
    *out = json_object_get(obj, key);
    if (*out == NULL)
        return 0;
    int ok = json_typeof(*out) == type || (type == JSON_TRUE && json_is_boolean(*out));
    if (!ok) {
        const char *want = type == JSON_OBJECT ? "an object"
                           : type == JSON_ARRAY ? "an array"
                           : type == JSON_STRING ? "a string"
                           : type == JSON_INTEGER ? "an integer"
                                                  : "true or false";
        fail_at(rf, tokens, npath + 1, "must be %s, not %s", want, json_type_name(*out));
        return -1;
    }
    return 0;
}

/* ---- regular expressions ------------------------------------------------ */

static pcre2_code *compile_regex(rule_file_t *rf, const char *const *path_tokens, size_t npath, const char *pattern,
                                 size_t len, uint32_t options, const char *what)
{
    int errcode;
    PCRE2_SIZE erroffset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, options | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &errcode,
                                   &erroffset, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        gw_buf_t excerpt = GW_BUF_INIT;
        gw_buf_append_excerpt(&excerpt, pattern, len, 80, 1);
        FAIL(rf, "invalid %s \"%s\" at offset %zu: %s", what, excerpt.base, (size_t)erroffset, (const char *)msg);
        gw_buf_dispose(&excerpt);
        return NULL;
    }
    /* JIT is an optimisation: without it (e.g. a hardened kernel), matching still works */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    gw_ruleset_t *rules = rf->rules;
    rules->codes = grow(rules->codes, &rules->codes_cap, rules->ncodes, sizeof(*rules->codes));
    rules->codes[rules->ncodes++] = re;
    return re;
}

/* Appends s to buf as a regex literal: every non-alphanumeric byte is escaped. */
static void append_regex_literal(gw_buf_t *buf, const char *s, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80))
            gw_buf_append(buf, "\\", 1);
        gw_buf_append(buf, &s[i], 1);
    }
}

int gw_regex_full_match(const pcre2_code *re, const char *subject, size_t len, pcre2_match_data *md,
                        pcre2_match_context *mctx)
{
    /* JIT's fast path skips pcre2_match's option checks; it is safe on any subject, as patterns with PCRE2_UTF are
     * compiled with PCRE2_MATCH_INVALID_UTF. A pattern the JIT could not compile takes the interpreter. */
    int rc = pcre2_jit_match(re, (PCRE2_SPTR)subject, len, 0, 0, md, mctx);
    if (rc == PCRE2_ERROR_JIT_BADOPTION)
        rc = pcre2_match(re, (PCRE2_SPTR)subject, len, 0, 0, md, mctx);
    if (rc >= 0)
        return 1; /* 0 means matched with a too-small ovector: still a match */
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    return -1;
}

/* ---- enumerations ------------------------------------------------------- */

static int parse_mode(rule_file_t *rf, const char *const *path_tokens, size_t npath, json_t *value, gw_mode_t *out)
{
    const char *s = json_string_value(value);
    if (s == NULL) {
        FAIL(rf, "must be a string: \"enforce\", \"report\" or \"off\"");
        return -1;
    }
    if (strcmp(s, "enforce") == 0)
        *out = GW_MODE_ENFORCE;
    else if (strcmp(s, "report") == 0)
        *out = GW_MODE_REPORT;
    else if (strcmp(s, "off") == 0)
        *out = GW_MODE_OFF;
    else {
        FAIL(rf, "unknown mode \"%s\" (expected \"enforce\", \"report\" or \"off\")", s);
        return -1;
    }
    return 0;
}

static const struct {
    const char *name;
    gw_field_type_t type;
} field_types[] = {{"any", GW_TYPE_ANY},       {"string", GW_TYPE_STRING},     {"int32", GW_TYPE_INT32},
                   {"int64", GW_TYPE_INT64},   {"number", GW_TYPE_NUMBER},     {"bool", GW_TYPE_BOOL},
                   {"datetime", GW_TYPE_DATETIME}, {"date", GW_TYPE_DATE}, {"object", GW_TYPE_OBJECT},
                   {"array", GW_TYPE_ARRAY}};

const char *gw_field_type_name(gw_field_type_t type)
{
    for (size_t i = 0; i < sizeof(field_types) / sizeof(field_types[0]); ++i)
        if (field_types[i].type == type)
            return field_types[i].name;
    return "?";
}

static int parse_field_type(rule_file_t *rf, const char *const *path_tokens, size_t npath, const char *s,
                            gw_field_type_t *out)
{
    const char *names[sizeof(field_types) / sizeof(field_types[0]) + 1];
    for (size_t i = 0; i < sizeof(field_types) / sizeof(field_types[0]); ++i) {
        if (strcmp(field_types[i].name, s) == 0) {
            *out = field_types[i].type;
            return 0;
        }
        names[i] = field_types[i].name;
    }
    names[sizeof(field_types) / sizeof(field_types[0])] = NULL;
    const char *hint = closest_key(s, names);
    if (hint != NULL)
        FAIL(rf, "unknown type \"%s\" (did you mean \"%s\"?)", s, hint);
    else
        FAIL(rf, "unknown type \"%s\" (expected any, string, int32, int64, number, bool, datetime, date, object or array)",
             s);
    return -1;
}

/* ---- lookups ------------------------------------------------------------ */

static int compile_lookups(rule_file_t *rf, json_t *lookups)
{
    const char *path_tokens[3] = {"lookups"};
    size_t npath = 1;
    rf->nlookups = json_object_size(lookups);
    rf->lookups = gw_arena_alloc(&rf->rules->arena, (rf->nlookups + 1) * sizeof(*rf->lookups));
    size_t n = 0;
    const char *name;
    json_t *codes;
    json_object_foreach(lookups, name, codes)
    {
        gw_lookup_t *lookup = &rf->lookups[n++];
        path_tokens[1] = name;
        npath = 2;
        if (!json_is_array(codes) || json_array_size(codes) == 0) {
            FAIL(rf, "a lookup must be a non-empty array of code strings");
            return -1;
        }
        lookup->name = arena_strdup(rf->rules, name);
        lookup->ncodes = json_array_size(codes);
        lookup->codes = gw_arena_alloc(&rf->rules->arena, lookup->ncodes * sizeof(*lookup->codes));
        gw_buf_t re = GW_BUF_INIT;
        gw_buf_appendz(&re, "(?:");
        for (size_t i = 0; i < lookup->ncodes; ++i) {
            json_t *code = json_array_get(codes, i);
            char index[24];
            snprintf(index, sizeof(index), "%zu", i);
            path_tokens[2] = index;
            npath = 3;
            if (!json_is_string(code) || json_string_length(code) == 0) {
                FAIL(rf, "a lookup code must be a non-empty string, not %s", json_type_name(code));
                gw_buf_dispose(&re);
                return -1;
            }
            for (size_t j = 0; j < i; ++j) {
                if (strcmp(lookup->codes[j], json_string_value(code)) == 0) {
                    FAIL(rf, "duplicate code \"%s\"", lookup->codes[j]);
                    gw_buf_dispose(&re);
                    return -1;
                }
            }
            lookup->codes[i] = gw_arena_strndup(&rf->rules->arena, json_string_value(code), json_string_length(code));
            if (i != 0)
                gw_buf_appendz(&re, "|");
            append_regex_literal(&re, json_string_value(code), json_string_length(code));
        }
        gw_buf_appendz(&re, ")");
        npath = 2;
        lookup->re = compile_regex(rf, path_tokens, npath, re.base, re.len, 0, "lookup");
        gw_buf_dispose(&re);
        if (lookup->re == NULL)
            return -1;
    }
    return 0;
}

static const gw_lookup_t *find_lookup(rule_file_t *rf, const char *name)
{
    for (size_t i = 0; i < rf->nlookups; ++i)
        if (strcmp(rf->lookups[i].name, name) == 0)
            return &rf->lookups[i];
    return NULL;
}

static gw_schema_t *find_schema(rule_file_t *rf, const char *name)
{
    for (size_t i = 0; i < rf->nschemas; ++i)
        if (strcmp(rf->schemas[i].name, name) == 0)
            return &rf->schemas[i];
    return NULL;
}

/* ---- schemas and fields ------------------------------------------------- */

/* Every member of every object is looked up, so the hash reads at most 16 bytes: the first 8 and the last 8, with
 * the length. Names that differ only in between share a slot and are told apart by memcmp. The table is built from
 * the rules, never from a request, so no request can lengthen a probe beyond the table's size. */
static uint32_t hash_name(const char *s, size_t len)
{
    uint64_t head = 0, tail = 0;
    memcpy(&head, s, len < 8 ? len : 8);
    if (len > 8)
        memcpy(&tail, s + len - 8, 8);
    uint64_t h = (head ^ (tail * 0x9e3779b97f4a7c15u) ^ len) * 0xff51afd7ed558ccdu;
    return (uint32_t)(h >> 32);
}

const gw_field_t *gw_schema_find(const gw_schema_t *schema, const char *name, size_t len)
{
    if (schema->nfields == 0)
        return NULL;
    for (uint32_t i = hash_name(name, len) & schema->index_mask;; i = (i + 1) & schema->index_mask) {
        uint32_t slot = schema->index[i];
        if (slot == 0)
            return NULL;
        const gw_field_t *f = &schema->fields[slot - 1];
        if (f->name_len == len && memcmp(f->name, name, len) == 0)
            return f;
    }
}

static void build_index(gw_ruleset_t *rules, gw_schema_t *schema)
{
    uint32_t size = 8;
    while (size < schema->nfields * 4) /* at most a quarter full: most lookups probe one slot */
        size *= 2;
    schema->index = gw_arena_alloc(&rules->arena, size * sizeof(*schema->index));
    memset(schema->index, 0, size * sizeof(*schema->index));
    schema->index_mask = size - 1;
    for (size_t n = 0; n < schema->nfields; ++n) {
        uint32_t i = hash_name(schema->fields[n].name, schema->fields[n].name_len) & schema->index_mask;
        while (schema->index[i] != 0)
            i = (i + 1) & schema->index_mask;
        schema->index[i] = (uint32_t)n + 1;
    }
}

static int get_bool_flag(rule_file_t *rf, const char *const *path_tokens, size_t npath, json_t *def, const char *key,
                         int *out)
{
    json_t *v;
    if (get_member(rf, path_tokens, npath, def, key, JSON_TRUE, &v) != 0)
        return -1;
    *out = v != NULL && json_is_true(v);
    return 0;
}

static int compile_field(rule_file_t *rf, gw_schema_t *schema, gw_field_t *field, const char *name, json_t *def)
{
    static const char *const known[] = {"type",   "maxLength", "readOnly", "createOnly", "required",    "lookup",
                                        "pattern", "items",    "schema",   "mode",       "description", NULL};
    const char *path_tokens[5] = {"schemas", schema->name, "fields", name};
    size_t npath = 4;
    json_t *type, *max_length, *lookup, *pattern, *items, *child, *mode;
    int read_only, create_only, required;

    if (!json_is_object(def)) {
        FAIL(rf, "a field must be an object such as {\"type\": \"string\", \"maxLength\": 30}");
        return -1;
    }
    if (check_keys(rf, path_tokens, npath, def, known) != 0 ||
        get_member(rf, path_tokens, npath, def, "type", JSON_STRING, &type) != 0 ||
        get_member(rf, path_tokens, npath, def, "maxLength", JSON_INTEGER, &max_length) != 0 ||
        get_member(rf, path_tokens, npath, def, "lookup", JSON_STRING, &lookup) != 0 ||
        get_member(rf, path_tokens, npath, def, "pattern", JSON_STRING, &pattern) != 0 ||
        get_member(rf, path_tokens, npath, def, "items", JSON_STRING, &items) != 0 ||
        get_member(rf, path_tokens, npath, def, "schema", JSON_STRING, &child) != 0 ||
        get_member(rf, path_tokens, npath, def, "mode", JSON_STRING, &mode) != 0 ||
        get_bool_flag(rf, path_tokens, npath, def, "readOnly", &read_only) != 0 ||
        get_bool_flag(rf, path_tokens, npath, def, "createOnly", &create_only) != 0 ||
        get_bool_flag(rf, path_tokens, npath, def, "required", &required) != 0)
        return -1;

    field->name = arena_strdup(rf->rules, name);
    field->name_len = strlen(name);
    field->max_length = -1;
    field->read_only = read_only;
    field->create_only = create_only;
    field->required = required;
    if (type == NULL) {
        FAIL(rf, "missing \"type\"");
        return -1;
    }
    path_tokens[4] = "type";
    npath = 5;
    if (parse_field_type(rf, path_tokens, npath, json_string_value(type), &field->type) != 0)
        return -1;
    if (max_length != NULL) {
        path_tokens[4] = "maxLength";
        if (field->type != GW_TYPE_STRING) {
            FAIL(rf, "maxLength applies to strings only, and this field is of type %s", gw_field_type_name(field->type));
            return -1;
        }
        if (json_integer_value(max_length) < 0) {
            FAIL(rf, "maxLength must be 0 or more, not %" JSON_INTEGER_FORMAT, json_integer_value(max_length));
            return -1;
        }
        field->max_length = json_integer_value(max_length);
    }
    if (lookup != NULL) {
        path_tokens[4] = "lookup";
        if (field->type != GW_TYPE_STRING) {
            FAIL(rf, "a lookup applies to strings only, and this field is of type %s", gw_field_type_name(field->type));
            return -1;
        }
        if ((field->lookup = find_lookup(rf, json_string_value(lookup))) == NULL) {
            FAIL(rf, "unknown lookup \"%s\" (not defined under /lookups of this file)", json_string_value(lookup));
            return -1;
        }
    }
    if (pattern != NULL) {
        path_tokens[4] = "pattern";
        if (field->type != GW_TYPE_STRING) {
            FAIL(rf, "a pattern applies to strings only, and this field is of type %s", gw_field_type_name(field->type));
            return -1;
        }
        field->pattern_source = arena_strdup(rf->rules, json_string_value(pattern));
        field->pattern = compile_regex(rf, path_tokens, npath, json_string_value(pattern), json_string_length(pattern),
                                       PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, "regular expression");
        if (field->pattern == NULL)
            return -1;
    }
    json_t *schema_ref = items != NULL ? items : child;
    if (items != NULL && field->type != GW_TYPE_ARRAY) {
        path_tokens[4] = "items";
        FAIL(rf, "\"items\" applies to arrays only, and this field is of type %s", gw_field_type_name(field->type));
        return -1;
    }
    if (child != NULL && field->type != GW_TYPE_OBJECT) {
        path_tokens[4] = "schema";
        FAIL(rf, "\"schema\" applies to objects only, and this field is of type %s", gw_field_type_name(field->type));
        return -1;
    }
    if (schema_ref != NULL) {
        path_tokens[4] = items != NULL ? "items" : "schema";
        if ((field->schema = find_schema(rf, json_string_value(schema_ref))) == NULL) {
            FAIL(rf, "unknown schema \"%s\" (not defined under /schemas of this file)", json_string_value(schema_ref));
            return -1;
        }
    }
    if (read_only && (required || create_only)) {
        npath = 4;
        FAIL(rf, "a readOnly field cannot also be %s", required ? "required" : "createOnly");
        return -1;
    }
    for (size_t k = 0; k < GW_KIND__COUNT; ++k)
        field->modes[k] = schema->modes[k];
    if (mode != NULL) {
        gw_mode_t m;
        path_tokens[4] = "mode";
        if (parse_mode(rf, path_tokens, 5, mode, &m) != 0)
            return -1;
        for (size_t k = 0; k < GW_KIND__COUNT; ++k)
            if (k != GW_KIND_STRUCTURE && k != GW_KIND_UPSTREAM)
                field->modes[k] = m;
    }
    return 0;
}

static int compile_schema(rule_file_t *rf, gw_schema_t *schema, json_t *def)
{
    static const char *const known[] = {"fields", "unknown-fields", "mode", "description", NULL};
    const char *path_tokens[3] = {"schemas", schema->name};
    size_t npath = 2;
    json_t *fields, *unknown, *mode;

    if (!json_is_object(def)) {
        FAIL(rf, "a schema must be an object with \"fields\"");
        return -1;
    }
    if (check_keys(rf, path_tokens, npath, def, known) != 0 ||
        get_member(rf, path_tokens, npath, def, "fields", JSON_OBJECT, &fields) != 0 ||
        get_member(rf, path_tokens, npath, def, "unknown-fields", JSON_STRING, &unknown) != 0 ||
        get_member(rf, path_tokens, npath, def, "mode", JSON_STRING, &mode) != 0)
        return -1;
    if (fields == NULL) {
        FAIL(rf, "missing \"fields\"");
        return -1;
    }
    schema->unknown = GW_UNKNOWN_REJECT;
    if (unknown != NULL) {
        const char *s = json_string_value(unknown);
        path_tokens[2] = "unknown-fields";
        if (strcmp(s, "reject") == 0)
            schema->unknown = GW_UNKNOWN_REJECT;
        else if (strcmp(s, "report") == 0)
            schema->unknown = GW_UNKNOWN_REPORT;
        else if (strcmp(s, "allow") == 0)
            schema->unknown = GW_UNKNOWN_ALLOW;
        else {
            fail_at(rf, path_tokens, 3, "unknown policy \"%s\" (expected \"reject\", \"report\" or \"allow\")", s);
            return -1;
        }
    }
    gw_mode_t base = rf->mode;
    if (mode != NULL) {
        path_tokens[2] = "mode";
        if (parse_mode(rf, path_tokens, 3, mode, &base) != 0)
            return -1;
    }
    /* a kind's mode in the configuration is more specific than a schema's or a file's */
    for (size_t k = 0; k < GW_KIND__COUNT; ++k)
        schema->modes[k] = k == GW_KIND_STRUCTURE || k == GW_KIND_UPSTREAM ? GW_MODE_ENFORCE
                           : rf->policy->kind_modes[k] != GW_MODE_UNSET ? (gw_mode_t)rf->policy->kind_modes[k]
                                                                       : base;
    /* "report" for unknown fields means: forward, but record each one */
    if (schema->unknown == GW_UNKNOWN_REPORT && schema->modes[GW_KIND_UNKNOWN] == GW_MODE_ENFORCE)
        schema->modes[GW_KIND_UNKNOWN] = GW_MODE_REPORT;

    schema->nfields = json_object_size(fields);
    schema->fields = gw_arena_alloc(&rf->rules->arena, (schema->nfields + 1) * sizeof(*schema->fields));
    memset(schema->fields, 0, (schema->nfields + 1) * sizeof(*schema->fields));
    size_t n = 0, nrequired = 0;
    const char *name;
    json_t *field_def;
    json_object_foreach(fields, name, field_def)
    {
        if (compile_field(rf, schema, &schema->fields[n], name, field_def) != 0)
            return -1;
        nrequired += schema->fields[n].required;
        ++n;
    }
    schema->required = gw_arena_alloc(&rf->rules->arena, (nrequired + 1) * sizeof(*schema->required));
    for (size_t i = 0; i < schema->nfields; ++i)
        if (schema->fields[i].required)
            schema->required[schema->nrequired++] = &schema->fields[i];
    build_index(rf->rules, schema);
    return 0;
}

static int compile_schemas(rule_file_t *rf, json_t *schemas)
{
    /* two passes, so fields may refer to schemas defined later in the file */
    rf->nschemas = json_object_size(schemas);
    rf->schemas = gw_arena_alloc(&rf->rules->arena, (rf->nschemas + 1) * sizeof(*rf->schemas));
    memset(rf->schemas, 0, (rf->nschemas + 1) * sizeof(*rf->schemas));
    size_t n = 0;
    const char *name;
    json_t *def;
    json_object_foreach(schemas, name, def)
    {
        rf->schemas[n].name = arena_strdup(rf->rules, name);
        rf->schemas[n].file = rf->file;
        rf->schemas[n].length_unit = rf->length_unit;
        ++n;
    }
    n = 0;
    json_object_foreach(schemas, name, def)
    {
        if (compile_schema(rf, &rf->schemas[n++], def) != 0)
            return -1;
    }
    return 0;
}

/* ---- routes ------------------------------------------------------------- */

static int is_name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* Builds the route's regex from its template; {name} takes /params/name or one path segment. */
static int build_route_regex(rule_file_t *rf, const char *const *path_tokens, size_t npath, const char *tmpl,
                             gw_buf_t *re, size_t *prefix_len)
{
    const char *p = tmpl;
    *prefix_len = SIZE_MAX;
    while (*p != '\0') {
        const char *brace = strchr(p, '{');
        size_t lit = brace == NULL ? strlen(p) : (size_t)(brace - p);
        if (memchr(p, '}', lit) != NULL) {
            FAIL(rf, "unbalanced '}' in path \"%s\"", tmpl);
            return -1;
        }
        append_regex_literal(re, p, lit);
        if (brace == NULL)
            break;
        if (*prefix_len == SIZE_MAX)
            *prefix_len = (size_t)(brace - tmpl);
        const char *end = strchr(brace, '}');
        if (end == NULL) {
            FAIL(rf, "unclosed '{' in path \"%s\"", tmpl);
            return -1;
        }
        char name[64];
        size_t name_len = (size_t)(end - brace - 1);
        if (name_len == 0 || name_len >= sizeof(name)) {
            FAIL(rf, "a path parameter needs a name of 1 to 63 characters, in \"%s\"", tmpl);
            return -1;
        }
        memcpy(name, brace + 1, name_len);
        name[name_len] = '\0';
        for (size_t i = 0; i < name_len; ++i) {
            if (!is_name_char(name[i], i == 0)) {
                FAIL(rf, "invalid path parameter name \"%s\" (letters, digits and '_' only)", name);
                return -1;
            }
        }
        json_t *param = json_object_get(rf->params, name);
        gw_buf_printf(re, "(?<%s>(?:%s))", name, param != NULL ? json_string_value(param) : "[^/]+");
        p = end + 1;
    }
    if (*prefix_len == SIZE_MAX)
        *prefix_len = strlen(tmpl);
    gw_buf_appendz(re, "/?"); /* /interactions/ is the same resource as /interactions */
    return 0;
}

/* The template with parameter names erased: two routes that differ only in names are the same route. */
static void route_shape(const char *tmpl, gw_buf_t *out)
{
    for (const char *p = tmpl; *p != '\0'; ++p) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            if (end == NULL)
                break;
            gw_buf_appendz(out, "{}");
            p = end;
        } else {
            gw_buf_append(out, p, 1);
        }
    }
}

static int compile_route(rule_file_t *rf, size_t index, json_t *def)
{
    static const char *const known[] = {"method", "path", "schema", "operation", "description", NULL};
    char index_str[24];
    snprintf(index_str, sizeof(index_str), "%zu", index);
    const char *path_tokens[3] = {"routes", index_str};
    size_t npath = 2;
    json_t *method, *path, *schema, *operation;
    if (!json_is_object(def)) {
        FAIL(rf, "a route must be an object with \"method\", \"path\", \"schema\" and \"operation\"");
        return -1;
    }
    if (check_keys(rf, path_tokens, npath, def, known) != 0 ||
        get_member(rf, path_tokens, npath, def, "method", JSON_STRING, &method) != 0 ||
        get_member(rf, path_tokens, npath, def, "path", JSON_STRING, &path) != 0 ||
        get_member(rf, path_tokens, npath, def, "schema", JSON_STRING, &schema) != 0 ||
        get_member(rf, path_tokens, npath, def, "operation", JSON_STRING, &operation) != 0)
        return -1;
    if (method == NULL || path == NULL || schema == NULL) {
        FAIL(rf, "missing \"%s\"", method == NULL ? "method" : path == NULL ? "path" : "schema");
        return -1;
    }
    gw_ruleset_t *rules = rf->rules;
    rules->routes = grow(rules->routes, &rules->routes_cap, rules->nroutes, sizeof(*rules->routes));
    gw_route_t *route = &rules->routes[rules->nroutes];
    memset(route, 0, sizeof(*route));
    route->file = rf->file;

    path_tokens[2] = "method";
    npath = 3;
    const char *m = json_string_value(method);
    if (*m == '\0' || strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(m)) {
        FAIL(rf, "a method is an upper-case token such as \"POST\" or \"PATCH\", not \"%s\"", m);
        return -1;
    }
    route->method = arena_strdup(rules, m);
    route->method_len = strlen(m);

    path_tokens[2] = "path";
    const char *tmpl = json_string_value(path);
    if (tmpl[0] != '/') {
        FAIL(rf, "a path must start with '/', not \"%s\"", tmpl);
        return -1;
    }
    gw_buf_t re = GW_BUF_INIT;
    size_t prefix_len;
    if (build_route_regex(rf, path_tokens, npath, tmpl, &re, &prefix_len) != 0) {
        gw_buf_dispose(&re);
        return -1;
    }
    route->re = compile_regex(rf, path_tokens, npath, re.base, re.len, 0, "path pattern");
    gw_buf_dispose(&re);
    if (route->re == NULL)
        return -1;
    route->path = arena_strdup(rules, tmpl);
    route->literal_prefix = route->path;
    route->literal_prefix_len = prefix_len;
    const char *last_param_end = strrchr(route->path, '}');
    route->literal_suffix = last_param_end != NULL ? last_param_end + 1 : "";
    route->literal_suffix_len = strlen(route->literal_suffix);

    path_tokens[2] = "schema";
    if ((route->schema = find_schema(rf, json_string_value(schema))) == NULL) {
        FAIL(rf, "unknown schema \"%s\" (not defined under /schemas of this file)", json_string_value(schema));
        return -1;
    }
    path_tokens[2] = "operation";
    const char *op = operation == NULL ? (strcmp(m, "POST") == 0 ? "create" : "update") : json_string_value(operation);
    if (strcmp(op, "create") == 0)
        route->operation = GW_OP_CREATE;
    else if (strcmp(op, "update") == 0)
        route->operation = GW_OP_UPDATE;
    else {
        FAIL(rf, "unknown operation \"%s\" (expected \"create\" or \"update\")", op);
        return -1;
    }

    /* the same method and path twice, in this file or another, is ambiguous */
    gw_buf_t shape = GW_BUF_INIT, other = GW_BUF_INIT;
    route_shape(tmpl, &shape);
    for (size_t i = 0; i < rules->nroutes; ++i) {
        other.len = 0;
        route_shape(rules->routes[i].path, &other);
        if (strcmp(rules->routes[i].method, m) == 0 && strcmp(other.base, shape.base) == 0) {
            npath = 2;
            FAIL(rf, "route %s %s is already defined in %s (as %s)", m, tmpl, rules->routes[i].file, rules->routes[i].path);
            gw_buf_dispose(&shape);
            gw_buf_dispose(&other);
            return -1;
        }
    }
    gw_buf_dispose(&shape);
    gw_buf_dispose(&other);
    ++rules->nroutes;
    return 0;
}

static int compile_params(rule_file_t *rf, json_t *params)
{
    const char *path_tokens[2] = {"params"};
    size_t npath = 1;
    const char *name;
    json_t *pattern;
    json_object_foreach(params, name, pattern)
    {
        path_tokens[1] = name;
        npath = 2;
        if (!json_is_string(pattern)) {
            FAIL(rf, "a path parameter pattern must be a string, not %s", json_type_name(pattern));
            return -1;
        }
        if (compile_regex(rf, path_tokens, npath, json_string_value(pattern), json_string_length(pattern), 0,
                          "parameter pattern") == NULL)
            return -1;
    }
    return 0;
}

/* ---- documents and files ------------------------------------------------ */

static void keep_params(rule_file_t *rf, gw_rule_file_t *info)
{
    info->nparams = rf->params != NULL ? json_object_size(rf->params) : 0;
    info->param_names = gw_arena_alloc(&rf->rules->arena, (info->nparams + 1) * sizeof(char *));
    info->param_patterns = gw_arena_alloc(&rf->rules->arena, (info->nparams + 1) * sizeof(char *));
    size_t n = 0;
    const char *name;
    json_t *pattern;
    if (rf->params != NULL) {
        json_object_foreach(rf->params, name, pattern)
        {
            info->param_names[n] = arena_strdup(rf->rules, name);
            info->param_patterns[n++] = arena_strdup(rf->rules, json_string_value(pattern));
        }
    }
}

static int compile_document(gw_ruleset_t *rules, const char *file, json_t *doc, const gw_policy_t *policy,
                            gw_error_t *err)
{
    static const char *const known[] = {"crmgate-rules", "description", "length-unit", "mode",  "params",
                                        "lookups",       "schemas",     "routes",      NULL};
    rule_file_t rf = {.rules = rules, .file = file, .err = err, .length_unit = GW_LENGTH_CHARACTERS,
                      .mode = policy->mode, .policy = policy};
    gw_rule_file_t *info = &rules->files[rules->nfiles - 1];
    const char *path_tokens[1] = {NULL};
    size_t npath = 0;
    json_t *version, *unit, *mode, *lookups, *schemas, *routes;

    if (!json_is_object(doc)) {
        FAIL(&rf, "a rule file must be a JSON object, not %s", json_type_name(doc));
        return -1;
    }
    if (check_keys(&rf, path_tokens, npath, doc, known) != 0 ||
        get_member(&rf, path_tokens, npath, doc, "crmgate-rules", JSON_INTEGER, &version) != 0 ||
        get_member(&rf, path_tokens, npath, doc, "length-unit", JSON_STRING, &unit) != 0 ||
        get_member(&rf, path_tokens, npath, doc, "mode", JSON_STRING, &mode) != 0 ||
        get_member(&rf, path_tokens, npath, doc, "params", JSON_OBJECT, &rf.params) != 0 ||
        get_member(&rf, path_tokens, npath, doc, "lookups", JSON_OBJECT, &lookups) != 0 ||
        get_member(&rf, path_tokens, npath, doc, "schemas", JSON_OBJECT, &schemas) != 0 ||
        get_member(&rf, path_tokens, npath, doc, "routes", JSON_ARRAY, &routes) != 0)
        return -1;
    path_tokens[0] = "crmgate-rules";
    npath = 1;
    if (version == NULL || json_integer_value(version) != GW_RULES_FORMAT_VERSION) {
        npath = version == NULL ? 0 : 1;
        FAIL(&rf, "\"crmgate-rules\": %d is required (the rule file format version)", GW_RULES_FORMAT_VERSION);
        return -1;
    }
    if (unit != NULL) {
        const char *s = json_string_value(unit);
        path_tokens[0] = "length-unit";
        if (strcmp(s, "characters") == 0)
            rf.length_unit = GW_LENGTH_CHARACTERS;
        else if (strcmp(s, "bytes") == 0)
            rf.length_unit = GW_LENGTH_BYTES;
        else if (strcmp(s, "utf16") == 0)
            rf.length_unit = GW_LENGTH_UTF16;
        else {
            FAIL(&rf, "unknown length unit \"%s\" (expected \"characters\", \"bytes\" or \"utf16\")", s);
            return -1;
        }
    }
    path_tokens[0] = "mode";
    if (mode != NULL && parse_mode(&rf, path_tokens, 1, mode, &rf.mode) != 0)
        return -1;
    if (rf.params != NULL && compile_params(&rf, rf.params) != 0)
        return -1;
    if (lookups != NULL && compile_lookups(&rf, lookups) != 0)
        return -1;
    if (schemas != NULL && compile_schemas(&rf, schemas) != 0)
        return -1;
    for (size_t i = 0; routes != NULL && i < json_array_size(routes); ++i)
        if (compile_route(&rf, i, json_array_get(routes, i)) != 0)
            return -1;
    info->schemas = rf.schemas;
    info->nschemas = rf.nschemas;
    info->lookups = rf.lookups;
    info->nlookups = rf.nlookups;
    info->length_unit = rf.length_unit;
    info->mode = rf.mode;
    keep_params(&rf, info);
    return 0;
}

static gw_ruleset_t *ruleset_new(void)
{
    gw_ruleset_t *rules = calloc(1, sizeof(*rules));
    if (rules == NULL)
        gw_fatal("out of memory");
    atomic_init(&rules->refcount, 1);
    gw_arena_init(&rules->arena);
    rules->digest_ctx = EVP_MD_CTX_new();
    if (rules->digest_ctx == NULL || EVP_DigestInit_ex(rules->digest_ctx, EVP_sha256(), NULL) != 1)
        gw_fatal("cannot initialise SHA-256");
    return rules;
}

static void ruleset_free(gw_ruleset_t *rules)
{
    for (size_t i = 0; i < rules->ncodes; ++i)
        pcre2_code_free(rules->codes[i]);
    free(rules->codes);
    free(rules->routes);
    free(rules->files);
    if (rules->digest_ctx != NULL)
        EVP_MD_CTX_free(rules->digest_ctx);
    gw_arena_dispose(&rules->arena);
    free(rules);
}

/* Compiles one document; the file name is kept by the rule set for error messages and `rules show`. */
static int add_document(gw_ruleset_t *rules, const char *name, const char *json, size_t len, const gw_policy_t *policy,
                        gw_error_t *err)
{
    const char *file = arena_strdup(rules, name);
    rules->files = grow(rules->files, &rules->files_cap, rules->nfiles, sizeof(*rules->files));
    memset(&rules->files[rules->nfiles], 0, sizeof(rules->files[0]));
    rules->files[rules->nfiles++].path = file;

    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        gw_error_set(err, "%s:%d:%d: %s", file, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    int ret = compile_document(rules, file, doc, policy, err);
    json_decref(doc);
    return ret;
}

/* The digest covers what was compiled, in canonical form, not the files' bytes. */
static void finish_digest(gw_ruleset_t *rules)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    json_t *canonical = gw_ruleset_canonical(rules);
    char *text = json_dumps(canonical, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (text == NULL)
        gw_fatal("out of memory (canonical rules)");
    EVP_DigestUpdate(rules->digest_ctx, text, strlen(text));
    free(text);
    json_decref(canonical);
    EVP_DigestFinal_ex(rules->digest_ctx, md, &mdlen);
    EVP_MD_CTX_free(rules->digest_ctx);
    rules->digest_ctx = NULL;
    for (unsigned i = 0; i < mdlen && i < 32; ++i)
        snprintf(rules->digest + 2 * i, 3, "%02x", md[i]);
}

static gw_policy_t default_policy;
static pthread_once_t default_policy_once = PTHREAD_ONCE_INIT;

static void init_default_policy(void)
{
    gw_policy_init(&default_policy);
}

/* Without a configuration's policy, everything not set in the rule files is enforced. */
static const gw_policy_t *policy_or_default(const gw_policy_t *policy)
{
    if (policy != NULL)
        return policy;
    pthread_once(&default_policy_once, init_default_policy);
    return &default_policy;
}

gw_ruleset_t *gw_ruleset_load_buffer(const char *name, const char *json, size_t len, const gw_policy_t *policy,
                                     gw_error_t *err)
{
    gw_ruleset_t *rules = ruleset_new();
    if (add_document(rules, name, json, len, policy_or_default(policy), err) != 0) {
        ruleset_free(rules);
        return NULL;
    }
    finish_digest(rules);
    return rules;
}

static int load_file(gw_ruleset_t *rules, const char *path, const gw_policy_t *policy, gw_error_t *err)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        gw_error_set(err, "%s: cannot open rule file: %s", path, strerror(errno));
        return -1;
    }
    gw_buf_t content = GW_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0) {
        if (content.len + n > GW_RULES_MAX_FILE_SIZE) {
            gw_error_set(err, "%s: rule file is larger than %d bytes", path, GW_RULES_MAX_FILE_SIZE);
            break;
        }
        gw_buf_append(&content, chunk, n);
    }
    int failed = ferror(fp);
    fclose(fp);
    int ret = -1;
    if (failed)
        gw_error_set(err, "%s: cannot read rule file", path);
    else if (content.len <= GW_RULES_MAX_FILE_SIZE)
        ret = add_document(rules, path, content.base != NULL ? content.base : "", content.len, policy, err);
    gw_buf_dispose(&content);
    return ret;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_directory(gw_ruleset_t *rules, const char *dir, const gw_policy_t *policy, gw_error_t *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        gw_error_set(err, "%s: cannot open rules directory: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (len <= 5 || ent->d_name[0] == '.' || strcmp(ent->d_name + len - 5, ".json") != 0)
            continue;
        names = grow(names, &cap, count, sizeof(*names));
        if ((names[count] = strdup(ent->d_name)) == NULL)
            gw_fatal("out of memory");
        ++count;
    }
    closedir(d);
    int ret = 0;
    if (count == 0) {
        gw_error_set(err, "%s: no *.json rule files in this directory", dir);
        ret = -1;
    }
    if (count > 1)
        qsort(names, count, sizeof(*names), compare_strings);
    for (size_t i = 0; i < count; ++i) {
        if (ret == 0) {
            gw_buf_t path = GW_BUF_INIT;
            gw_buf_printf(&path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
            ret = load_file(rules, path.base, policy, err);
            gw_buf_dispose(&path);
        }
        free(names[i]);
    }
    free(names);
    return ret;
}

gw_ruleset_t *gw_ruleset_load(const char *const *paths, size_t npaths, const gw_policy_t *policy, gw_error_t *err)
{
    gw_ruleset_t *rules = ruleset_new();
    policy = policy_or_default(policy);
    int ret = 0;
    if (npaths == 0) {
        gw_error_set(err, "no rule files or directories given");
        ret = -1;
    }
    for (size_t i = 0; ret == 0 && i < npaths; ++i) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            gw_error_set(err, "%s: %s", paths[i], strerror(errno));
            ret = -1;
        } else if (S_ISDIR(st.st_mode)) {
            ret = load_directory(rules, paths[i], policy, err);
        } else {
            ret = load_file(rules, paths[i], policy, err);
        }
    }
    if (ret != 0) {
        ruleset_free(rules);
        return NULL;
    }
    finish_digest(rules);
    return rules;
}

void gw_ruleset_addref(gw_ruleset_t *rules)
{
    atomic_fetch_add_explicit(&rules->refcount, 1, memory_order_relaxed);
}

void gw_ruleset_release(gw_ruleset_t *rules)
{
    if (rules != NULL && atomic_fetch_sub_explicit(&rules->refcount, 1, memory_order_acq_rel) == 1)
        ruleset_free(rules);
}

/* ---- queries -------------------------------------------------------------- */

int gw_ruleset_has_method(const gw_ruleset_t *rules, const char *method, size_t method_len)
{
    for (size_t i = 0; i < rules->nroutes; ++i)
        if (rules->routes[i].method_len == method_len && memcmp(rules->routes[i].method, method, method_len) == 0)
            return 1;
    return 0;
}

const gw_route_t *gw_ruleset_match(const gw_ruleset_t *rules, const char *method, size_t method_len, const char *path,
                                   size_t path_len, pcre2_match_data *md, pcre2_match_context *mctx)
{
    for (size_t i = 0; i < rules->nroutes; ++i) {
        const gw_route_t *route = &rules->routes[i];
        if (route->method_len != method_len || memcmp(route->method, method, method_len) != 0)
            continue;
        /* literal prefix and suffix first: the regular expression runs only for a route that can match */
        if (path_len < route->literal_prefix_len + route->literal_suffix_len ||
            memcmp(path, route->literal_prefix, route->literal_prefix_len) != 0 ||
            memcmp(path + path_len - route->literal_suffix_len, route->literal_suffix, route->literal_suffix_len) != 0)
            continue;
        if (gw_regex_full_match(route->re, path, path_len, md, mctx) == 1)
            return route;
    }
    return NULL;
}

void gw_ruleset_set_metric_ids(gw_ruleset_t *rules, unsigned (*id_of)(const char *label))
{
    for (size_t i = 0; i < rules->nroutes; ++i) {
        gw_buf_t label = GW_BUF_INIT;
        gw_buf_printf(&label, "%s %s", rules->routes[i].method, rules->routes[i].path);
        rules->routes[i].metric_id = id_of(label.base);
        gw_buf_dispose(&label);
    }
}

size_t gw_ruleset_route_count(const gw_ruleset_t *rules)
{
    return rules->nroutes;
}

const gw_route_t *gw_ruleset_route(const gw_ruleset_t *rules, size_t i)
{
    return &rules->routes[i];
}

size_t gw_ruleset_file_count(const gw_ruleset_t *rules)
{
    return rules->nfiles;
}

const gw_rule_file_t *gw_ruleset_file(const gw_ruleset_t *rules, size_t i)
{
    return &rules->files[i];
}

const char *gw_length_unit_name(gw_length_unit_t unit)
{
    return unit == GW_LENGTH_BYTES ? "bytes" : unit == GW_LENGTH_UTF16 ? "utf16" : "characters";
}

const char *gw_unknown_policy_name(gw_unknown_policy_t policy)
{
    return policy == GW_UNKNOWN_REJECT ? "reject" : policy == GW_UNKNOWN_REPORT ? "report" : "allow";
}

const char *gw_ruleset_digest(const gw_ruleset_t *rules)
{
    return rules->digest;
}

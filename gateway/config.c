#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "buf.h"
#include "config.h"

#define GW_CONFIG_MAX_FILE_SIZE (1024 * 1024)

typedef struct st_load_t {
    const char *name;
    yaml_document_t *doc;
    gw_config_t *config;
    gw_error_t *err;
} load_t;

typedef int (*key_setter_t)(load_t *ld, const char *key, yaml_node_t *value);

typedef struct st_key_def_t {
    const char *key;
    key_setter_t set;
} key_def_t;

static void __attribute__((format(printf, 3, 4))) fail(load_t *ld, const yaml_node_t *node, const char *fmt, ...)
{
    char msg[700];
    va_list args;
    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    gw_error_set(ld->err, "%s:%zu:%zu: %s", ld->name, node->start_mark.line + 1, node->start_mark.column + 1, msg);
}

void gw_config_set_string(char **field, const char *value)
{
    free(*field);
    if ((*field = strdup(value)) == NULL)
        gw_fatal("out of memory");
}

static const char *scalar(load_t *ld, const char *key, yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE) {
        fail(ld, node, "%s: expected a single value, not a %s", key,
             node->type == YAML_MAPPING_NODE ? "mapping" : "list");
        return NULL;
    }
    return (const char *)node->data.scalar.value;
}

/* ---- value parsers ------------------------------------------------------ */

int gw_config_parse_hostport(const char *s, gw_hostport_t *out, gw_error_t *err)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s) {
        gw_error_set(err, "\"%s\" is not HOST:PORT (e.g. 127.0.0.1:8080)", s);
        return -1;
    }
    const char *host = s;
    size_t host_len = (size_t)(colon - s);
    if (host[0] == '[' && host_len >= 2 && host[host_len - 1] == ']')
        ++host, host_len -= 2; /* [::1]:8080 */
    if (host_len == 0 || host_len >= sizeof(out->host)) {
        gw_error_set(err, "\"%s\": the host part is empty or too long", s);
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port > 65535 || colon[1] == '-' || colon[1] == '+') {
        gw_error_set(err, "\"%s\": the port must be a number from 0 to 65535", s);
        return -1;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (uint16_t)port;
    return 0;
}

int gw_config_parse_threads(const char *s, unsigned *out, gw_error_t *err)
{
    if (strcmp(s, "auto") == 0) {
        *out = 0;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || n < 1 || n > 256 || *s == '-' || *s == '+') {
        gw_error_set(err, "threads must be \"auto\" or a number from 1 to 256, not \"%s\"", s);
        return -1;
    }
    *out = (unsigned)n;
    return 0;
}

int gw_config_parse_upstream(const char *s, gw_error_t *err)
{
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
        gw_error_set(err, "upstream \"%s\" must be an http:// or https:// URL", s);
        return -1;
    }
    const char *authority = s + (s[4] == 's' ? 8 : 7);
    if (*authority == '\0' || *authority == '/') {
        gw_error_set(err, "upstream \"%s\" has no host", s);
        return -1;
    }
    return 0;
}

/* Sizes: a number of bytes with an optional unit: 512k, 1m, 1MiB, 2g. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || errno != 0 || *s == '-' || *s == '+')
        return -1;
    uint64_t mult = 1;
    if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kib") == 0 || strcasecmp(end, "kb") == 0)
        mult = 1024;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mib") == 0 || strcasecmp(end, "mb") == 0)
        mult = 1024 * 1024;
    else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gib") == 0 || strcasecmp(end, "gb") == 0)
        mult = 1024 * 1024 * 1024;
    else if (*end != '\0')
        return -1;
    if (n > UINT64_MAX / mult)
        return -1;
    *out = n * mult;
    return 0;
}

/* Durations: 500ms, 30s, 2m; a bare number is milliseconds. */
static int parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || errno != 0 || *s == '-' || *s == '+')
        return -1;
    uint64_t mult;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else
        return -1;
    if (n > UINT64_MAX / mult)
        return -1;
    *out = n * mult;
    return 0;
}

/* ---- mappings ----------------------------------------------------------- */

static int apply_mapping(load_t *ld, const char *what, yaml_node_t *map, const key_def_t *defs)
{
    if (map->type != YAML_MAPPING_NODE) {
        fail(ld, map, "%s: expected a mapping of keys to values", what);
        return -1;
    }
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; ++pair) {
        yaml_node_t *key = yaml_document_get_node(ld->doc, pair->key);
        yaml_node_t *value = yaml_document_get_node(ld->doc, pair->value);
        if (key->type != YAML_SCALAR_NODE) {
            fail(ld, key, "%s: keys must be plain names", what);
            return -1;
        }
        const char *name = (const char *)key->data.scalar.value;
        for (yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < pair; ++prev) {
            yaml_node_t *pk = yaml_document_get_node(ld->doc, prev->key);
            if (pk->type == YAML_SCALAR_NODE && strcmp((const char *)pk->data.scalar.value, name) == 0) {
                fail(ld, key, "%s%s%s: duplicate key (first at line %zu)", what, *what ? "." : "", name,
                     pk->start_mark.line + 1);
                return -1;
            }
        }
        const key_def_t *def = defs;
        const char *hint = NULL;
        size_t best = 3;
        for (; def->key != NULL; ++def) {
            if (strcmp(def->key, name) == 0)
                break;
            size_t d = gw_edit_distance(def->key, name);
            if (d < best)
                best = d, hint = def->key;
        }
        if (def->key == NULL) {
            gw_buf_t known = GW_BUF_INIT;
            for (def = defs; def->key != NULL; ++def)
                gw_buf_printf(&known, "%s%s", def == defs ? "" : ", ", def->key);
            if (hint != NULL)
                fail(ld, key, "unknown key \"%s%s%s\" (did you mean \"%s%s%s\"?)", what, *what ? "." : "", name, what,
                     *what ? "." : "", hint);
            else
                fail(ld, key, "unknown key \"%s%s%s\" (known here: %s)", what, *what ? "." : "", name, known.base);
            gw_buf_dispose(&known);
            return -1;
        }
        if (def->set(ld, name, value) != 0)
            return -1;
    }
    return 0;
}

/* ---- the keys ----------------------------------------------------------- */

static char *resolve_path(const char *base_dir, const char *path);

static int set_hostport(load_t *ld, const char *key, yaml_node_t *value, gw_hostport_t *out)
{
    const char *s = scalar(ld, key, value);
    gw_error_t e;
    gw_error_clear(&e);
    if (s == NULL)
        return -1;
    if (gw_config_parse_hostport(s, out, &e) != 0) {
        fail(ld, value, "%s: %s", key, e.text);
        return -1;
    }
    return 0;
}

static int set_listen(load_t *ld, const char *key, yaml_node_t *value)
{
    return set_hostport(ld, key, value, &ld->config->listen);
}

static int set_admin(load_t *ld, const char *key, yaml_node_t *value)
{
    const char *s = scalar(ld, key, value);
    if (s != NULL && strcmp(s, "off") == 0) {
        ld->config->admin_enabled = 0;
        return 0;
    }
    ld->config->admin_enabled = 1;
    return set_hostport(ld, key, value, &ld->config->admin);
}

static int set_threads(load_t *ld, const char *key, yaml_node_t *value)
{
    const char *s = scalar(ld, key, value);
    gw_error_t e;
    gw_error_clear(&e);
    if (s == NULL)
        return -1;
    if (gw_config_parse_threads(s, &ld->config->threads, &e) != 0) {
        fail(ld, value, "%s", e.text);
        return -1;
    }
    return 0;
}

static int set_upstream_url(load_t *ld, const char *key, yaml_node_t *value)
{
    const char *s = scalar(ld, "upstream.url", value);
    gw_error_t e;
    gw_error_clear(&e);
    if (s == NULL)
        return -1;
    if (gw_config_parse_upstream(s, &e) != 0) {
        fail(ld, value, "upstream.url: %s", e.text);
        return -1;
    }
    gw_config_set_string(&ld->config->upstream_url, s);
    return 0;
}

static int set_duration(load_t *ld, const char *key, yaml_node_t *value, uint64_t *out)
{
    const char *s = scalar(ld, key, value);
    if (s == NULL)
        return -1;
    if (parse_duration_ms(s, out) != 0) {
        fail(ld, value, "%s: \"%s\" is not a duration such as 500ms, 30s or 2m", key, s);
        return -1;
    }
    return 0;
}

static int set_keepalive(load_t *ld, const char *key, yaml_node_t *value)
{
    return set_duration(ld, "upstream.keepalive-timeout", value, &ld->config->upstream_keepalive_ms);
}

static int set_io_timeout(load_t *ld, const char *key, yaml_node_t *value)
{
    if (set_duration(ld, "upstream.timeout.io", value, &ld->config->upstream_io_timeout_ms) != 0)
        return -1;
    if (ld->config->upstream_io_timeout_ms == 0) {
        fail(ld, value, "upstream.timeout.io: must be more than 0");
        return -1;
    }
    return 0;
}

static int set_timeouts(load_t *ld, const char *key, yaml_node_t *value)
{
    /* h2o 2.2.5's proxy has a single timeout, which covers connecting as well: no separate connect key */
    static const key_def_t defs[] = {{"io", set_io_timeout}, {NULL, NULL}};
    return apply_mapping(ld, "upstream.timeout", value, defs);
}

static int set_file(load_t *ld, const char *key, yaml_node_t *value, char **out)
{
    const char *s = scalar(ld, key, value);
    if (s == NULL)
        return -1;
    if (*s == '\0') {
        fail(ld, value, "%s: a file name is required", key);
        return -1;
    }
    free(*out);
    *out = resolve_path(ld->config->base_dir, s);
    return 0;
}

static int set_ca_file(load_t *ld, const char *key, yaml_node_t *value)
{
    return set_file(ld, "upstream.ca-file", value, &ld->config->upstream_ca_file);
}

static int parse_switch(load_t *ld, const char *key, yaml_node_t *value, int *out)
{
    const char *s = scalar(ld, key, value);
    if (s == NULL)
        return -1;
    if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0)
        *out = 1;
    else if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0)
        *out = 0;
    else {
        fail(ld, value, "%s: \"%s\" is not on or off", key, s);
        return -1;
    }
    return 0;
}

static int set_verify_peer(load_t *ld, const char *key, yaml_node_t *value)
{
    return parse_switch(ld, "upstream.verify-peer", value, &ld->config->upstream_verify_peer);
}

static int set_upstream(load_t *ld, const char *key, yaml_node_t *value)
{
    static const key_def_t defs[] = {{"url", set_upstream_url},       {"keepalive-timeout", set_keepalive},
                                     {"timeout", set_timeouts},       {"ca-file", set_ca_file},
                                     {"verify-peer", set_verify_peer}, {NULL, NULL}};
    if (value->type == YAML_SCALAR_NODE) /* upstream: URL is short for upstream: {url: URL} */
        return set_upstream_url(ld, key, value);
    return apply_mapping(ld, "upstream", value, defs);
}

static char *resolve_path(const char *base_dir, const char *path)
{
    gw_buf_t buf = GW_BUF_INIT;
    if (path[0] == '/' || base_dir == NULL || base_dir[0] == '\0')
        gw_buf_appendz(&buf, path);
    else
        gw_buf_printf(&buf, "%s/%s", base_dir, path);
    return buf.base;
}

static void clear_rules(gw_config_t *config)
{
    for (size_t i = 0; i < config->nrules; ++i)
        free(config->rules[i]);
    free(config->rules);
    config->rules = NULL;
    config->nrules = 0;
}

static void add_rule_path(gw_config_t *config, char *resolved)
{
    char **rules = realloc(config->rules, (config->nrules + 1) * sizeof(*rules));
    if (rules == NULL)
        gw_fatal("out of memory");
    config->rules = rules;
    config->rules[config->nrules++] = resolved;
}

static int set_rules(load_t *ld, const char *key, yaml_node_t *value)
{
    clear_rules(ld->config);
    if (value->type == YAML_SCALAR_NODE) {
        add_rule_path(ld->config, resolve_path(ld->config->base_dir, (const char *)value->data.scalar.value));
        return 0;
    }
    if (value->type != YAML_SEQUENCE_NODE || value->data.sequence.items.start == value->data.sequence.items.top) {
        fail(ld, value, "rules: expected a file or directory, or a non-empty list of them");
        return -1;
    }
    for (yaml_node_item_t *item = value->data.sequence.items.start; item < value->data.sequence.items.top; ++item) {
        yaml_node_t *node = yaml_document_get_node(ld->doc, *item);
        const char *s = scalar(ld, "rules", node);
        if (s == NULL)
            return -1;
        add_rule_path(ld->config, resolve_path(ld->config->base_dir, s));
    }
    return 0;
}

static int set_bounded(load_t *ld, const char *key, yaml_node_t *value, uint64_t min, uint64_t max, int is_size,
                       uint64_t *out)
{
    const char *s = scalar(ld, key, value);
    if (s == NULL)
        return -1;
    int bad = is_size ? parse_size(s, out) != 0 : strspn(s, "0123456789") != strlen(s) || parse_size(s, out) != 0;
    if (bad || *out < min || *out > max) {
        fail(ld, value, "%s: \"%s\" must be %s from %" PRIu64 " to %" PRIu64, key, s, is_size ? "a size" : "a number",
             min, max);
        return -1;
    }
    return 0;
}

static int set_max_body(load_t *ld, const char *key, yaml_node_t *value)
{
    uint64_t v;
    if (set_bounded(ld, "limits.max-body", value, 1, 1024ull * 1024 * 1024, 1, &v) != 0)
        return -1;
    ld->config->limits.max_body = (size_t)v;
    return 0;
}

static int set_max_depth(load_t *ld, const char *key, yaml_node_t *value)
{
    uint64_t v;
    if (set_bounded(ld, "limits.max-depth", value, 1, GW_MAX_DEPTH_LIMIT, 0, &v) != 0)
        return -1;
    ld->config->limits.max_depth = (size_t)v;
    return 0;
}

static int set_max_violations(load_t *ld, const char *key, yaml_node_t *value)
{
    uint64_t v;
    if (set_bounded(ld, "limits.max-violations", value, 1, 10000, 0, &v) != 0)
        return -1;
    ld->config->limits.max_violations = (size_t)v;
    return 0;
}

static int set_max_framework_version(load_t *ld, const char *key, yaml_node_t *value)
{
    uint64_t v;
    if (set_bounded(ld, "limits.framework-version-max", value, 1, 99, 0, &v) != 0)
        return -1;
    ld->config->limits.max_framework_version = (int)v;
    return 0;
}

static int set_frame_limit(load_t *ld, const char *key, yaml_node_t *value, unsigned *out)
{
    uint64_t v;
    if (set_bounded(ld, key, value, 0, 1000000, 0, &v) != 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int set_h2_resets(load_t *ld, const char *key, yaml_node_t *value)
{
    return set_frame_limit(ld, "limits.http2-resets-per-second", value, &ld->config->limits.http2_resets_per_second);
}

static int set_h2_pings(load_t *ld, const char *key, yaml_node_t *value)
{
    return set_frame_limit(ld, "limits.http2-pings-per-second", value, &ld->config->limits.http2_pings_per_second);
}

static int set_h2_settings(load_t *ld, const char *key, yaml_node_t *value)
{
    return set_frame_limit(ld, "limits.http2-settings-per-second", value, &ld->config->limits.http2_settings_per_second);
}

static int set_limits(load_t *ld, const char *key, yaml_node_t *value)
{
    static const key_def_t defs[] = {{"max-body", set_max_body},
                                     {"max-depth", set_max_depth},
                                     {"max-violations", set_max_violations},
                                     {"framework-version-max", set_max_framework_version},
                                     {"http2-resets-per-second", set_h2_resets},
                                     {"http2-pings-per-second", set_h2_pings},
                                     {"http2-settings-per-second", set_h2_settings},
                                     {NULL, NULL}};
    return apply_mapping(ld, "limits", value, defs);
}

static int set_error_format(load_t *ld, const char *key, yaml_node_t *value)
{
    const char *s = scalar(ld, "errors.format", value);
    if (s == NULL)
        return -1;
    if (strcmp(s, "oracle") == 0)
        ld->config->error_format = GW_ERRORS_ORACLE;
    else if (strcmp(s, "problem+json") == 0)
        ld->config->error_format = GW_ERRORS_PROBLEM_JSON;
    else {
        fail(ld, value, "errors.format: \"%s\" is not \"oracle\" or \"problem+json\"", s);
        return -1;
    }
    return 0;
}

static int set_errors(load_t *ld, const char *key, yaml_node_t *value)
{
    static const key_def_t defs[] = {{"format", set_error_format}, {NULL, NULL}};
    return apply_mapping(ld, "errors", value, defs);
}

static int set_tls_cert(load_t *ld, const char *key, yaml_node_t *value)
{
    return set_file(ld, "tls.cert", value, &ld->config->tls_cert_file);
}

static int set_tls_key(load_t *ld, const char *key, yaml_node_t *value)
{
    return set_file(ld, "tls.key", value, &ld->config->tls_key_file);
}

static int set_tls(load_t *ld, const char *key, yaml_node_t *value)
{
    static const key_def_t defs[] = {{"cert", set_tls_cert}, {"key", set_tls_key}, {NULL, NULL}};
    if (apply_mapping(ld, "tls", value, defs) != 0)
        return -1;
    if ((ld->config->tls_cert_file == NULL) != (ld->config->tls_key_file == NULL)) {
        fail(ld, value, "tls: give both cert and key (PEM files), or neither");
        return -1;
    }
    return 0;
}

static int set_global_mode(load_t *ld, const char *key, yaml_node_t *value)
{
    const char *s = scalar(ld, key, value);
    if (s == NULL)
        return -1;
    if (gw_mode_parse(s, &ld->config->policy.mode) != 0) {
        fail(ld, value, "mode: \"%s\" is not enforce, report or off", s);
        return -1;
    }
    return 0;
}

static int set_kind_modes(load_t *ld, const char *key, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE) {
        fail(ld, map, "modes: expected a mapping of rule kinds to modes, e.g. {maxLength: report}");
        return -1;
    }
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; ++pair) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, pair->key), *v = yaml_document_get_node(ld->doc, pair->value);
        const char *kind_name = scalar(ld, "modes", k), *mode_name = scalar(ld, "modes", v);
        gw_rule_kind_t kind;
        gw_mode_t mode;
        if (kind_name == NULL || mode_name == NULL)
            return -1;
        if (gw_rule_kind_parse(kind_name, &kind) != 0) {
            fail(ld, k, "modes: unknown rule kind \"%s\" (known: maxLength, readOnly, createOnly, lookup, type, pattern, "
                        "unknown, required, headers)",
                 kind_name);
            return -1;
        }
        if (gw_mode_parse(mode_name, &mode) != 0) {
            fail(ld, v, "modes.%s: \"%s\" is not enforce, report or off", kind_name, mode_name);
            return -1;
        }
        ld->config->policy.kind_modes[kind] = mode;
    }
    return 0;
}

static int set_field_modes(load_t *ld, const char *key, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE) {
        fail(ld, map, "field-modes: expected a mapping of JSON pointers to modes, e.g. {\"/Description\": report}");
        return -1;
    }
    gw_policy_t *policy = &ld->config->policy;
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; ++pair) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, pair->key), *v = yaml_document_get_node(ld->doc, pair->value);
        const char *pointer = scalar(ld, "field-modes", k), *mode_name = scalar(ld, "field-modes", v);
        gw_mode_t mode;
        if (pointer == NULL || mode_name == NULL)
            return -1;
        if (pointer[0] != '/') {
            fail(ld, k, "field-modes: \"%s\" is not a JSON pointer (it starts with '/'; '*' matches any array index)", pointer);
            return -1;
        }
        if (gw_mode_parse(mode_name, &mode) != 0) {
            fail(ld, v, "field-modes.%s: \"%s\" is not enforce, report or off", pointer, mode_name);
            return -1;
        }
        gw_pointer_mode_t *pointers = realloc((void *)policy->pointers, (policy->npointers + 1) * sizeof(*pointers));
        if (pointers == NULL || (pointers[policy->npointers].pattern = strdup(pointer)) == NULL)
            gw_fatal("out of memory");
        pointers[policy->npointers++].mode = mode;
        policy->pointers = pointers;
    }
    return 0;
}

static int set_shutdown_timeout(load_t *ld, const char *key, yaml_node_t *value)
{
    return set_duration(ld, "shutdown-timeout", value, &ld->config->shutdown_timeout_ms);
}

static int set_report_header(load_t *ld, const char *key, yaml_node_t *value)
{
    return parse_switch(ld, "report-header", value, &ld->config->report_header);
}

void gw_config_set_audit_path(gw_config_t *config, const char *path)
{
    free(config->audit.path);
    config->audit.path = NULL;
    if (strcmp(path, "off") != 0)
        gw_config_set_string(&config->audit.path, path);
}

static int set_audit_path(load_t *ld, const char *key, yaml_node_t *value)
{
    const char *s = scalar(ld, "audit.path", value);
    if (s == NULL)
        return -1;
    if (*s == '\0') {
        fail(ld, value, "audit.path: a file, \"-\" (standard output) or off");
        return -1;
    }
    if (strcmp(s, "-") == 0 || strcmp(s, "off") == 0) {
        gw_config_set_audit_path(ld->config, s);
    } else {
        free(ld->config->audit.path);
        ld->config->audit.path = resolve_path(ld->config->base_dir, s);
    }
    return 0;
}

static int set_audit_fsync(load_t *ld, const char *key, yaml_node_t *value)
{
    const char *s = scalar(ld, "audit.fsync", value);
    if (s == NULL)
        return -1;
    if (strcmp(s, "always") == 0)
        ld->config->audit.fsync = GW_FSYNC_ALWAYS;
    else if (strcmp(s, "interval") == 0)
        ld->config->audit.fsync = GW_FSYNC_INTERVAL;
    else if (strcmp(s, "never") == 0)
        ld->config->audit.fsync = GW_FSYNC_NEVER;
    else {
        fail(ld, value, "audit.fsync: \"%s\" is not always, interval or never", s);
        return -1;
    }
    return 0;
}

static int set_audit_fsync_interval(load_t *ld, const char *key, yaml_node_t *value)
{
    if (set_duration(ld, "audit.fsync-interval", value, &ld->config->audit.fsync_interval_ms) != 0)
        return -1;
    if (ld->config->audit.fsync_interval_ms == 0) {
        fail(ld, value, "audit.fsync-interval: must be more than 0 (use fsync: always)");
        return -1;
    }
    return 0;
}

static int set_audit_on_failure(load_t *ld, const char *key, yaml_node_t *value)
{
    const char *s = scalar(ld, "audit.on-failure", value);
    if (s == NULL)
        return -1;
    if (strcmp(s, "fail-closed") == 0)
        ld->config->audit.fail_open = 0;
    else if (strcmp(s, "fail-open") == 0)
        ld->config->audit.fail_open = 1;
    else {
        fail(ld, value, "audit.on-failure: \"%s\" is not fail-closed or fail-open", s);
        return -1;
    }
    return 0;
}

static int set_audit_all_routes(load_t *ld, const char *key, yaml_node_t *value)
{
    return parse_switch(ld, "audit.all-routes", value, &ld->config->audit.all_routes);
}

static int set_audit_queue(load_t *ld, const char *key, yaml_node_t *value)
{
    uint64_t v;
    if (set_bounded(ld, "audit.queue", value, 4096, 1024ull * 1024 * 1024, 1, &v) != 0)
        return -1;
    ld->config->audit.queue_bytes = (size_t)v;
    return 0;
}

static int set_audit(load_t *ld, const char *key, yaml_node_t *value)
{
    static const key_def_t defs[] = {{"path", set_audit_path},
                                     {"fsync", set_audit_fsync},
                                     {"fsync-interval", set_audit_fsync_interval},
                                     {"on-failure", set_audit_on_failure},
                                     {"all-routes", set_audit_all_routes},
                                     {"queue", set_audit_queue},
                                     {NULL, NULL}};
    return apply_mapping(ld, "audit", value, defs);
}

static const key_def_t top_level_keys[] = {
    {"listen", set_listen}, {"admin", set_admin},   {"threads", set_threads}, {"upstream", set_upstream},
    {"rules", set_rules},   {"limits", set_limits}, {"errors", set_errors},   {"tls", set_tls},
    {"mode", set_global_mode}, {"modes", set_kind_modes}, {"field-modes", set_field_modes},
    {"report-header", set_report_header}, {"audit", set_audit}, {"shutdown-timeout", set_shutdown_timeout},
    {NULL, NULL}};

/* ---- loading ------------------------------------------------------------ */

static gw_config_t *config_new(const char *name, const char *base_dir)
{
    gw_config_t *config = calloc(1, sizeof(*config));
    if (config == NULL)
        gw_fatal("out of memory");
    gw_config_set_string(&config->source, name);
    gw_config_set_string(&config->base_dir, base_dir != NULL ? base_dir : "");
    gw_hostport_t listen = {"127.0.0.1", 8080}, admin = {"127.0.0.1", 9901};
    config->listen = listen;
    config->admin = admin;
    config->admin_enabled = 1;
    gw_config_set_string(&config->upstream_url, "http://127.0.0.1:8081");
    config->upstream_keepalive_ms = 2000;
    config->upstream_io_timeout_ms = 30000;
    config->upstream_verify_peer = 1;
    config->shutdown_timeout_ms = 10000;
    add_rule_path(config, resolve_path(config->base_dir, "rules"));
    config->limits = (gw_limits_t)GW_LIMITS_DEFAULT;
    config->error_format = GW_ERRORS_ORACLE;
    gw_policy_init(&config->policy);
    gw_config_set_string(&config->audit.path, "-");
    config->audit.fsync = GW_FSYNC_INTERVAL;
    config->audit.fsync_interval_ms = 1000;
    config->audit.queue_bytes = 4 * 1024 * 1024;
    return config;
}

void gw_config_destroy(gw_config_t *config)
{
    if (config == NULL)
        return;
    clear_rules(config);
    for (size_t i = 0; i < config->policy.npointers; ++i)
        free(config->policy.pointers[i].pattern);
    free((void *)config->policy.pointers);
    free(config->source);
    free(config->base_dir);
    free(config->upstream_url);
    free(config->upstream_ca_file);
    free(config->audit.path);
    free(config->tls_cert_file);
    free(config->tls_key_file);
    free(config);
}

gw_config_t *gw_config_load_text(const char *name, const char *base_dir, const char *text, size_t len, gw_error_t *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    gw_config_t *config = config_new(name, base_dir);
    if (!yaml_parser_initialize(&parser))
        gw_fatal("out of memory (YAML parser)");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        gw_error_set(err, "%s:%zu:%zu: YAML syntax error: %s%s%s", name, parser.problem_mark.line + 1,
                     parser.problem_mark.column + 1, parser.problem != NULL ? parser.problem : "unknown",
                     parser.context != NULL ? " " : "", parser.context != NULL ? parser.context : "");
        yaml_parser_delete(&parser);
        gw_config_destroy(config);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    load_t ld = {.name = name, .doc = &doc, .config = config, .err = err};
    int ret = 0;
    if (root != NULL && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
        ret = apply_mapping(&ld, "", root, top_level_keys);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (ret != 0) {
        gw_config_destroy(config);
        return NULL;
    }
    return config;
}

gw_config_t *gw_config_load_file(const char *path, gw_error_t *err)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        gw_error_set(err, "%s: cannot open configuration: %s", path, strerror(errno));
        return NULL;
    }
    gw_buf_t text = GW_BUF_INIT;
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0 && text.len <= GW_CONFIG_MAX_FILE_SIZE)
        gw_buf_append(&text, chunk, n);
    int failed = ferror(fp);
    fclose(fp);
    gw_config_t *config = NULL;
    if (failed) {
        gw_error_set(err, "%s: cannot read configuration", path);
    } else if (text.len > GW_CONFIG_MAX_FILE_SIZE) {
        gw_error_set(err, "%s: configuration is larger than %d bytes", path, GW_CONFIG_MAX_FILE_SIZE);
    } else {
        char *dir = strdup(path);
        if (dir == NULL)
            gw_fatal("out of memory");
        char *slash = strrchr(dir, '/');
        if (slash != NULL)
            *(slash == dir ? slash + 1 : slash) = '\0';
        else
            dir[0] = '\0';
        config = gw_config_load_text(path, dir, text.base != NULL ? text.base : "", text.len, err);
        free(dir);
    }
    gw_buf_dispose(&text);
    return config;
}

void gw_config_set_rules(gw_config_t *config, const char *path)
{
    clear_rules(config);
    add_rule_path(config, resolve_path(NULL, path));
}

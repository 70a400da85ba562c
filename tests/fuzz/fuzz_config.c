/*
 * fuzz_config: bytes are a YAML configuration, loaded by gw_config_load_text().
 *
 * Invariants, beyond "no crash, no sanitizer report":
 *  - either a configuration comes back and the error is untouched, or NULL
 *    comes back with an error text that starts with the name given;
 *  - a configuration is within the documented bounds: limits, at least one
 *    rules path (resolved against the base directory when relative), TLS cert
 *    and key both or neither, field-mode pointers starting with '/', modes
 *    that exist, a non-empty upstream URL;
 *  - it is destroyed without leaks.
 */
#include "config.h"
#include "fuzz_util.h"

#define NAME "fuzz.yaml"
#define BASE "/etc/crmgate"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static int valid_mode(int mode)
{
    return mode == GW_MODE_ENFORCE || mode == GW_MODE_REPORT || mode == GW_MODE_OFF;
}

static void check_path(const char *what, const char *path)
{
    FUZZ_CHECK(path != NULL, "%s is NULL", what);
    FUZZ_CHECK(path[0] == '/', "%s \"%s\" was not resolved against the base directory", what, path);
}

static void check_config(const gw_config_t *c)
{
    FUZZ_CHECK(c->source != NULL && strcmp(c->source, NAME) == 0, "source is not the name given");
    FUZZ_CHECK(c->base_dir != NULL && strcmp(c->base_dir, BASE) == 0, "base_dir is not the one given");
    FUZZ_CHECK(c->listen.host[0] != '\0' && memchr(c->listen.host, '\0', sizeof(c->listen.host)) != NULL,
               "listen host empty or unterminated");
    FUZZ_CHECK(!c->admin_enabled || (c->admin.host[0] != '\0' && memchr(c->admin.host, '\0', sizeof(c->admin.host)) != NULL),
               "admin host empty or unterminated");
    FUZZ_CHECK(c->threads <= 256, "threads %u", c->threads);
    FUZZ_CHECK(c->upstream_url != NULL &&
                   (fuzz_starts_with(c->upstream_url, "http://") || fuzz_starts_with(c->upstream_url, "https://")),
               "upstream url \"%s\"", c->upstream_url != NULL ? c->upstream_url : "(null)");
    FUZZ_CHECK(c->upstream_io_timeout_ms > 0, "upstream io timeout 0");
    FUZZ_CHECK(c->nrules >= 1 && c->rules != NULL, "no rules path");
    for (size_t i = 0; i < c->nrules; ++i)
        check_path("a rules path", c->rules[i]);
    FUZZ_CHECK((c->tls_cert_file == NULL) == (c->tls_key_file == NULL), "only one of tls cert and key");
    if (c->tls_cert_file != NULL) {
        check_path("tls.cert", c->tls_cert_file);
        check_path("tls.key", c->tls_key_file);
    }
    if (c->upstream_ca_file != NULL)
        check_path("upstream.ca-file", c->upstream_ca_file);
    FUZZ_CHECK(c->limits.max_body >= 1 && c->limits.max_body <= 1024u * 1024 * 1024, "max_body %zu", c->limits.max_body);
    FUZZ_CHECK(c->limits.max_depth >= 1 && c->limits.max_depth <= 1000, "max_depth %zu", c->limits.max_depth);
    FUZZ_CHECK(c->limits.max_violations >= 1 && c->limits.max_violations <= 10000, "max_violations %zu",
               c->limits.max_violations);
    FUZZ_CHECK(c->limits.max_framework_version >= 1 && c->limits.max_framework_version <= 99, "framework version max %d",
               c->limits.max_framework_version);
    FUZZ_CHECK(c->error_format == GW_ERRORS_ORACLE || c->error_format == GW_ERRORS_PROBLEM_JSON, "error format %d",
               (int)c->error_format);
    FUZZ_CHECK(valid_mode(c->policy.mode), "mode %d", (int)c->policy.mode);
    for (int k = 0; k < GW_KIND__COUNT; ++k)
        FUZZ_CHECK(c->policy.kind_modes[k] == GW_MODE_UNSET || valid_mode(c->policy.kind_modes[k]), "kind mode %d",
                   c->policy.kind_modes[k]);
    FUZZ_CHECK(c->policy.kind_modes[GW_KIND_STRUCTURE] == GW_MODE_UNSET && c->policy.kind_modes[GW_KIND_UPSTREAM] == GW_MODE_UNSET,
               "a mode was set for structural failures");
    for (size_t i = 0; i < c->policy.npointers; ++i) {
        FUZZ_CHECK(c->policy.pointers[i].pattern != NULL && c->policy.pointers[i].pattern[0] == '/',
                   "field-modes pointer %zu does not start with '/'", i);
        FUZZ_CHECK(valid_mode(c->policy.pointers[i].mode), "field-modes mode %d", (int)c->policy.pointers[i].mode);
        /* the policy is used on every violation: it must answer for any pointer */
        (void)gw_policy_pointer_mode(&c->policy, "/a/0/b", GW_MODE_ENFORCE);
    }
    FUZZ_CHECK(c->audit.fsync == GW_FSYNC_ALWAYS || c->audit.fsync == GW_FSYNC_INTERVAL || c->audit.fsync == GW_FSYNC_NEVER,
               "audit fsync %d", (int)c->audit.fsync);
    FUZZ_CHECK(c->audit.fsync_interval_ms > 0, "audit fsync interval 0");
    FUZZ_CHECK(c->audit.queue_bytes >= 4096 && c->audit.queue_bytes <= 1024u * 1024 * 1024, "audit queue %zu",
               c->audit.queue_bytes);
    if (c->audit.path != NULL && strcmp(c->audit.path, "-") != 0)
        check_path("audit.path", c->audit.path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_error_t err;
    gw_error_clear(&err);
    gw_config_t *config = gw_config_load_text(NAME, BASE, (const char *)data, size, &err);
    if (config == NULL) {
        FUZZ_CHECK(err.text[0] != '\0', "NULL without an error text");
        FUZZ_CHECK(fuzz_starts_with(err.text, NAME ":"), "the error does not start with the name: %s", err.text);
        return 0;
    }
    FUZZ_CHECK(err.text[0] == '\0', "a configuration came back with an error: %s", err.text);
    check_config(config);
    gw_config_destroy(config);
    return 0;
}

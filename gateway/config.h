/*
 * The YAML configuration (conf/crmgate.yaml is the embedded default). Every
 * key is in one table in config.c; an error names FILE:LINE:COL and the key,
 * with a suggestion for a misspelt one. Relative paths in a file are taken
 * relative to that file's directory (the embedded default: the working directory).
 *
 * Ownership: gw_config_load*() return a new config; gw_config_destroy() frees it.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "evaluate.h"
#include "render.h"
#include "audit.h"

typedef struct st_gw_hostport_t {
    char host[256];
    uint16_t port; /* 0: an ephemeral port, reported in the log when bound */
} gw_hostport_t;

typedef struct st_gw_config_t {
    char *source;   /* the file, or "<embedded default>" */
    char *base_dir; /* where relative paths are resolved */
    gw_hostport_t listen;
    gw_hostport_t admin;
    int admin_enabled;
    unsigned threads; /* 0: one per core */
    char *upstream_url;
    uint64_t upstream_keepalive_ms; /* idle upstream connections are kept this long; 0 disables pooling */
    uint64_t shutdown_timeout_ms;   /* how long SIGTERM lets requests in flight finish */
    uint64_t upstream_io_timeout_ms; /* upstream.timeout.io: h2o 2.2.5's one timeout, for connecting too */
    char *upstream_ca_file;          /* NULL: the system's CA store */
    int upstream_verify_peer;        /* 1 by default; 0 only for labs (logged as a warning) */
    char *tls_cert_file;             /* listener TLS: both NULL, or both set */
    char *tls_key_file;
    char **rules; /* files or directories, resolved */
    size_t nrules;
    gw_limits_t limits;
    gw_error_format_t error_format;
    gw_policy_t policy;     /* mode, modes (per rule kind), field-modes (per pointer); pointers owned here */
    int report_header;      /* forwarded requests with report-mode violations carry X-CRMGate-Report */
    struct {
        char *path; /* a file, "-" for standard output, or NULL: no audit trail */
        gw_fsync_policy_t fsync;
        uint64_t fsync_interval_ms;
        int fail_open;  /* 0: answer 503 while the sink fails (the default); 1: go on unaudited */
        int all_routes; /* 1: a record for every request, not only those on validated routes */
        size_t queue_bytes;
    } audit;
} gw_config_t;

/** Loads a YAML file. NULL on error (err set: "FILE:LINE:COL: message"). */
gw_config_t *gw_config_load_file(const char *path, gw_error_t *err);
/** Loads YAML text; name is used in errors, base_dir resolves relative paths. */
gw_config_t *gw_config_load_text(const char *name, const char *base_dir, const char *text, size_t len, gw_error_t *err);
void gw_config_destroy(gw_config_t *config);

/** The text of conf/crmgate.yaml, compiled into the binary. */
const char *gw_config_default_text(size_t *len);

/* Value parsers shared with the command line. Each returns 0, or -1 with a reason in err. */
int gw_config_parse_hostport(const char *s, gw_hostport_t *out, gw_error_t *err);
int gw_config_parse_threads(const char *s, unsigned *out, gw_error_t *err);
int gw_config_parse_upstream(const char *s, gw_error_t *err);
/** Sets audit.path from the command line: a file, "-" or "off". */
void gw_config_set_audit_path(gw_config_t *config, const char *path);
/** Replaces the rule paths with one path (resolved against the working directory). */
void gw_config_set_rules(gw_config_t *config, const char *path);
void gw_config_set_string(char **field, const char *value);

#endif

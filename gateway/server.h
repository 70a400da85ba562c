/*
 * The daemon: worker threads, each with its own h2o event loop and
 * SO_REUSEPORT listener; the admin listener on worker 0's loop; shutdown.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdatomic.h>
#include <h2o.h>
#include "config.h"
#include "audit.h"
#include "evaluate.h"
#include "rules.h"

typedef struct st_gw_worker_t gw_worker_t;

/*
 * A configuration with its compiled rules: what a request is judged by. A
 * reload makes a new one; each worker switches to it on its own thread, and a
 * request keeps the one it started with (a reference) until it ends.
 */
typedef struct st_gw_runtime_t {
    atomic_uint refcount;
    gw_config_t *config; /* owned */
    gw_ruleset_t *rules; /* one reference */
} gw_runtime_t;

/** Takes ownership of config and of one reference to rules; returns a runtime with one reference. */
gw_runtime_t *gw_runtime_new(gw_config_t *config, gw_ruleset_t *rules);
void gw_runtime_addref(gw_runtime_t *runtime);
void gw_runtime_release(gw_runtime_t *runtime);

/** Loads the configuration again (the same file and command-line overrides), for a reload. */
typedef gw_config_t *(*gw_config_loader_t)(void *ctx, gw_error_t *err);

typedef struct st_gw_server_t {
    gw_config_t *config;           /* the start-up configuration: listeners, upstream, TLS (a reload cannot change them) */
    gw_runtime_t *startup;         /* owns config */
    gw_config_loader_t load_config;
    void *load_config_ctx;
    h2o_globalconf_t globalconf;   /* traffic */
    h2o_globalconf_t admin_conf;   /* the admin listener */
    h2o_url_t upstream;
    SSL_CTX *upstream_ssl_ctx;     /* NULL for http:// upstreams */
    SSL_CTX *listener_ssl_ctx;     /* NULL unless tls: is configured */
    unsigned nthreads;
    gw_worker_t *workers;
    int listen_fds[256];
    int admin_fd;
    atomic_int stopping;
    unsigned pass_through_metric_id;
    gw_audit_t *audit; /* NULL: no audit trail */
} gw_server_t;

/**
 * Serves until SIGTERM or SIGINT, then stops accepting, lets requests in
 * flight finish (up to a grace period) and returns 0; a second signal exits at
 * once. SIGHUP reloads the configuration and the rules. Returns 1 if it could
 * not start (the reason is logged). Takes ownership of config and of a
 * reference to rules; load_config is called for each reload.
 */
int gw_server_run(gw_config_t *config, gw_ruleset_t *rules, gw_config_loader_t load_config, void *load_config_ctx);

/** What -t checks beyond the configuration and rules: the upstream URL and the TLS files. 0 or -1 (logged). */
int gw_server_check(const gw_config_t *config);

/** The runtime the calling worker judges new requests by (borrowed: valid during the current callback). */
gw_runtime_t *gw_server_current_runtime(void);

/*
 * What crmgate decided about a request, for the filters and the end of the request.
 * Created by the handler (every traffic request meets it first), in the request's pool.
 */
typedef struct st_gw_request_state_t {
    h2o_req_t *req;
    gw_runtime_t *runtime;     /* the configuration and rules it is judged by (a reference) */
    h2o_iovec_t report_header; /* X-CRMGate-Report value, or empty */
    /* for the audit record, written when the request ends */
    int audited;
    const gw_route_t *route;   /* NULL: no route (or refused before routing) */
    gw_decision_t decision;
    h2o_iovec_t violations;    /* the record's "violations" array (JSON), in the request pool */
    char body_sha256[65];
    size_t bytes_in;
    int upstream_status;       /* 0: the CRM did not answer */
    uint64_t upstream_ns;
    const char *fault;         /* static: why the CRM did not answer, or NULL */
} gw_request_state_t;

/** Starts the state of a request: counted in flight until its pool is released, then its duration is observed. */
gw_request_state_t *gw_request_state_new(h2o_req_t *req);
/** The state of a request of this thread, or NULL (h2o refused it before routing). */
gw_request_state_t *gw_request_state(h2o_req_t *req);
/** Nanoseconds since a wall-clock time (h2o's request timestamps). */
uint64_t gw_server_elapsed_ns(const struct timeval *since);

/* handler.c: the validating handler (placed first on the path) and the response filter. */
void gw_handler_register(h2o_pathconf_t *pathconf, gw_server_t *server);
/**
 * handler.c: the request's X-Request-ID: the client's when it is short and printable,
 * otherwise a new one, put in the request headers (so it also goes upstream).
 */
h2o_iovec_t gw_request_id_ensure(h2o_req_t *req);
/* auditlog.c: the audit record of a request. */
void gw_auditlog_prepare(gw_request_state_t *state, const gw_result_t *result); /* when it is judged */
void gw_auditlog_write(gw_server_t *server, gw_request_state_t *state);       /* when it ends: batched per thread */
/* Hands the calling worker's batch of records to the sink: after every event-loop pass, and with last set when the
 * worker ends (the batch's buffer is freed then). */
void gw_auditlog_flush(gw_server_t *server, int last);
/** The running server (its audit sink, for the request's end). */
gw_server_t *gw_server_running(void);
/* rewrite.c: upstream errors in the negotiated format. */
void gw_rewrite_register(h2o_pathconf_t *pathconf, gw_server_t *server);
/* Set by the handler while it sends its own rejection, so the rewrite filter leaves it alone. */
extern __thread h2o_req_t *gw__rejection_in_progress;
/* bodyguard.c: limits.max-body enforced on HTTP/2 frames, so that no stream is reset or buffered past it. */
void gw_bodyguard_attach(h2o_loop_t *loop, h2o_timeout_t *poll_timeout, h2o_socket_t *sock, const gw_limits_t *limits);
/** Returns 1 when the guard cut this request's body at the limit (the body is then over the limit, its size unknown). */
int gw_bodyguard_on_request(h2o_req_t *req);
/* admin.c: /-/healthz and friends. */
void gw_admin_register(h2o_hostconf_t *hostconf, gw_server_t *server);

#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "buf.h"
#include "metrics.h"
#include "server.h"
#ifdef CRMGATE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* h2o's own body limit. HTTP/2 streams never reach it: the body guard cuts them at
 * max-body + 1 and the handler answers 413. An HTTP/1.1 body up to it is read and
 * answered 413 by the handler, keeping the connection; above it h2o refuses the
 * Content-Length before reading the body (rewritten into crmgate's format) and
 * closes the connection at once - h2o 2.2.5 has no lingering close, so a client
 * still uploading may see a reset instead of the answer. The limit bounds what one
 * HTTP/1.1 request can make crmgate buffer. */
#define GW_H2O_ENTITY_FACTOR 4
#define GW_H2O_ENTITY_MIN ((size_t)8 * 1024 * 1024)

struct st_gw_worker_t {
    gw_server_t *server;
    unsigned index;
    pthread_t thread;
    h2o_context_t ctx;
    h2o_context_t admin_ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_accept_ctx_t admin_accept_ctx;
    h2o_socket_t *listener;
    h2o_socket_t *admin_listener;
    h2o_multithread_receiver_t control_receiver; /* stop (wake-up) and new runtimes */
    gw_runtime_t *runtime;                       /* this worker's current one (a reference) */
    atomic_long inflight; /* requests of this worker not finished yet (read by the main thread when stopping) */
    atomic_int ready;    /* the control receiver is registered */
    atomic_int finished; /* the loop has ended */
    h2o_timeout_t guard_poll_timeout; /* 1 ms, for the body guard's TLS handshake watch */
};

static __thread gw_worker_t *current_worker;
/* The running server stays reachable to the end, for leak checkers too: open
 * connections and their loops are left to the process exit. */
static gw_server_t *running_server;
/* The traffic port actually bound (the configured one, or the ephemeral one for port 0), for STATUS=. */
static uint16_t bound_listen_port;
/* The digest of the rules last handed to the workers, for STATUS=: a copy kept by the main thread, which
 * alone starts and reloads, so that it is read without racing a worker's runtime swap. */
static char served_digest[72];

gw_runtime_t *gw_runtime_new(gw_config_t *config, gw_ruleset_t *rules)
{
    gw_runtime_t *runtime = calloc(1, sizeof(*runtime));
    if (runtime == NULL)
        gw_fatal("out of memory");
    atomic_init(&runtime->refcount, 1);
    runtime->config = config;
    runtime->rules = rules;
    return runtime;
}

void gw_runtime_addref(gw_runtime_t *runtime)
{
    atomic_fetch_add_explicit(&runtime->refcount, 1, memory_order_relaxed);
}

void gw_runtime_release(gw_runtime_t *runtime)
{
    if (runtime == NULL || atomic_fetch_sub_explicit(&runtime->refcount, 1, memory_order_acq_rel) != 1)
        return;
    gw_ruleset_release(runtime->rules);
    gw_config_destroy(runtime->config);
    free(runtime);
}

gw_runtime_t *gw_server_current_runtime(void)
{
    return current_worker->runtime;
}

/* A new runtime for a worker: sent by the main thread on reload. */
typedef struct st_runtime_message_t {
    h2o_multithread_message_t super;
    gw_runtime_t *runtime; /* a reference for the worker */
} runtime_message_t;

/* ---- per-request state ------------------------------------------------------
 * h2o 2.2.5 offers no per-request slot, and its proxy re-processes the request
 * (resetting the response), so what crmgate decides in the handler is kept here,
 * in a per-thread table keyed by the request, for the filters and the end of the
 * request to find. The state lives in the request's pool; its entry goes when the
 * pool is released. */

typedef struct st_state_slot_t {
    h2o_req_t *req;
    gw_request_state_t *state;
} state_slot_t;

static __thread state_slot_t *state_slots;
static __thread size_t state_cap, state_count;

static size_t slot_of(h2o_req_t *req)
{
    uintptr_t h = (uintptr_t)req;
    h ^= h >> 17;
    h *= 0xed5ad4bbu;
    return (size_t)(h ^ (h >> 11)) & (state_cap - 1);
}

static void state_insert(h2o_req_t *req, gw_request_state_t *state)
{
    if ((state_count + 1) * 2 > state_cap) {
        state_slot_t *old = state_slots;
        size_t old_cap = state_cap;
        state_cap = state_cap == 0 ? 64 : state_cap * 2;
        if ((state_slots = calloc(state_cap, sizeof(*state_slots))) == NULL)
            gw_fatal("out of memory (request states)");
        state_count = 0;
        for (size_t i = 0; i < old_cap; ++i)
            if (old[i].req != NULL)
                state_insert(old[i].req, old[i].state);
        free(old);
    }
    size_t i = slot_of(req);
    while (state_slots[i].req != NULL)
        i = (i + 1) & (state_cap - 1);
    state_slots[i] = (state_slot_t){req, state};
    ++state_count;
}

gw_request_state_t *gw_request_state(h2o_req_t *req)
{
    if (state_cap == 0)
        return NULL;
    for (size_t i = slot_of(req); state_slots[i].req != NULL; i = (i + 1) & (state_cap - 1))
        if (state_slots[i].req == req)
            return state_slots[i].state;
    return NULL;
}

static void state_remove(h2o_req_t *req)
{
    size_t i = slot_of(req);
    while (state_slots[i].req != req) {
        if (state_slots[i].req == NULL)
            return;
        i = (i + 1) & (state_cap - 1);
    }
    /* backward-shift deletion: no tombstones */
    for (size_t j = (i + 1) & (state_cap - 1); state_slots[j].req != NULL; j = (j + 1) & (state_cap - 1)) {
        size_t home = slot_of(state_slots[j].req);
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            state_slots[i] = state_slots[j];
            i = j;
        }
    }
    state_slots[i] = (state_slot_t){NULL, NULL};
    --state_count;
}

static uint64_t elapsed_ns(const struct timeval *since)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t us = (int64_t)(now.tv_sec - since->tv_sec) * 1000000 + (now.tv_usec - since->tv_usec);
    return us > 0 ? (uint64_t)us * 1000 : 0;
}

gw_server_t *gw_server_running(void)
{
    return running_server;
}

static void on_request_done(void *p)
{
    gw_request_state_t *state = p;
    gw_auditlog_write(running_server, state); /* the response is complete: its record can say how it ended */
    gw_runtime_release(state->runtime);
    atomic_fetch_sub(&current_worker->inflight, 1);
    gw_metrics_observe_request(elapsed_ns(&state->req->timestamps.request_begin_at));
    state_remove(state->req);
}

gw_request_state_t *gw_request_state_new(h2o_req_t *req)
{
    gw_request_state_t *state = h2o_mem_alloc_shared(&req->pool, sizeof(*state), on_request_done);
    memset(state, 0, sizeof(*state));
    state->req = req;
    state->runtime = current_worker->runtime;
    gw_runtime_addref(state->runtime);
    state_insert(req, state);
    atomic_fetch_add(&current_worker->inflight, 1);
    return state;
}

uint64_t gw_server_elapsed_ns(const struct timeval *since)
{
    return elapsed_ns(since);
}

/* ---- the service manager ---------------------------------------------------
 * systemd's notification protocol (the unit is Type=notify): READY=1 once every
 * worker listens, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 when
 * the drain starts; STATUS= says what is served. sd_notify() does nothing when
 * $NOTIFY_SOCKET is unset, so outside systemd (and in builds without libsystemd,
 * whose unit is Type=simple) these calls cost nothing. */

static void notify_service_manager(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify_service_manager(const char *fmt, ...)
{
#ifdef CRMGATE_HAVE_SYSTEMD
    static int warned; /* main thread only: one warning, not one per reload */
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    int rc = sd_notify(0, message);
    if (rc < 0 && !warned) {
        /* systemd would time the start-up out waiting for READY=1: say why before it does */
        gw_log_warn("cannot notify the service manager at $NOTIFY_SOCKET: %s", strerror(-rc));
        warned = 1;
    }
#else
    (void)fmt;
#endif
}

/* ---- listeners ---------------------------------------------------------- */

static int open_listener(const gw_hostport_t *hp, uint16_t port, int reuseport, uint16_t *bound_port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *res;
    char port_str[8];
    snprintf(port_str, sizeof(port_str), "%u", port);
    int rc = getaddrinfo(hp->host, port_str, &hints, &res);
    if (rc != 0) {
        gw_log_error("cannot listen on %s:%u: %s (the host must be an IP address)", hp->host, hp->port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        gw_log_error("cannot listen on %s:%u: %s", hp->host, port, strerror(errno));
        if (fd != -1)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sslen);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* SO_REUSEPORT would let another process of the same user join our port and take
 * half of its connections: a socket without it can bind only if nobody holds the port. */
static int port_is_free(const gw_hostport_t *hp)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *res;
    char port_str[8];
    snprintf(port_str, sizeof(port_str), "%u", hp->port);
    if (getaddrinfo(hp->host, port_str, &hints, &res) != 0)
        return 1; /* open_listener reports it */
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1, free_port = 1;
    if (fd != -1 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 &&
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 && errno == EADDRINUSE) {
        gw_log_error("cannot listen on %s:%u: the port is in use (by another crmgate?)", hp->host, hp->port);
        free_port = 0;
    }
    if (fd != -1)
        close(fd);
    freeaddrinfo(res);
    return free_port;
}

/* One listening socket per worker, all on the same port: the first fixes the port when 0 was asked for. */
static int open_listeners(gw_server_t *server)
{
    uint16_t port = server->config->listen.port, bound;
    if (port != 0 && !port_is_free(&server->config->listen))
        return -1;
    for (unsigned i = 0; i < server->nthreads; ++i) {
        if ((server->listen_fds[i] = open_listener(&server->config->listen, port, 1, &bound)) == -1)
            return -1;
        port = bound;
    }
    bound_listen_port = port;
    gw_log_info("listening on %s://%s:%u with %u worker thread%s", server->listener_ssl_ctx != NULL ? "https" : "http",
                server->config->listen.host, port,
                server->nthreads, server->nthreads == 1 ? "" : "s");
    server->admin_fd = -1;
    if (server->config->admin_enabled) {
        if ((server->admin_fd = open_listener(&server->config->admin, server->config->admin.port, 0, &bound)) == -1)
            return -1;
        gw_log_info("admin listening on http://%s:%u", server->config->admin.host, bound);
    }
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_accept_ctx_t *accept_ctx = listener->data;
    h2o_socket_t *sock;
    if (err != NULL)
        return;
    if ((sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    h2o_accept(accept_ctx, sock);
    if (accept_ctx == &current_worker->accept_ctx)
        /* the start-up limits: h2o's own body limit is fixed at start-up too */
        gw_bodyguard_attach(current_worker->ctx.loop, &current_worker->guard_poll_timeout, sock,
                            &current_worker->server->config->limits);
}

static h2o_socket_t *start_listening(h2o_loop_t *loop, int fd, h2o_accept_ctx_t *accept_ctx)
{
    h2o_socket_t *sock = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    sock->data = accept_ctx;
    h2o_socket_read_start(sock, on_accept);
    return sock;
}

/* ---- workers ------------------------------------------------------------ */

/* A stop is a wake-up without a message (the worker then sees `stopping`); a message carries a new runtime. */
static void on_control_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    gw_worker_t *worker = H2O_STRUCT_FROM_MEMBER(gw_worker_t, control_receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        runtime_message_t *message = H2O_STRUCT_FROM_MEMBER(runtime_message_t, super.link, messages->next);
        h2o_linklist_unlink(&message->super.link);
        gw_runtime_release(worker->runtime); /* requests in flight keep their own references */
        worker->runtime = message->runtime;
        free(message);
    }
}

static void close_listeners(gw_worker_t *worker)
{
    if (worker->listener != NULL) {
        h2o_socket_read_stop(worker->listener);
        h2o_socket_close(worker->listener);
        worker->listener = NULL;
    }
    if (worker->admin_listener != NULL) {
        h2o_socket_read_stop(worker->admin_listener);
        h2o_socket_close(worker->admin_listener);
        worker->admin_listener = NULL;
    }
}

static uint64_t monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
    return monotonic_usec() / 1000;
}

static void *worker_main(void *arg)
{
    gw_worker_t *worker = arg;
    gw_server_t *server = worker->server;
    current_worker = worker;
    gw_runtime_addref(server->startup);
    worker->runtime = server->startup;
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&worker->ctx, loop, &server->globalconf);
    h2o_timeout_init(loop, &worker->guard_poll_timeout, 1);
    worker->accept_ctx =
        (h2o_accept_ctx_t){.ctx = &worker->ctx, .hosts = server->globalconf.hosts, .ssl_ctx = server->listener_ssl_ctx};
    h2o_multithread_register_receiver(worker->ctx.queue, &worker->control_receiver, on_control_message);
    worker->listener = start_listening(loop, server->listen_fds[worker->index], &worker->accept_ctx);
    if (worker->index == 0 && server->admin_fd != -1) {
        h2o_context_init(&worker->admin_ctx, loop, &server->admin_conf);
        worker->admin_accept_ctx = (h2o_accept_ctx_t){.ctx = &worker->admin_ctx, .hosts = server->admin_conf.hosts};
        worker->admin_listener = start_listening(loop, server->admin_fd, &worker->admin_accept_ctx);
    }

    atomic_store(&worker->ready, 1);
    while (!atomic_load(&server->stopping)) {
        h2o_evloop_run(loop, 1000);
        gw_auditlog_flush(server, 0); /* the records of this pass, in one hand-over */
    }
    close_listeners(worker);
    /* HTTP/1.1 connections close after their current response, HTTP/2 ones get a GOAWAY:
     * keep-alive clients stop sending instead of keeping the drain busy */
    h2o_context_request_shutdown(&worker->ctx);
    /* draining: the listeners are closed; requests in flight get a grace period */
    uint64_t grace_ms = server->config->shutdown_timeout_ms;
    uint64_t deadline = now_ms() + grace_ms;
    while (atomic_load(&worker->inflight) > 0 && now_ms() < deadline) {
        h2o_evloop_run(loop, 10);
        gw_auditlog_flush(server, 0);
    }
    if (atomic_load(&worker->inflight) > 0)
        gw_log_warn("worker %u: %ld request(s) still in flight after shutdown-timeout (%llu ms); closing", worker->index,
                    (long)atomic_load(&worker->inflight), (unsigned long long)grace_ms);
    h2o_multithread_unregister_receiver(worker->ctx.queue, &worker->control_receiver);
    gw_auditlog_flush(server, 1); /* before the main thread closes the sink: no record is left behind */
    gw_runtime_release(worker->runtime);
    worker->runtime = NULL;
    atomic_store(&worker->finished, 1);
    /* Open connections and the loop go with the process: h2o 2.2.5 cannot close connections it owns from
     * outside, and disposing a context with live connections aborts. The thread stays (idle) until the
     * process exits, so that what h2o keeps per thread (its recycled buffers) is not orphaned by a thread
     * exit before then - which LeakSanitizer would rightly call a leak. */
    for (;;)
        pause();
    return NULL;
}

/* ---- set-up ------------------------------------------------------------- */

static void log_openssl_error(const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    gw_log_error("%s: %s", what, e != 0 ? buf : "unknown OpenSSL error");
    ERR_clear_error();
}

/* The TLS client context of an https:// upstream: peer and host name verified unless configured off. */
static SSL_CTX *create_upstream_ssl_ctx(const gw_config_t *config, const h2o_url_t *upstream)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        log_openssl_error("cannot create the upstream TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (!config->upstream_verify_peer) {
        gw_log_warn("upstream.verify-peer is off: the CRM's certificate and host name are NOT checked (labs only)");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int loaded = config->upstream_ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, config->upstream_ca_file, NULL)
                                                  : SSL_CTX_set_default_verify_paths(ctx);
    if (loaded != 1) {
        char what[1200];
        snprintf(what, sizeof(what), "%s: cannot load the CA certificates of upstream.ca-file",
                 config->upstream_ca_file != NULL ? config->upstream_ca_file : "(system store)");
        log_openssl_error(what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* h2o 2.2.5 checks the host name itself on TLS 1.2 only; setting it on the
     * context makes OpenSSL check it during every handshake, TLS 1.3 included */
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)upstream->host.len, upstream->host.base);
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int by_address = host[0] == '[' || strspn(host, "0123456789.") == strlen(host);
    if (by_address)
        gw_log_warn("the upstream is named by its IP address: h2o 2.2.5's own TLS 1.2 name check knows no IP address "
                    "certificates, so only TLS 1.3 connections will be accepted; name the CRM by its host name");
    int host_set = by_address ? X509_VERIFY_PARAM_set1_ip_asc(param, host[0] == '[' ? strtok(host + 1, "]") : host)
                              : X509_VERIFY_PARAM_set1_host(param, host, 0);
    if (host_set != 1) {
        log_openssl_error("cannot set the upstream host name to verify");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The listener's TLS context: HTTP/2 and HTTP/1.1 offered by ALPN. */
static SSL_CTX *create_listener_ssl_ctx(const gw_config_t *config)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        log_openssl_error("cannot create the listener TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    char what[1200];
    if (SSL_CTX_use_certificate_chain_file(ctx, config->tls_cert_file) != 1) {
        snprintf(what, sizeof(what), "%s: cannot load tls.cert", config->tls_cert_file);
        log_openssl_error(what);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, config->tls_key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "%s: cannot load tls.key", config->tls_key_file);
        log_openssl_error(what);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof(what), "%s: tls.key does not match tls.cert %s", config->tls_key_file, config->tls_cert_file);
        log_openssl_error(what);
    } else {
        h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

static int setup_traffic(gw_server_t *server)
{
    gw_config_t *config = server->config;
    if (h2o_url_parse(config->upstream_url, SIZE_MAX, &server->upstream) != 0) {
        gw_log_error("%s: upstream.url \"%s\" cannot be parsed", config->source, config->upstream_url);
        return -1;
    }
    /* an https:// upstream without a TLS context would crash h2o 2.2.5: it is created or start-up fails */
    if (server->upstream.scheme == &H2O_URL_SCHEME_HTTPS &&
        (server->upstream_ssl_ctx = create_upstream_ssl_ctx(config, &server->upstream)) == NULL)
        return -1;
    if (config->tls_cert_file != NULL && (server->listener_ssl_ctx = create_listener_ssl_ctx(config)) == NULL)
        return -1;
    h2o_config_init(&server->globalconf);
    size_t h2o_limit = config->limits.max_body * GW_H2O_ENTITY_FACTOR;
    server->globalconf.max_request_entity_size = h2o_limit > GW_H2O_ENTITY_MIN ? h2o_limit : GW_H2O_ENTITY_MIN;
    server->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("crmgate"));
    h2o_hostconf_t *host = h2o_config_register_host(&server->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    /* h2o's own request error lines have their own format; the rewrite filter logs upstream faults instead */
    pathconf->error_log.emit_request_errors = 0;
    host->fallback_path.error_log.emit_request_errors = 0;
    gw_handler_register(pathconf, server);
    gw_rewrite_register(pathconf, server);
    /* h2o answers some requests before routing them (a body over its limit, broken chunked
     * encoding): those use the host's fallback path, where the rewrite filter must be too */
    gw_rewrite_register(&host->fallback_path, server);
    h2o_proxy_config_vars_t proxy = {
        .io_timeout = config->upstream_io_timeout_ms,
        .keepalive_timeout = config->upstream_keepalive_ms,
        .ssl_ctx = server->upstream_ssl_ctx,
    };
    h2o_proxy_register_reverse_proxy(pathconf, &server->upstream, &proxy);
    return 0;
}

int gw_server_check(const gw_config_t *config)
{
    h2o_url_t upstream;
    if (h2o_url_parse(config->upstream_url, SIZE_MAX, &upstream) != 0) {
        gw_log_error("%s: upstream.url \"%s\" cannot be parsed", config->source, config->upstream_url);
        return -1;
    }
    SSL_CTX *ctx = NULL;
    if (upstream.scheme == &H2O_URL_SCHEME_HTTPS && (ctx = create_upstream_ssl_ctx(config, &upstream)) == NULL)
        return -1;
    SSL_CTX_free(ctx);
    ctx = NULL;
    if (config->tls_cert_file != NULL && (ctx = create_listener_ssl_ctx(config)) == NULL)
        return -1;
    SSL_CTX_free(ctx);
    if (config->audit.path != NULL && strcmp(config->audit.path, "-") != 0) {
        /* the file may not exist yet: its directory must, and be writable (nothing is created by -t) */
        int fd = open(config->audit.path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd != -1) {
            close(fd);
        } else {
            char *dir = strdup(config->audit.path);
            char *slash = dir != NULL ? strrchr(dir, '/') : NULL;
            if (slash != NULL)
                *(slash == dir ? slash + 1 : slash) = '\0';
            int ok = errno == ENOENT && dir != NULL && access(slash != NULL ? dir : ".", W_OK | X_OK) == 0;
            free(dir);
            if (!ok) {
                gw_log_error("%s: the audit file cannot be written: %s", config->audit.path, strerror(errno));
                return -1;
            }
        }
    }
    return 0;
}

static void setup_admin(gw_server_t *server)
{
    h2o_config_init(&server->admin_conf);
    server->admin_conf.server_name = h2o_iovec_init(H2O_STRLIT("crmgate-admin"));
    h2o_hostconf_t *host = h2o_config_register_host(&server->admin_conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    gw_admin_register(host, server);
}

static unsigned thread_count(const gw_config_t *config)
{
    if (config->threads != 0)
        return config->threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : cores > 256 ? 256 : (unsigned)cores;
}

static void signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
}

static int same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* What a reload cannot change without new listeners or a new proxy: said, not half-applied. */
#define RESTART_MSG "reload: %s changed in the configuration; restart crmgate to apply it (still %s)"

static void warn_about_restart_only_changes(const gw_config_t *running, gw_config_t *loaded)
{
    char was[300];
    if (strcmp(running->listen.host, loaded->listen.host) != 0 || running->listen.port != loaded->listen.port) {
        snprintf(was, sizeof(was), "%s:%u", running->listen.host, running->listen.port);
        gw_log_warn(RESTART_MSG, "listen", was);
    }
    if (running->admin_enabled != loaded->admin_enabled || strcmp(running->admin.host, loaded->admin.host) != 0 ||
        running->admin.port != loaded->admin.port) {
        snprintf(was, sizeof(was), "%s:%u", running->admin.host, running->admin.port);
        gw_log_warn(RESTART_MSG, "admin", running->admin_enabled ? was : "off");
    }
    if (running->threads != loaded->threads)
        gw_log_warn(RESTART_MSG, "threads", "as at start-up");
    if (!same_string(running->upstream_url, loaded->upstream_url) ||
        running->upstream_keepalive_ms != loaded->upstream_keepalive_ms ||
        running->upstream_io_timeout_ms != loaded->upstream_io_timeout_ms ||
        !same_string(running->upstream_ca_file, loaded->upstream_ca_file) ||
        running->upstream_verify_peer != loaded->upstream_verify_peer)
        gw_log_warn(RESTART_MSG, "upstream", running->upstream_url);
    if (!same_string(running->tls_cert_file, loaded->tls_cert_file) || !same_string(running->tls_key_file, loaded->tls_key_file))
        gw_log_warn(RESTART_MSG, "tls", running->tls_cert_file != NULL ? running->tls_cert_file : "off");
    if (running->shutdown_timeout_ms != loaded->shutdown_timeout_ms)
        gw_log_warn(RESTART_MSG, "shutdown-timeout", "as at start-up");
    if (running->limits.max_body != loaded->limits.max_body) {
        /* h2o's own limit and the HTTP/2 guard are set at start-up: both protocols keep the running limit */
        snprintf(was, sizeof(was), "%zu bytes", running->limits.max_body);
        gw_log_warn(RESTART_MSG, "limits.max-body", was);
        loaded->limits.max_body = running->limits.max_body;
    }
    if (running->limits.http2_resets_per_second != loaded->limits.http2_resets_per_second ||
        running->limits.http2_pings_per_second != loaded->limits.http2_pings_per_second ||
        running->limits.http2_settings_per_second != loaded->limits.http2_settings_per_second) {
        /* each connection's frame guard takes them when it is accepted, from the start-up configuration */
        snprintf(was, sizeof(was), "resets %u, pings %u, settings %u per second", running->limits.http2_resets_per_second,
                 running->limits.http2_pings_per_second, running->limits.http2_settings_per_second);
        gw_log_warn(RESTART_MSG, "limits.http2-*-per-second", was);
    }
    if (!same_string(running->audit.path, loaded->audit.path) || running->audit.fsync != loaded->audit.fsync ||
        running->audit.fsync_interval_ms != loaded->audit.fsync_interval_ms ||
        running->audit.queue_bytes != loaded->audit.queue_bytes)
        gw_log_warn(RESTART_MSG, "audit", running->audit.path != NULL ? running->audit.path : "off");
}

/* SIGHUP: the configuration and rules compiled again and handed to every worker; a broken file changes nothing. */
static void reload(gw_server_t *server)
{
    gw_error_t err;
    gw_error_clear(&err);
    /* MONOTONIC_USEC: systemd 253+ requires it with RELOADING=1 (Type=notify-reload); older ones ignore it */
    notify_service_manager("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration and rules",
                           (unsigned long long)monotonic_usec());
    gw_config_t *config = server->load_config(server->load_config_ctx, &err);
    gw_ruleset_t *rules = NULL;
    if (config != NULL)
        rules = gw_ruleset_load((const char *const *)config->rules, config->nrules, &config->policy, &err);
    if (rules == NULL) {
        gw_log_error("reload failed, still serving rules %s: %s", gw_ruleset_digest(server->workers[0].runtime->rules),
                     err.text);
        gw_config_destroy(config);
        gw_metrics_count_reload(0);
        /* still serving, on the rules it had: ready again, and the status says the reload failed */
        notify_service_manager("READY=1\nSTATUS=reload failed, still serving rules %s (see the log)", served_digest);
        return;
    }
    warn_about_restart_only_changes(server->config, config);
    gw_ruleset_set_metric_ids(rules, gw_metrics_route_id);
    gw_log_info("reloaded: rules %s (%zu routes from %zu file(s))", gw_ruleset_digest(rules), gw_ruleset_route_count(rules),
                gw_ruleset_file_count(rules));
    gw_runtime_t *runtime = gw_runtime_new(config, rules);
    for (unsigned i = 0; i < server->nthreads; ++i) {
        runtime_message_t *message = calloc(1, sizeof(*message));
        if (message == NULL)
            gw_fatal("out of memory");
        gw_runtime_addref(runtime);
        message->runtime = runtime;
        h2o_multithread_send_message(&server->workers[i].control_receiver, &message->super);
    }
    /* every worker has its message; `rules` is still held by this function's reference */
    snprintf(served_digest, sizeof(served_digest), "%s", gw_ruleset_digest(rules));
    notify_service_manager("READY=1\nSTATUS=reloaded: serving rules %s (%zu routes)", gw_ruleset_digest(rules),
                           gw_ruleset_route_count(rules));
    gw_runtime_release(runtime);
    gw_metrics_count_reload(1);
}

/* Waits for the workers to finish; a second stop signal ends the process at once. */
static void join_workers(gw_server_t *server)
{
    for (;;) {
        unsigned running = 0;
        for (unsigned i = 0; i < server->nthreads; ++i)
            running += !atomic_load(&server->workers[i].finished);
        if (running == 0)
            break;
        sigset_t set;
        signal_set(&set);
        struct timespec tick = {0, 50 * 1000000};
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGUSR1 && server->audit != NULL)
            gw_audit_reopen(server->audit);
        if (sig == SIGTERM || sig == SIGINT) {
            long inflight = 0;
            for (unsigned i = 0; i < server->nthreads; ++i)
                inflight += atomic_load(&server->workers[i].inflight);
            /* the exit status says whether requests were cut off */
            gw_log_warn("received %s again: exiting now, with %ld request(s) in flight", strsignal(sig), inflight);
            fflush(stderr);
            _exit(inflight == 0 ? 0 : 1);
        }
    }
    /* the workers have finished and now wait, idle, for the process to exit (see worker_main) */
}

int gw_server_run(gw_config_t *config, gw_ruleset_t *rules, gw_config_loader_t load_config, void *load_config_ctx)
{
    gw_server_t *server = calloc(1, sizeof(*server));
    if (server == NULL)
        gw_fatal("out of memory");
    running_server = server;
    server->config = config;
    server->load_config = load_config;
    server->load_config_ctx = load_config_ctx;
    gw_ruleset_set_metric_ids(rules, gw_metrics_route_id);
    server->pass_through_metric_id = gw_metrics_route_id("(no route)");
    server->startup = gw_runtime_new(config, rules);
    server->nthreads = thread_count(config);

    /* signals are taken by the main thread only, with sigwait */
    sigset_t set;
    signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (setup_traffic(server) != 0)
        return 1; /* exiting: the OS reclaims the half-built server */
    if (config->audit.path != NULL) {
        gw_error_t err;
        gw_error_clear(&err);
        gw_audit_options_t options = {.path = config->audit.path, .fsync = config->audit.fsync,
                                      .fsync_interval_ms = config->audit.fsync_interval_ms,
                                      .queue_bytes = config->audit.queue_bytes};
        if ((server->audit = gw_audit_open(&options, &err)) == NULL) {
            gw_log_error("%s", err.text);
            return 1;
        }
        gw_log_info("audit trail to %s (fsync %s, %s)", strcmp(config->audit.path, "-") == 0 ? "standard output" : config->audit.path,
                    config->audit.fsync == GW_FSYNC_ALWAYS ? "always" : config->audit.fsync == GW_FSYNC_NEVER ? "never" : "interval",
                    config->audit.fail_open ? "fail-open" : "fail-closed");
    }
    gw_log_info("upstream %s; rules %s (%zu routes)", config->upstream_url, gw_ruleset_digest(rules),
                gw_ruleset_route_count(rules));
    /* the listening lines come last: whoever waits for them (tests, scripts) finds everything above logged */
    if (open_listeners(server) != 0)
        return 1;
    if (server->admin_fd != -1)
        setup_admin(server);

    server->workers = calloc(server->nthreads, sizeof(*server->workers));
    if (server->workers == NULL)
        gw_fatal("out of memory");
    for (unsigned i = 0; i < server->nthreads; ++i) {
        server->workers[i].server = server;
        server->workers[i].index = i;
        if (pthread_create(&server->workers[i].thread, NULL, worker_main, &server->workers[i]) != 0)
            gw_fatal("cannot start worker thread %u", i);
    }
    for (unsigned i = 0; i < server->nthreads; ++i)
        while (!atomic_load(&server->workers[i].ready)) /* a reload must find every receiver registered */
            sched_yield();
    snprintf(served_digest, sizeof(served_digest), "%s", gw_ruleset_digest(rules));
    notify_service_manager("READY=1\nSTATUS=serving %s://%s:%u with %u worker thread%s; rules %s (%zu routes)",
                           server->listener_ssl_ctx != NULL ? "https" : "http", config->listen.host, bound_listen_port,
                           server->nthreads, server->nthreads == 1 ? "" : "s", gw_ruleset_digest(rules),
                           gw_ruleset_route_count(rules));

    int sig;
    while (sigwait(&set, &sig) != 0 || sig == SIGHUP || sig == SIGUSR1) {
        if (sig == SIGHUP)
            reload(server);
        else if (sig == SIGUSR1 && server->audit != NULL)
            gw_audit_reopen(server->audit); /* after logrotate moved the file */
    }
    gw_log_info("received %s: no longer accepting; finishing requests in flight (a second signal exits at once)",
                strsignal(sig));
    notify_service_manager("STOPPING=1\nSTATUS=draining: finishing requests in flight (shutdown-timeout %llu ms)",
                           (unsigned long long)config->shutdown_timeout_ms);
    atomic_store(&server->stopping, 1);
    for (unsigned i = 0; i < server->nthreads; ++i)
        h2o_multithread_send_message(&server->workers[i].control_receiver, NULL);
    join_workers(server);
    if (server->audit != NULL) {
        gw_audit_close(server->audit); /* every record of every answered request, written and synced */
        server->audit = NULL;
    }
    gw_log_info("stopped");
    return 0;
}

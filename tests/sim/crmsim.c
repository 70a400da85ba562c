/*
 * crmsim - a stand-in for Oracle Fusion CRM's "interactions" REST resource,
 * used by crmgate's end-to-end tests and the quickstart demo. A single-threaded
 * h2o (evloop) HTTP/1.1 server, plain or TLS; tests/sim/README.md documents the
 * command line, the recording format, the X-Sim-* control headers and the
 * connection faults (X-Sim-Fault: reset, close-before-response, close-mid-body, hang).
 *
 * Memory ownership: everything derived from one request lives in req->pool;
 * stored items (json_t) are owned by the item store; process-wide state lives
 * in `sim` and is torn down by shut_down() so that ASan's leak checker is quiet.
 * h2o's allocators abort on out-of-memory by design; jansson, libc and file
 * system failures are checked, logged to stderr and answered with a 500.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <h2o.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define SIM_DEFAULT_LISTEN "127.0.0.1:8081"
#define SIM_FIRST_INTERACTION_ID INT64_C(300100000000001)
#define SIM_FIRST_CHILD_ID INT64_C(300100900000001) /* own range, so InteractionIds stay consecutive */
#define SIM_MAX_ITEMS 100000
#define SIM_PAGE_LIMIT 25
#define SIM_MAX_DELAY_MS 60000
#define SIM_MID_BODY_LENGTH 1000 /* close-mid-body: the announced Content-Length ... */
#define SIM_MID_BODY_SENT 100    /* ... and the bytes of it actually sent */
#define SIM_HANG_POLL_MS 100     /* hang: how often a hung connection is checked for the peer's close */
#define SIM_DRAIN_ROUNDS 40 /* x 50 ms: how long shutdown waits for open connections to close */
#define SIM_USER "CRMSIM.USER"
#define SIM_PATH_PREFIX "/crmRestApi/resources/"
#define CT_ITEM "application/vnd.oracle.adf.resourceitem+json"
#define CT_COLLECTION "application/vnd.oracle.adf.resourcecollection+json"
#define CT_ERROR "application/vnd.oracle.adf.error+json"
#define CT_TEXT "text/plain"
#define CT_HTML "text/html"
#define IOV_LIT(s) h2o_iovec_init(H2O_STRLIT(s))
#define IOV_NONE h2o_iovec_init(NULL, 0)
#define FIND_HEADER(req, lower_name) find_header((req), H2O_STRLIT(lower_name))
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

struct stored_item {
    int64_t id;
    json_t *item; /* one reference, owned by the store */
};

/* h2o timeouts have one fixed duration each: one per distinct X-Sim-Delay-Ms value. */
struct delay_timer {
    h2o_linklist_t link;
    h2o_timeout_t timeout;
};

/* Open client connections, so that shutdown can close them and free everything. */
struct tracked_conn {
    h2o_linklist_t link;
    h2o_socket_t *sock;
};

enum fault_body { FAULT_BODY_PLAIN, FAULT_BODY_HTML, FAULT_BODY_EMPTY, FAULT_BODY_ORACLE_JSON };

/* Connection faults (X-Sim-Fault, --fault); the names are in fault_mode_names. */
enum fault_mode { FAULT_NONE, FAULT_RESET, FAULT_CLOSE_BEFORE_RESPONSE, FAULT_CLOSE_MID_BODY, FAULT_HANG };

static const char *const fault_mode_names[] = {[FAULT_NONE] = "none",
                                               [FAULT_RESET] = "reset",
                                               [FAULT_CLOSE_BEFORE_RESPONSE] = "close-before-response",
                                               [FAULT_CLOSE_MID_BODY] = "close-mid-body",
                                               [FAULT_HANG] = "hang"};

struct sim_controls {
    int status; /* 0: behave normally */
    enum fault_body body;
    unsigned delay_ms;
    enum fault_mode fault; /* takes precedence over status and body */
};

/* Lives in req->pool; its dispose callback unlinks the timer entry if the request dies first. */
struct delayed_response {
    h2o_timeout_entry_t entry;
    h2o_req_t *req;
    struct sim_controls controls;
};

/* X-Sim-Fault: hang. Lives in req->pool like delayed_response; entry is linked to sim.hang_timer while it waits. */
struct hung_request {
    h2o_timeout_entry_t entry;
    h2o_req_t *req;
};

enum route_kind { ROUTE_NONE, ROUTE_COLLECTION, ROUTE_ITEM, ROUTE_CHILD_COLLECTION, ROUTE_CHILD_ITEM };

struct route {
    enum route_kind kind;
    h2o_iovec_t version, id, child_name, child_id; /* point into req->path */
};

struct options {
    const char *listen, *record_dir, *port_file, *fault, *tls_cert, *tls_key, *tls_min_version, *tls_max_version;
    enum fault_mode default_fault; /* --fault, parsed */
    int tls_min, tls_max;          /* TLS1_2_VERSION or TLS1_3_VERSION; tls_max 0: the highest OpenSSL supports */
};

struct listen_addr {
    char host[256], port[8];
    int display_host_len; /* length of the host part of --listen as written, brackets included */
};

static struct {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener, *signal_reader;
    int signal_pipe[2], stopping;
    const char *record_dir; /* NULL: do not record */
    unsigned long record_seq;
    enum fault_mode default_fault; /* --fault: for requests without an X-Sim-Fault header */
    SSL_CTX *ssl_ctx;              /* NULL: plain HTTP */
    h2o_linklist_t conns, delay_timers;
    h2o_timeout_t hang_timer; /* hung requests, re-linked every SIM_HANG_POLL_MS until the peer closes */
    struct stored_item *items; /* sorted by id, because ids only grow */
    size_t item_count, item_capacity;
    int64_t next_interaction_id, next_child_id;
    uint64_t rng_state;
} sim = {.signal_pipe = {-1, -1}};

static int signal_write_fd = -1; /* the only state the signal handler touches */

/* ---- small utilities ---- */

__attribute__((format(printf, 1, 2))) static void log_error(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fputs("crmsim: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
}

/* xorshift64*: LastUpdateLogin values only need to look random, not be secret. */
static uint64_t next_random(void)
{
    uint64_t x = sim.rng_state;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    sim.rng_state = x;
    return x * UINT64_C(2685821657736338717);
}

/* RFC 3339 with milliseconds and an explicit +00:00 offset, as Oracle Fusion writes it. */
static void format_now_rfc3339(char buf[40])
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 40 - n, ".%03ld+00:00", now.tv_nsec / 1000000);
}

/* Accepts 1..18 decimal digits (cannot overflow) with a value of at most max. */
static int parse_number(h2o_iovec_t text, int64_t max, int64_t *out)
{
    int64_t value = 0;
    if (text.len == 0 || text.len > 18)
        return 0;
    for (size_t i = 0; i != text.len; ++i) {
        if (text.base[i] < '0' || text.base[i] > '9')
            return 0;
        value = value * 10 + (text.base[i] - '0');
    }
    *out = value;
    return value <= max;
}

static h2o_iovec_t strip_query(h2o_iovec_t target)
{
    const char *q = memchr(target.base, '?', target.len);
    return q == NULL ? target : h2o_iovec_init(target.base, (size_t)(q - target.base));
}

static const h2o_iovec_t *find_header(const h2o_req_t *req, const char *lower_name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, lower_name, len, -1);
    return i == -1 ? NULL : &req->headers.entries[i].value;
}

/* Index of the name that equals text (ASCII case-insensitively), or -1. */
static int find_name(h2o_iovec_t text, const char *const *names, size_t count)
{
    for (size_t i = 0; i != count; ++i)
        if (h2o_lcstris(text.base, text.len, names[i], strlen(names[i])))
            return (int)i;
    return -1;
}

/* ---- item store: an array sorted by id; the oldest item is dropped beyond SIM_MAX_ITEMS ---- */

/* Takes over the caller's reference to item on success. */
static int store_add(int64_t id, json_t *item)
{
    if (sim.item_count == SIM_MAX_ITEMS) {
        json_decref(sim.items[0].item);
        memmove(sim.items, sim.items + 1, --sim.item_count * sizeof(sim.items[0]));
    } else if (sim.item_count == sim.item_capacity) {
        size_t capacity = sim.item_capacity == 0 ? 64 : sim.item_capacity * 2;
        struct stored_item *items = realloc(sim.items, capacity * sizeof(items[0]));
        if (items == NULL)
            return -1;
        sim.items = items, sim.item_capacity = capacity;
    }
    sim.items[sim.item_count++] = (struct stored_item){id, item};
    return 0;
}

static int store_find(int64_t id, size_t *index)
{
    size_t lo = 0, hi = sim.item_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sim.items[mid].id == id) {
            *index = mid;
            return 1;
        }
        if (sim.items[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static void store_remove(size_t index)
{
    json_decref(sim.items[index].item);
    memmove(sim.items + index, sim.items + index + 1, (--sim.item_count - index) * sizeof(sim.items[0]));
}

static void store_dispose(void)
{
    while (sim.item_count != 0)
        json_decref(sim.items[--sim.item_count].item);
    free(sim.items);
    sim.items = NULL, sim.item_capacity = 0;
}

/* ---- JSON helpers ---- */

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, surrogates or > U+10FFFF), 0 if none. */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2, cp = s[0] & 0x1Fu;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        len = 3, cp = s[0] & 0x0Fu;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0; /* a continuation byte, an overlong lead byte or one beyond U+10FFFF */
    if (avail < len)
        return 0;
    for (size_t i = 1; i != len; ++i) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/*
 * JSON string from request bytes (path, header names and values, Host).
 * jansson refuses invalid UTF-8, so valid strings are kept verbatim, and in
 * any other string each byte that does not start a well-formed UTF-8 sequence
 * (same rules as jansson) is replaced by U+FFFD. Such values are lossy by
 * design; the .body files are always byte-exact.
 */
static json_t *json_from_bytes(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    json_t *str = json_stringn(s != NULL ? s : "", len);
    if (str != NULL)
        return str;
    char *clean = h2o_mem_alloc_pool(pool, len * 3 + 1);
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence_length((const unsigned char *)s + i, len - i);
        if (n == 0) {
            memcpy(clean + out, "\xEF\xBF\xBD", 3);
            out += 3, i += 1;
        } else {
            memcpy(clean + out, s + i, n);
            out += n, i += n;
        }
    }
    return json_stringn(clean, out);
}

/* Compact serialization into pool memory; {NULL, 0} on failure. */
static h2o_iovec_t json_to_pool(h2o_mem_pool_t *pool, const json_t *json, int add_newline)
{
    size_t len = json_dumpb(json, NULL, 0, JSON_COMPACT);
    if (len == 0)
        return IOV_NONE;
    char *buf = h2o_mem_alloc_pool(pool, len + 1);
    if (json_dumpb(json, buf, len, JSON_COMPACT) != len)
        return IOV_NONE;
    if (add_newline)
        buf[len++] = '\n';
    return h2o_iovec_init(buf, len);
}

/* ---- recording ---- */

/* Writes PATH.tmp and renames it over PATH, so a reader sees either no file or the whole file. */
static int write_file_atomically(const char *path, const char *data, size_t len)
{
    char tmp[PATH_MAX];
    int fd, failed = 0;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        log_error("path too long: %s", path);
        return -1;
    }
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        log_error("cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    while (!failed && len != 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno != EINTR)
            failed = 1;
        else if (n > 0)
            data += n, len -= (size_t)n;
    }
    failed |= close(fd) != 0;
    if (failed || rename(tmp, path) != 0) {
        log_error("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* {"seq","method","path","headers":[[name,value],...],"body_length"}, keys in this order. */
static json_t *build_record(h2o_req_t *req, unsigned long seq)
{
    json_t *record = json_object(), *headers = json_array();
    int failed = 0;
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = req->headers.entries + i;
        json_t *pair = json_array();
        failed |= json_array_append_new(pair, json_from_bytes(&req->pool, h->name->base, h->name->len));
        failed |= json_array_append_new(pair, json_from_bytes(&req->pool, h->value.base, h->value.len));
        failed |= json_array_append_new(headers, pair);
    }
    failed |= json_object_set_new(record, "seq", json_integer((json_int_t)seq));
    failed |= json_object_set_new(record, "method", json_from_bytes(&req->pool, req->method.base, req->method.len));
    failed |= json_object_set_new(record, "path", json_from_bytes(&req->pool, req->path.base, req->path.len));
    failed |= json_object_set_new(record, "headers", headers);
    failed |= json_object_set_new(record, "body_length", json_integer((json_int_t)req->entity.len));
    if (failed) {
        json_decref(record);
        return NULL;
    }
    return record;
}

/* The body first, then the .json: the .json appearing means the request is fully recorded. */
static int record_request(h2o_req_t *req)
{
    char path[PATH_MAX]; /* the directory's length is checked at startup */
    if (sim.record_dir == NULL)
        return 0;
    unsigned long seq = ++sim.record_seq;
    snprintf(path, sizeof(path), "%s/%06lu.body", sim.record_dir, seq);
    if (write_file_atomically(path, req->entity.base, req->entity.len) != 0)
        return -1;
    json_t *record = build_record(req, seq);
    h2o_iovec_t text = record != NULL ? json_to_pool(&req->pool, record, 1) : IOV_NONE;
    json_decref(record);
    if (text.base == NULL) {
        log_error("cannot build the record of request %06lu", seq);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%06lu.json", sim.record_dir, seq);
    return write_file_atomically(path, text.base, text.len);
}

/* ---- responses ---- */

static const char *status_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {{200, "OK"}, {201, "Created"}, {202, "Accepted"}, {204, "No Content"}, {304, "Not Modified"},
                   {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"},
                   {405, "Method Not Allowed"}, {408, "Request Timeout"}, {409, "Conflict"}, {412, "Precondition Failed"},
                   {413, "Payload Too Large"}, {415, "Unsupported Media Type"}, {429, "Too Many Requests"},
                   {500, "Internal Server Error"}, {501, "Not Implemented"}, {502, "Bad Gateway"},
                   {503, "Service Unavailable"}, {504, "Gateway Timeout"}};
    for (size_t i = 0; i != COUNT_OF(reasons); ++i)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return status < 300 ? "Success" : status < 400 ? "Redirection" : status < 500 ? "Client Error" : "Server Error";
}

/*
 * The status line and headers of every response: echoes X-Request-Id and
 * always sets Content-Length, because h2o would otherwise close the keep-alive
 * connection after a non-200 answer (204 and 304 carry neither a body nor a
 * Content-Length nor a Content-Type).
 */
static void set_response_head(h2o_req_t *req, int status, const char *content_type, size_t content_length)
{
    const h2o_iovec_t *request_id = FIND_HEADER(req, "x-request-id");
    req->res.status = status;
    req->res.reason = status_reason(status);
    if (request_id != NULL)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, request_id->base,
                              request_id->len);
    if (status != 204 && status != 304) {
        req->res.content_length = content_length;
        if (content_type != NULL)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    }
}

/* Every complete response goes through here. body must outlive the request: a literal or req->pool memory. */
static void send_response(h2o_req_t *req, int status, const char *content_type, h2o_iovec_t body)
{
    static h2o_generator_t generator = {NULL, NULL};
    if (status == 204 || status == 304)
        body = IOV_NONE;
    set_response_head(req, status, content_type, body.len);
    h2o_start_response(req, &generator);
    if (body.len == 0 || h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

__attribute__((format(printf, 3, 4))) static void send_text(h2o_req_t *req, int status, const char *fmt, ...)
{
    enum { MAX_TEXT = 1024 };
    char *buf = h2o_mem_alloc_pool(&req->pool, MAX_TEXT);
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(buf, MAX_TEXT, fmt, args);
    va_end(args);
    send_response(req, status, CT_TEXT, h2o_iovec_init(buf, n < 0 ? 0 : n >= MAX_TEXT ? MAX_TEXT - 1 : (size_t)n));
}

static void send_internal_error(h2o_req_t *req, const char *what)
{
    log_error("%s", what);
    send_text(req, 500, "crmsim: %s\n", what);
}

static void send_json(h2o_req_t *req, int status, const char *content_type, const json_t *json)
{
    h2o_iovec_t body = json != NULL ? json_to_pool(&req->pool, json, 0) : IOV_NONE;
    if (body.base == NULL)
        send_internal_error(req, "cannot build the response body");
    else
        send_response(req, status, content_type, body);
}

/* ---- simulated error answers (X-Sim-Status, X-Sim-Body) ---- */

static void send_fault_html(h2o_req_t *req, int status)
{
    const char *reason = status_reason(status);
    char *page = h2o_mem_alloc_pool(&req->pool, 512);
    int len = snprintf(page, 512,
                       "<html><head><title>%d %s</title></head><body><h1>%d %s</h1>"
                       "<p>crmsim: simulated error page</p></body></html>\n",
                       status, reason, status, reason);
    send_response(req, status, CT_HTML, h2o_iovec_init(page, (size_t)len));
}

static void send_fault_oracle_json(h2o_req_t *req, int status)
{
    char status_text[8];
    snprintf(status_text, sizeof(status_text), "%d", status);
    json_t *error = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "title", status_reason(status), "status", status_text,
                              "o:errorDetails", "detail", "simulated", "o:errorCode", "SIM-0001");
    send_json(req, status, CT_ERROR, error);
    json_decref(error);
}

static void send_fault(h2o_req_t *req, const struct sim_controls *controls)
{
    switch (controls->body) {
    case FAULT_BODY_EMPTY:
        send_response(req, controls->status, NULL, IOV_NONE);
        break;
    case FAULT_BODY_HTML:
        send_fault_html(req, controls->status);
        break;
    case FAULT_BODY_ORACLE_JSON:
        send_fault_oracle_json(req, controls->status);
        break;
    case FAULT_BODY_PLAIN:
        send_text(req, controls->status, "crmsim: simulated %d %s\n", controls->status, status_reason(controls->status));
        break;
    }
}

/* Returns NULL on success, else a message naming the offending header. */
static const char *parse_controls(const h2o_req_t *req, struct sim_controls *controls)
{
    static const char *const body_names[] = {[FAULT_BODY_PLAIN] = "plain", [FAULT_BODY_HTML] = "html",
                                             [FAULT_BODY_EMPTY] = "empty", [FAULT_BODY_ORACLE_JSON] = "oracle-json"};
    const h2o_iovec_t *value;
    int64_t n;
    int index;
    *controls = (struct sim_controls){0, FAULT_BODY_PLAIN, 0, sim.default_fault};
    if ((value = FIND_HEADER(req, "x-sim-status")) != NULL) {
        if (!parse_number(*value, 599, &n) || n < 200)
            return "X-Sim-Status must be a status code from 200 to 599";
        controls->status = (int)n;
    }
    if ((value = FIND_HEADER(req, "x-sim-body")) != NULL) {
        if ((index = find_name(*value, body_names, COUNT_OF(body_names))) < 0)
            return "X-Sim-Body must be one of html, empty, plain, oracle-json";
        controls->body = (enum fault_body)index;
    }
    if ((value = FIND_HEADER(req, "x-sim-delay-ms")) != NULL) {
        if (!parse_number(*value, SIM_MAX_DELAY_MS, &n))
            return "X-Sim-Delay-Ms must be a number of milliseconds from 0 to 60000";
        controls->delay_ms = (unsigned)n;
    }
    if ((value = FIND_HEADER(req, "x-sim-fault")) != NULL) {
        if ((index = find_name(*value, fault_mode_names, COUNT_OF(fault_mode_names))) < 0)
            return "X-Sim-Fault must be one of none, reset, close-before-response, close-mid-body, hang";
        controls->fault = (enum fault_mode)index;
    }
    return NULL;
}

/* ---- the interactions resource ---- */

/* VERSION/interactions[/ID[/child/NAME[/CHILD_ID]]] below SIM_PATH_PREFIX; the query string is ignored. */
static struct route parse_route(h2o_iovec_t target)
{
    static const enum route_kind kind_by_count[] = {ROUTE_NONE, ROUTE_NONE,             ROUTE_COLLECTION, ROUTE_ITEM,
                                                    ROUTE_NONE, ROUTE_CHILD_COLLECTION, ROUTE_CHILD_ITEM};
    struct route route = {.kind = ROUTE_NONE};
    h2o_iovec_t path = strip_query(target), seg[COUNT_OF(kind_by_count) - 1];
    size_t n = 0, prefix_len = sizeof(SIM_PATH_PREFIX) - 1;
    if (path.len < prefix_len || memcmp(path.base, SIM_PATH_PREFIX, prefix_len) != 0)
        return route;
    for (const char *p = path.base + prefix_len, *end = path.base + path.len, *slash;; p = slash + 1) {
        const char *seg_end = (slash = memchr(p, '/', (size_t)(end - p))) != NULL ? slash : end;
        if (seg_end == p || n == COUNT_OF(seg))
            return route; /* empty segment or too deep */
        seg[n++] = h2o_iovec_init(p, (size_t)(seg_end - p));
        if (slash == NULL)
            break;
    }
    if (n < 2 || !h2o_memis(seg[1].base, seg[1].len, H2O_STRLIT("interactions")) ||
        (n >= 5 && !h2o_memis(seg[3].base, seg[3].len, H2O_STRLIT("child"))))
        return route;
    route.kind = kind_by_count[n];
    route.version = seg[0];
    route.id = n >= 3 ? seg[2] : IOV_NONE;
    route.child_name = n >= 5 ? seg[4] : IOV_NONE;
    route.child_id = n >= 6 ? seg[5] : IOV_NONE;
    return route;
}

/* http(s)://HOST/crmRestApi/resources/VERSION/interactions, in req->pool; https when serving TLS. */
static h2o_iovec_t collection_href(h2o_req_t *req, const struct route *route)
{
    h2o_iovec_t scheme = sim.ssl_ctx != NULL ? IOV_LIT("https://") : IOV_LIT("http://");
    return h2o_concat(&req->pool, scheme, req->authority, IOV_LIT(SIM_PATH_PREFIX), route->version,
                      IOV_LIT("/interactions"));
}

static json_t *make_link(h2o_mem_pool_t *pool, const char *rel, h2o_iovec_t href, h2o_iovec_t name, const char *kind)
{
    json_t *link = json_object();
    int failed = json_object_set_new(link, "rel", json_string(rel));
    failed |= json_object_set_new(link, "href", json_from_bytes(pool, href.base, href.len));
    failed |= json_object_set_new(link, "name", json_from_bytes(pool, name.base, name.len));
    failed |= json_object_set_new(link, "kind", json_string(kind));
    if (failed) {
        json_decref(link);
        return NULL;
    }
    return link;
}

/* Oracle gives every item a "self" and a "canonical" link with the same href. */
static int set_item_links(h2o_mem_pool_t *pool, json_t *item, h2o_iovec_t href, h2o_iovec_t name)
{
    json_t *links = json_array();
    int failed = json_array_append_new(links, make_link(pool, "self", href, name, "item"));
    failed |= json_array_append_new(links, make_link(pool, "canonical", href, name, "item"));
    if (failed) {
        json_decref(links);
        return -1;
    }
    return json_object_set_new(item, "links", links);
}

static int stamp_update(json_t *item, const char *now)
{
    char login[33];
    snprintf(login, sizeof(login), "%016" PRIX64 "%016" PRIX64, next_random(), next_random());
    int failed = json_object_set_new(item, "LastUpdateDate", json_string(now));
    failed |= json_object_set_new(item, "LastUpdatedBy", json_string(SIM_USER));
    failed |= json_object_set_new(item, "LastUpdateLogin", json_string(login));
    return failed;
}

/* Answers 400 itself and returns NULL unless the body is a JSON object; the caller owns the result. */
static json_t *load_body_object_or_reject(h2o_req_t *req)
{
    json_error_t error;
    json_t *body;
    if (req->entity.len == 0) {
        send_text(req, 400, "Invalid request payload: the request body is empty; a JSON object is required.\n");
        return NULL;
    }
    if ((body = json_loadb(req->entity.base, req->entity.len, JSON_DECODE_ANY, &error)) == NULL) {
        send_text(req, 400, "Invalid request payload: %s (line %d, column %d).\n", error.text, error.line, error.column);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        send_text(req, 400, "Invalid request payload: a JSON object is required.\n");
        return NULL;
    }
    return body;
}

/* Looks {id} up; answers 404 itself (also for ids that are not numbers) and returns NULL if unknown. */
static json_t *find_item_or_reject(h2o_req_t *req, const struct route *route, size_t *index)
{
    int64_t id;
    if (parse_number(route->id, INT64_MAX, &id) && store_find(id, index))
        return sim.items[*index].item;
    send_text(req, 404, "The interaction %.*s was not found.\n", (int)route->id.len, route->id.base);
    return NULL;
}

static void create_interaction(h2o_req_t *req, const struct route *route)
{
    json_t *item = load_body_object_or_reject(req);
    if (item == NULL)
        return;
    int64_t id = sim.next_interaction_id++;
    char id_text[24], now[40];
    int id_len = snprintf(id_text, sizeof(id_text), "%" PRId64, id);
    h2o_iovec_t href =
        h2o_concat(&req->pool, collection_href(req, route), IOV_LIT("/"), h2o_iovec_init(id_text, (size_t)id_len));
    format_now_rfc3339(now);
    int failed = json_object_set_new(item, "InteractionId", json_integer(id));
    failed |= json_object_set_new(item, "CreatedBy", json_string(SIM_USER));
    failed |= json_object_set_new(item, "CreationDate", json_string(now));
    failed |= stamp_update(item, now);
    failed |= set_item_links(&req->pool, item, href, IOV_LIT("interactions"));
    if (failed || store_add(id, item) != 0) {
        json_decref(item);
        send_internal_error(req, "cannot create the interaction");
        return;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, href.base, href.len);
    send_json(req, 201, CT_ITEM, item); /* the store owns item now */
}

static void list_interactions(h2o_req_t *req, const struct route *route)
{
    size_t count = sim.item_count < SIM_PAGE_LIMIT ? sim.item_count : SIM_PAGE_LIMIT;
    json_t *collection = json_object(), *items = json_array(), *links = json_array();
    int failed = 0;
    for (size_t i = 0; i != count; ++i)
        failed |= json_array_append(items, sim.items[i].item);
    failed |= json_array_append_new(
        links, make_link(&req->pool, "self", collection_href(req, route), IOV_LIT("interactions"), "collection"));
    failed |= json_object_set_new(collection, "items", items);
    failed |= json_object_set_new(collection, "count", json_integer((json_int_t)count));
    failed |= json_object_set_new(collection, "hasMore", json_boolean(sim.item_count > count));
    failed |= json_object_set_new(collection, "limit", json_integer(SIM_PAGE_LIMIT));
    failed |= json_object_set_new(collection, "offset", json_integer(0));
    failed |= json_object_set_new(collection, "links", links);
    send_json(req, 200, CT_COLLECTION, failed ? NULL : collection);
    json_decref(collection);
}

static void get_interaction(h2o_req_t *req, const struct route *route)
{
    size_t index;
    json_t *item = find_item_or_reject(req, route, &index);
    if (item != NULL)
        send_json(req, 200, CT_ITEM, item);
}

/* Server-maintained fields are read-only, as in Oracle; a PATCH silently keeps them. */
static int is_server_field(const char *key)
{
    static const char *const fields[] = {"InteractionId", "CreatedBy", "CreationDate", "links"};
    for (size_t i = 0; i != COUNT_OF(fields); ++i)
        if (strcmp(key, fields[i]) == 0)
            return 1;
    return 0;
}

static void update_interaction(h2o_req_t *req, const struct route *route)
{
    size_t index;
    const char *key;
    json_t *item = find_item_or_reject(req, route, &index), *patch, *value;
    char now[40];
    int failed = 0;
    if (item == NULL || (patch = load_body_object_or_reject(req)) == NULL)
        return;
    json_object_foreach(patch, key, value)
    {
        if (!is_server_field(key))
            failed |= json_object_set(item, key, value);
    }
    json_decref(patch);
    format_now_rfc3339(now);
    failed |= stamp_update(item, now);
    send_json(req, 200, CT_ITEM, failed ? NULL : item);
}

static void delete_interaction(h2o_req_t *req, const struct route *route)
{
    size_t index;
    if (find_item_or_reject(req, route, &index) == NULL)
        return;
    store_remove(index);
    send_response(req, 204, NULL, IOV_NONE);
}

/* Children are not stored: the body is echoed with links whose self href ends in child_id. */
static void echo_child(h2o_req_t *req, const struct route *route, int status, h2o_iovec_t child_id)
{
    json_t *child = load_body_object_or_reject(req);
    if (child == NULL)
        return;
    h2o_iovec_t href = h2o_concat(&req->pool, collection_href(req, route), IOV_LIT("/"), route->id, IOV_LIT("/child/"),
                                  route->child_name, IOV_LIT("/"), child_id);
    int failed = set_item_links(&req->pool, child, href, route->child_name);
    if (status == 201 && !failed)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, href.base, href.len);
    send_json(req, status, CT_ITEM, failed ? NULL : child);
    json_decref(child);
}

static void create_child(h2o_req_t *req, const struct route *route)
{
    char *id_text = h2o_mem_alloc_pool(&req->pool, 24);
    int len = snprintf(id_text, 24, "%" PRId64, sim.next_child_id++);
    echo_child(req, route, 201, h2o_iovec_init(id_text, (size_t)len));
}

static void handle_crm_request(h2o_req_t *req)
{
    struct route route = parse_route(req->path);
    h2o_iovec_t m = req->method;
#define IS_METHOD(name) h2o_memis(m.base, m.len, H2O_STRLIT(name))
    if (route.kind == ROUTE_COLLECTION && IS_METHOD("POST"))
        create_interaction(req, &route);
    else if (route.kind == ROUTE_COLLECTION && IS_METHOD("GET"))
        list_interactions(req, &route);
    else if (route.kind == ROUTE_ITEM && IS_METHOD("GET"))
        get_interaction(req, &route);
    else if (route.kind == ROUTE_ITEM && IS_METHOD("PATCH"))
        update_interaction(req, &route);
    else if (route.kind == ROUTE_ITEM && IS_METHOD("DELETE"))
        delete_interaction(req, &route);
    else if (route.kind == ROUTE_CHILD_COLLECTION && IS_METHOD("POST"))
        create_child(req, &route);
    else if (route.kind == ROUTE_CHILD_ITEM && IS_METHOD("PATCH"))
        echo_child(req, &route, 200, route.child_id);
    else
        send_text(req, 404, "The requested resource %.*s was not found.\n", (int)req->path.len, req->path.base);
#undef IS_METHOD
}

/*
 * ---- connection faults (X-Sim-Fault, --fault) ----
 *
 * h2o owns the connection's socket and its descriptor, and its HTTP/1 code has
 * no call to drop a connection without writing a response. So reset and
 * close-before-response act on the TCP connection underneath h2o (the
 * descriptor stays open and stays h2o's), and then finish the request with an
 * empty response whose write fails: h2o closes such a connection the same way
 * as after any write error. Nothing of that response reaches the client.
 */

/* The descriptor of the request's connection (h2o's; never close it), or -1. */
static int connection_fd(h2o_req_t *req)
{
    h2o_socket_t *(*get_socket)(h2o_conn_t *) = req->conn->callbacks->get_socket;
    h2o_socket_t *sock = get_socket != NULL ? get_socket(req->conn) : NULL;
    return sock != NULL ? h2o_socket_get_fd(sock) : -1;
}

/* For a connection that can no longer carry data: the write fails and h2o closes the connection (no keep-alive). */
static void finish_on_dead_connection(h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    req->http1_is_persistent = 0;
    set_response_head(req, 503, NULL, 0);
    h2o_start_response(req, &generator);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}

/*
 * reset: connect() to AF_UNSPEC makes Linux abort the TCP connection at once
 * (tcp_disconnect: an RST, no FIN); the socket stays open and unconnected,
 * so h2o's descriptor and its epoll registration stay valid. (SO_LINGER {1, 0}
 * plus dup2() of /dev/null over the descriptor would also send the RST, but
 * h2o's next epoll_ctl() on that descriptor fails with EPERM and can stop
 * the event loop.)
 */
static void fault_reset(h2o_req_t *req)
{
    struct sockaddr_storage unspec = {.ss_family = AF_UNSPEC};
    int fd = connection_fd(req);
    if (fd == -1 || connect(fd, (struct sockaddr *)&unspec, sizeof(unspec)) != 0) {
        log_error("X-Sim-Fault: reset: cannot reset the connection: %s", fd == -1 ? "no socket" : strerror(errno));
        send_internal_error(req, "X-Sim-Fault: reset failed");
        return;
    }
    finish_on_dead_connection(req);
}

/* close-before-response: shutdown(SHUT_WR) sends the FIN; h2o's later close() sends nothing more. */
static void fault_close_before_response(h2o_req_t *req)
{
    int fd = connection_fd(req);
    if (fd == -1 || (shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN)) { /* ENOTCONN: the connection is gone already */
        log_error("X-Sim-Fault: cannot close the connection: %s", fd == -1 ? "no socket" : strerror(errno));
        send_internal_error(req, "X-Sim-Fault: close failed");
        return;
    }
    finish_on_dead_connection(req);
}

/*
 * close-mid-body: announces SIM_MID_BODY_LENGTH bytes and sends the first
 * SIM_MID_BODY_SENT of them with H2O_SEND_STATE_ERROR; h2o's HTTP/1 code then
 * writes them and closes the connection like a non-keep-alive one (FIN; over
 * TLS a close_notify first).
 */
static void fault_close_mid_body(h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    static const char prefix[] = "{\"crmsim\":\"close-mid-body\",\"padding\":\"";
    int is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    char *body = h2o_mem_alloc_pool(&req->pool, SIM_MID_BODY_LENGTH);
    memcpy(body, prefix, sizeof(prefix) - 1);
    memset(body + sizeof(prefix) - 1, 'x', SIM_MID_BODY_LENGTH - (sizeof(prefix) - 1) - 2);
    memcpy(body + SIM_MID_BODY_LENGTH - 2, "\"}", 2);
    h2o_iovec_t sent = h2o_iovec_init(body, is_head ? 0 : SIM_MID_BODY_SENT);
    set_response_head(req, is_post ? 201 : 200, CT_ITEM, SIM_MID_BODY_LENGTH);
    h2o_start_response(req, &generator);
    h2o_send(req, &sent, sent.len != 0 ? 1 : 0, H2O_SEND_STATE_ERROR);
}

/* 1 when the peer has closed or reset the connection (POLLRDHUP: its FIN arrived, even with unread data before it). */
static int peer_has_closed(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};
    return fd == -1 || (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0);
}

/* Ends a hang without a response: the connection is closed (FIN) as in close-before-response. */
static void end_hang(struct hung_request *hung)
{
    h2o_timeout_unlink(&hung->entry);
    fault_close_before_response(hung->req);
}

/* h2o does not read from a connection while its request is being handled, so the peer's close is polled for. */
static void on_hang_tick(h2o_timeout_entry_t *entry)
{
    struct hung_request *hung = H2O_STRUCT_FROM_MEMBER(struct hung_request, entry, entry);
    if (sim.stopping || peer_has_closed(connection_fd(hung->req)))
        end_hang(hung);
    else
        h2o_timeout_link(sim.ctx.loop, &sim.hang_timer, &hung->entry);
}

static void on_hung_request_disposed(void *p)
{
    struct hung_request *hung = p;
    h2o_timeout_unlink(&hung->entry); /* no-op unless the request died while hanging */
}

/* hang: never answers; the connection is closed (FIN, no response) once the peer has closed it or crmsim stops. */
static void fault_hang(h2o_req_t *req)
{
    if (sim.stopping) {
        fault_close_before_response(req);
        return;
    }
    struct hung_request *hung = h2o_mem_alloc_shared(&req->pool, sizeof(*hung), on_hung_request_disposed);
    *hung = (struct hung_request){.entry = {.cb = on_hang_tick}, .req = req};
    h2o_timeout_link(sim.ctx.loop, &sim.hang_timer, &hung->entry);
}

/* Shutdown: every hung connection is closed without a response. */
static void end_all_hangs(void)
{
    h2o_linklist_t *entries = &sim.hang_timer._entries; /* h2o has no iterator for this either */
    while (!h2o_linklist_is_empty(entries))
        end_hang(H2O_STRUCT_FROM_MEMBER(struct hung_request, entry._link, entries->next));
}

static void apply_fault(h2o_req_t *req, enum fault_mode fault)
{
    switch (fault) {
    case FAULT_RESET:
        fault_reset(req);
        break;
    case FAULT_CLOSE_BEFORE_RESPONSE:
        fault_close_before_response(req);
        break;
    case FAULT_CLOSE_MID_BODY:
        fault_close_mid_body(req);
        break;
    case FAULT_HANG:
        fault_hang(req);
        break;
    case FAULT_NONE:
        break;
    }
}

/* ---- request entry point and delayed responses ---- */

static void respond(h2o_req_t *req, const struct sim_controls *controls)
{
    if (controls->fault != FAULT_NONE)
        apply_fault(req, controls->fault);
    else if (controls->status != 0)
        send_fault(req, controls);
    else
        handle_crm_request(req);
}

static void on_delay_expired(h2o_timeout_entry_t *entry)
{
    struct delayed_response *delayed = H2O_STRUCT_FROM_MEMBER(struct delayed_response, entry, entry);
    respond(delayed->req, &delayed->controls);
}

static void on_delayed_response_disposed(void *p)
{
    struct delayed_response *delayed = p;
    h2o_timeout_unlink(&delayed->entry); /* no-op unless the request died while waiting */
}

static h2o_timeout_t *delay_timer_for(unsigned ms)
{
    for (h2o_linklist_t *node = sim.delay_timers.next; node != &sim.delay_timers; node = node->next) {
        struct delay_timer *timer = H2O_STRUCT_FROM_MEMBER(struct delay_timer, link, node);
        if (timer->timeout.timeout == ms)
            return &timer->timeout;
    }
    struct delay_timer *timer = calloc(1, sizeof(*timer));
    if (timer == NULL)
        return NULL;
    h2o_timeout_init(sim.ctx.loop, &timer->timeout, ms);
    h2o_linklist_insert(&sim.delay_timers, &timer->link);
    return &timer->timeout;
}

/* The loop keeps serving other connections meanwhile; the response is computed when the delay expires. */
static void respond_later(h2o_req_t *req, const struct sim_controls *controls)
{
    h2o_timeout_t *timer = sim.stopping ? NULL : delay_timer_for(controls->delay_ms);
    if (timer == NULL) { /* shutting down (nothing may wait any more) or out of memory */
        if (sim.stopping)
            respond(req, controls);
        else
            send_internal_error(req, "cannot allocate a delay timer");
        return;
    }
    struct delayed_response *delayed = h2o_mem_alloc_shared(&req->pool, sizeof(*delayed), on_delayed_response_disposed);
    *delayed = (struct delayed_response){.entry = {.cb = on_delay_expired}, .req = req, .controls = *controls};
    h2o_timeout_link(sim.ctx.loop, timer, &delayed->entry);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct sim_controls controls;
    const char *bad_control;
    h2o_iovec_t path = strip_query(req->path);
    (void)self;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        h2o_memis(path.base, path.len, H2O_STRLIT("/__sim/health")))
        send_response(req, 200, CT_TEXT, IOV_LIT("ok\n")); /* not recorded */
    else if (record_request(req) != 0)
        send_internal_error(req, "cannot record the request");
    else if ((bad_control = parse_controls(req, &controls)) != NULL)
        send_text(req, 400, "crmsim: %s\n", bad_control);
    else if (controls.delay_ms != 0)
        respond_later(req, &controls);
    else
        respond(req, &controls);
    return 0;
}

/* ---- connections and signals ---- */

static void on_conn_closed(void *data)
{
    struct tracked_conn *conn = data;
    h2o_linklist_unlink(&conn->link);
    free(conn);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;
    for (int i = 0; err == NULL && i != 16 && (sock = h2o_evloop_socket_accept(listener)) != NULL; ++i) {
        struct tracked_conn *conn = calloc(1, sizeof(*conn));
        if (conn == NULL) {
            log_error("out of memory; dropping a connection");
            h2o_socket_close(sock);
            continue;
        }
        conn->sock = sock;
        h2o_linklist_insert(&sim.conns, &conn->link);
        sock->on_close.cb = on_conn_closed;
        sock->on_close.data = conn;
        h2o_accept(&sim.accept_ctx, sock);
    }
}

/* Self-pipe: the handler only writes a byte; the loop reads it and stops. */
static void on_signal(int signo)
{
    int saved_errno = errno;
    unsigned char byte = (unsigned char)signo;
    ssize_t ignored = write(signal_write_fd, &byte, 1);
    (void)ignored;
    errno = saved_errno;
}

static void on_signal_pipe_readable(h2o_socket_t *sock, const char *err)
{
    (void)err;
    h2o_buffer_consume(&sock->input, sock->input->size);
    sim.stopping = 1;
}

static int install_signal_handlers(void)
{
    struct sigaction action = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    if (pipe2(sim.signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        log_error("pipe: %s", strerror(errno));
        return -1;
    }
    signal_write_fd = sim.signal_pipe[1];
    sim.signal_reader = h2o_evloop_socket_create(sim.ctx.loop, sim.signal_pipe[0], 0);
    h2o_socket_read_start(sim.signal_reader, on_signal_pipe_readable);
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) {
        log_error("sigaction: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- startup ---- */

/* HOST:PORT or [IPV6]:PORT; PORT 0 asks for an ephemeral port. */
static int parse_listen(const char *spec, struct listen_addr *addr)
{
    const char *colon = strrchr(spec, ':'), *host = spec;
    int64_t port;
    if (colon == NULL || colon == spec || !parse_number(h2o_iovec_init(colon + 1, strlen(colon + 1)), 65535, &port))
        return -1;
    size_t host_len = (size_t)(colon - spec);
    addr->display_host_len = (int)host_len;
    if (host[0] == '[') {
        if (host_len < 3 || host[host_len - 1] != ']')
            return -1;
        host += 1, host_len -= 2;
    }
    if (host_len >= sizeof(addr->host))
        return -1;
    memcpy(addr->host, host, host_len);
    addr->host[host_len] = '\0';
    snprintf(addr->port, sizeof(addr->port), "%d", (int)port);
    return 0;
}

static int open_listening_socket(const struct listen_addr *addr)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *results;
    int fd = -1, on = 1, last_errno = 0, rc = getaddrinfo(addr->host, addr->port, &hints, &results);
    if (rc != 0) {
        log_error("cannot resolve %s: %s", addr->host, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = results; ai != NULL && fd == -1; ai = ai->ai_next) { /* first address that works */
        if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) == -1) {
            last_errno = errno;
        } else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
                   bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(results);
    if (fd == -1)
        log_error("cannot listen on %s:%s: %s", addr->host, addr->port, strerror(last_errno));
    return fd;
}

static unsigned bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
}

/* The reason of OpenSSL's oldest queued error (the root cause, e.g. "no start line"); clears the queue. */
static const char *openssl_reason(void)
{
    unsigned long e = ERR_get_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : "no details from OpenSSL";
#ifdef ERR_SYSTEM_ERROR
    if (e != 0 && ERR_SYSTEM_ERROR(e)) /* OpenSSL 3 keeps errno as the reason of a system error */
        reason = strerror(ERR_GET_REASON(e));
#endif
    ERR_clear_error();
    return reason != NULL ? reason : "unknown OpenSSL error";
}

/* --tls-cert/--tls-key: an HTTP/1.1-only server context (ALPN offers nothing else), TLS 1.2 and 1.3 by default. */
static SSL_CTX *create_tls_context(const struct options *opts)
{
    static const h2o_iovec_t alpn[] = {{H2O_STRLIT("http/1.1")}, {NULL, 0}};
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        log_error("cannot create the TLS context: %s", openssl_reason());
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_min_proto_version(ctx, opts->tls_min) != 1 || SSL_CTX_set_max_proto_version(ctx, opts->tls_max) != 1)
        log_error("cannot restrict the TLS versions: %s", openssl_reason());
    else if (SSL_CTX_use_certificate_chain_file(ctx, opts->tls_cert) != 1)
        log_error("cannot load --tls-cert %s: %s (expected a PEM certificate chain)", opts->tls_cert, openssl_reason());
    else if (SSL_CTX_use_PrivateKey_file(ctx, opts->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        log_error("cannot load --tls-key %s: %s (expected the PEM private key of --tls-cert %s)", opts->tls_key,
                  openssl_reason(), opts->tls_cert);
    else {
        h2o_ssl_register_alpn_protocols(ctx, alpn);
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

static int start_serving(const struct options *opts)
{
    struct listen_addr addr;
    char port_text[16];
    if (opts->tls_cert != NULL && (sim.ssl_ctx = sim.accept_ctx.ssl_ctx = create_tls_context(opts)) == NULL)
        return -1;
    int fd = parse_listen(opts->listen, &addr) == 0 ? open_listening_socket(&addr) : -1;
    if (fd == -1)
        return -1;
    unsigned port = bound_port(fd);
    sim.listener = h2o_evloop_socket_create(sim.ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(sim.listener, on_accept);
    if (install_signal_handlers() != 0)
        return -1;
    fprintf(stderr, "crmsim: listening on %.*s:%u%s\n", addr.display_host_len, opts->listen, port,
            sim.ssl_ctx != NULL ? " (tls)" : "");
    fflush(stderr);
    int len = snprintf(port_text, sizeof(port_text), "%u\n", port);
    return opts->port_file == NULL ? 0 : write_file_atomically(opts->port_file, port_text, (size_t)len);
}

static void init_server(const struct options *opts)
{
    h2o_config_init(&sim.config);
    sim.config.server_name = IOV_LIT("crmsim");
    h2o_hostconf_t *hostconf = h2o_config_register_host(&sim.config, IOV_LIT("default"), 65535);
    h2o_create_handler(h2o_config_register_path(hostconf, "/", 0), sizeof(h2o_handler_t))->on_req = on_req;
    h2o_context_init(&sim.ctx, h2o_evloop_create(), &sim.config);
    sim.accept_ctx.ctx = &sim.ctx;
    sim.accept_ctx.hosts = sim.config.hosts;
    h2o_linklist_init_anchor(&sim.conns);
    h2o_linklist_init_anchor(&sim.delay_timers);
    h2o_timeout_init(sim.ctx.loop, &sim.hang_timer, SIM_HANG_POLL_MS);
    sim.record_dir = opts->record_dir;
    sim.default_fault = opts->default_fault;
    sim.next_interaction_id = SIM_FIRST_INTERACTION_ID;
    sim.next_child_id = SIM_FIRST_CHILD_ID;
    sim.rng_state = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ UINT64_C(0x9E3779B97F4A7C15);
}

/* ---- shutdown ---- */

static int run_until_stopped(void)
{
    while (!sim.stopping) {
        if (h2o_evloop_run(sim.ctx.loop, INT32_MAX) != 0 && errno != EINTR) {
            log_error("event loop failed: %s", strerror(errno));
            return 1;
        }
    }
    return 0;
}

/* Answers every delayed request now (h2o has no call for this, hence the peek at _entries). */
static void flush_delayed_responses(void)
{
    for (h2o_linklist_t *node = sim.delay_timers.next; node != &sim.delay_timers; node = node->next) {
        h2o_linklist_t *entries = &H2O_STRUCT_FROM_MEMBER(struct delay_timer, link, node)->timeout._entries;
        while (!h2o_linklist_is_empty(entries)) {
            h2o_timeout_entry_t *entry = H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, entries->next);
            h2o_timeout_unlink(entry);
            entry->cb(entry);
        }
    }
}

/*
 * h2o 2.2.5 cannot dispose a context that still has connections, so: stop
 * reading on each one (idle keep-alive connections see EOF and close), answer
 * delayed requests now, close hung connections, and run the loop until all
 * are gone (bounded).
 */
static int drain_connections(void)
{
    for (h2o_linklist_t *node = sim.conns.next; node != &sim.conns; node = node->next)
        shutdown(h2o_socket_get_fd(H2O_STRUCT_FROM_MEMBER(struct tracked_conn, link, node)->sock), SHUT_RD);
    flush_delayed_responses();
    end_all_hangs(); /* after the flush, which may have started hangs (they end at once now) */
    for (int round = 0; round != SIM_DRAIN_ROUNDS && !h2o_linklist_is_empty(&sim.conns); ++round)
        h2o_evloop_run(sim.ctx.loop, 50);
    return h2o_linklist_is_empty(&sim.conns);
}

static void dispose_delay_timers(void)
{
    flush_delayed_responses(); /* h2o_timeout_dispose requires empty timers */
    while (!h2o_linklist_is_empty(&sim.delay_timers)) {
        struct delay_timer *timer = H2O_STRUCT_FROM_MEMBER(struct delay_timer, link, sim.delay_timers.next);
        h2o_linklist_unlink(&timer->link);
        h2o_timeout_dispose(sim.ctx.loop, &timer->timeout);
        free(timer);
    }
}

static void shut_down(void)
{
    signal(SIGTERM, SIG_IGN); /* the signal pipe is about to close */
    signal(SIGINT, SIG_IGN);
    sim.stopping = 1;
    sim.ctx.shutdown_requested = 1; /* requests parsed from now on are answered with "Connection: close" */
    if (sim.listener != NULL)
        h2o_socket_close(sim.listener);
    int drained = drain_connections();
    dispose_delay_timers();
    end_all_hangs(); /* h2o_timeout_dispose requires an empty timer */
    h2o_timeout_dispose(sim.ctx.loop, &sim.hang_timer);
    if (sim.signal_reader != NULL)
        h2o_socket_close(sim.signal_reader); /* closes signal_pipe[0] */
    if (sim.signal_pipe[1] != -1)
        close(sim.signal_pipe[1]);
    if (drained) {
        h2o_evloop_t *loop = sim.ctx.loop;
        h2o_context_dispose(&sim.ctx);
        h2o_evloop_destroy(loop);
        h2o_config_dispose(&sim.config);
        SSL_CTX_free(sim.ssl_ctx); /* after the connections, which hold references to it */
        sim.ssl_ctx = NULL;
    } else { /* still reachable from `sim`, so not reported as leaks */
        log_error("some connections did not close; leaving h2o's state to the OS");
    }
    store_dispose();
}

/* ---- command line ---- */

/* One line naming the offending argument; returns the exit status for usage errors. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fputs("crmsim: ", stderr);
    vfprintf(stderr, fmt, args);
    fputs(" (see --help)\n", stderr);
    va_end(args);
    return 2;
}

/* 1: matched (value set), 0: another option, -1: value missing. Accepts "--name VALUE" and "--name=VALUE". */
static int match_option(const char *name, int argc, char **argv, int *i, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0 || (argv[*i][n] != '\0' && argv[*i][n] != '='))
        return 0;
    if (argv[*i][n] == '=')
        *value = argv[*i] + n + 1;
    else if (*i + 1 < argc)
        *value = argv[++*i];
    else
        return -1;
    return 1;
}

/* "1.2" or "1.3" to TLS1_2_VERSION or TLS1_3_VERSION; 0 for anything else. */
static int parse_tls_version(const char *text)
{
    return strcmp(text, "1.2") == 0 ? TLS1_2_VERSION : strcmp(text, "1.3") == 0 ? TLS1_3_VERSION : 0;
}

/* Checks the values and fills in the parsed fields; returns -1 to go on, else the exit status. */
static int check_options(struct options *opts)
{
    struct listen_addr addr;
    int fault = opts->fault == NULL ? FAULT_NONE
                                    : find_name(h2o_iovec_init(opts->fault, strlen(opts->fault)), fault_mode_names,
                                                COUNT_OF(fault_mode_names));
    if (parse_listen(opts->listen, &addr) != 0)
        return usage_error("invalid --listen value '%s' (expected HOST:PORT)", opts->listen);
    if (opts->record_dir != NULL && (opts->record_dir[0] == '\0' || strlen(opts->record_dir) > PATH_MAX - 32))
        return usage_error("invalid --record directory '%s'", opts->record_dir);
    if (opts->port_file != NULL && (opts->port_file[0] == '\0' || strlen(opts->port_file) > PATH_MAX - 8))
        return usage_error("invalid --port-file path '%s'", opts->port_file);
    if (fault < 0)
        return usage_error("invalid --fault value '%s' (expected none, reset, close-before-response, "
                           "close-mid-body or hang)", opts->fault);
    opts->default_fault = (enum fault_mode)fault;
    if ((opts->tls_cert == NULL) != (opts->tls_key == NULL))
        return usage_error("--tls-cert and --tls-key must be given together");
    if (opts->tls_cert == NULL && (opts->tls_min_version != NULL || opts->tls_max_version != NULL))
        return usage_error("%s needs --tls-cert and --tls-key", opts->tls_min_version != NULL ? "--tls-min-version"
                                                                                               : "--tls-max-version");
    if (opts->tls_min_version != NULL && (opts->tls_min = parse_tls_version(opts->tls_min_version)) == 0)
        return usage_error("invalid --tls-min-version value '%s' (expected 1.2 or 1.3)", opts->tls_min_version);
    if (opts->tls_max_version != NULL && (opts->tls_max = parse_tls_version(opts->tls_max_version)) == 0)
        return usage_error("invalid --tls-max-version value '%s' (expected 1.2 or 1.3)", opts->tls_max_version);
    if (opts->tls_max != 0 && opts->tls_min > opts->tls_max)
        return usage_error("--tls-min-version %s is above --tls-max-version %s", opts->tls_min_version,
                           opts->tls_max_version);
    return -1;
}

/* Returns -1 to go on, else the exit status. */
static int parse_options(int argc, char **argv, struct options *opts)
{
    const struct {
        const char *name;
        const char **value;
    } value_options[] = {{"--listen", &opts->listen},
                         {"--record", &opts->record_dir},
                         {"--port-file", &opts->port_file},
                         {"--fault", &opts->fault},
                         {"--tls-cert", &opts->tls_cert},
                         {"--tls-key", &opts->tls_key},
                         {"--tls-min-version", &opts->tls_min_version},
                         {"--tls-max-version", &opts->tls_max_version}};
    for (int i = 1; i < argc; ++i) {
        const char *arg = argv[i];
        int matched = 0;
        if (strcmp(arg, "--help") == 0) {
            puts("usage: crmsim [--listen HOST:PORT] [--record DIR] [--port-file FILE] [--fault MODE]\n"
                 "              [--tls-cert FILE --tls-key FILE [--tls-min-version V] [--tls-max-version V]] [--help]\n"
                 "  --listen           address to serve on (default " SIM_DEFAULT_LISTEN "; port 0: ephemeral)\n"
                 "  --record           write every request to DIR/NNNNNN.body and DIR/NNNNNN.json\n"
                 "  --port-file        write the bound port number to FILE\n"
                 "  --fault            connection fault for every request without an X-Sim-Fault header:\n"
                 "                     none (default), reset (TCP RST, no response), close-before-response\n"
                 "                     (FIN, no response), close-mid-body (Content-Length: 1000, 100 bytes sent,\n"
                 "                     then FIN), hang (no response until the client closes or crmsim exits)\n"
                 "  --tls-cert         serve HTTPS with this PEM certificate chain (needs --tls-key)\n"
                 "  --tls-key          the PEM private key of --tls-cert\n"
                 "  --tls-min-version  lowest TLS version offered: 1.2 (default) or 1.3\n"
                 "  --tls-max-version  highest TLS version offered: 1.2 or 1.3 (default)\n"
                 "See tests/sim/README.md for the X-Sim-* control headers (X-Sim-Fault, X-Sim-Status, ...).");
            return 0;
        }
        for (size_t k = 0; k != COUNT_OF(value_options) && matched == 0; ++k)
            matched = match_option(value_options[k].name, argc, argv, &i, value_options[k].value);
        if (matched == 0)
            return usage_error("unknown argument '%s'", arg);
        if (matched < 0)
            return usage_error("missing value for %s", arg);
    }
    return check_options(opts);
}

static int prepare_record_dir(const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        log_error("cannot create --record directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        log_error("--record %s is not a directory", dir);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options opts = {.listen = SIM_DEFAULT_LISTEN, .default_fault = FAULT_NONE, .tls_min = TLS1_2_VERSION};
    int status = parse_options(argc, argv, &opts);
    if (status >= 0)
        return status;
    if (opts.record_dir != NULL && prepare_record_dir(opts.record_dir) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    init_server(&opts);
    status = start_serving(&opts) == 0 ? run_until_stopped() : 1;
    shut_down();
    return status;
}

/*
 * Upstream errors in the client's format. An h2o filter on the traffic path
 * looks at every response with status >= 400 that crmgate did not make itself:
 *  - Oracle JSON (the error media type, or JSON with o:errorDetails) passes through unchanged;
 *  - anything else (an HTML page, an empty body, plain text) is replaced by an error
 *    document in the negotiated format, with the status kept, a short escaped excerpt
 *    of the original body, and only allow-listed upstream headers;
 *  - h2o's own proxy failures become 502 (refused, reset, bad response) or 504 (timeout).
 * The filter buffers the (bounded) error body, so it sets up the rest of the filter
 * chain only when the body is complete and its length known: the response keeps a
 * Content-Length and the connection stays alive.
 */
#include <assert.h>
#include <string.h>
#include <jansson.h>
#include "buf.h"
#include "metrics.h"
#include "render.h"
#include "server.h"

#define GW_ERROR_BODY_CAPTURE (64 * 1024) /* Oracle JSON larger than this is rewritten, not passed on */
#define GW_EXCERPT_CHARS 120

typedef struct st_rewrite_filter_t {
    h2o_filter_t super;
    gw_server_t *server;
} rewrite_filter_t;

typedef struct st_rewrite_ostream_t {
    h2o_ostream_t super;
    rewrite_filter_t *filter;
    char *captured; /* the first GW_ERROR_BODY_CAPTURE bytes, from the request pool */
    size_t captured_len;
    int truncated;
    int generated_by_proxy; /* h2o's proxy made this response: the upstream could not be used */
    h2o_timeout_entry_t proceed_timer;
    h2o_req_t *req;
} rewrite_ostream_t;

/* Headers of an upstream error that may reach the client: they carry meaning a client acts on. */
static const char *const allowed_headers[] = {"retry-after", "www-authenticate", "allow", "x-crmgate-report", NULL};

__thread h2o_req_t *gw__rejection_in_progress;

static h2o_iovec_t content_type_of(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->res.headers.entries[i].value;
}

static int media_type_is(h2o_iovec_t ct, const char *type)
{
    size_t len = strlen(type);
    return ct.len >= len && h2o_lcstris(ct.base, len, type, len) && (ct.len == len || ct.base[len] == ';' || ct.base[len] == ' ');
}

static int is_json_media_type(h2o_iovec_t ct)
{
    const char *semi = ct.base != NULL ? memchr(ct.base, ';', ct.len) : NULL;
    size_t len = semi != NULL ? (size_t)(semi - ct.base) : ct.len;
    return media_type_is(ct, "application/json") || (len >= 5 && h2o_lcstris(ct.base + len - 5, 5, H2O_STRLIT("+json")));
}

/* ---- deciding ------------------------------------------------------------- */

static int is_oracle_json(const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    int ok = json_is_object(doc) && json_is_array(json_object_get(doc, "o:errorDetails"));
    json_decref(doc);
    return ok;
}

static const char *describe_body(h2o_iovec_t ct, size_t len, int *is_html)
{
    *is_html = media_type_is(ct, "text/html") || media_type_is(ct, "application/xhtml+xml");
    if (len == 0)
        return "an empty body";
    if (*is_html)
        return "an HTML page";
    if (media_type_is(ct, "text/plain"))
        return "a plain-text message";
    if (is_json_media_type(ct))
        return "a JSON document that is not an Oracle error";
    return "a body of another type";
}

static gw_negotiation_t negotiation_of(h2o_req_t *req, const gw_limits_t *limits)
{
    gw_negotiation_t n = {1, 1};
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("rest-framework-version"), -1);
    if (i != -1) {
        int v = gw_framework_version_parse(req->headers.entries[i].value.base, req->headers.entries[i].value.len,
                                           limits->max_framework_version);
        n.framework_version = v != 0 ? v : 1;
    }
    if ((i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1)) != -1)
        n.accepts_json = gw_accept_allows_json(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    return n;
}

/* Requests h2o refused before routing never met the handler: they get their id here. */
static const char *request_id_of(h2o_req_t *req)
{
    h2o_iovec_t id = gw_request_id_ensure(req);
    return h2o_strdup(&req->pool, id.base, id.len).base;
}

/* ---- sending -------------------------------------------------------------- */

static void log_fault(h2o_req_t *req, const char *request_id, const char *what, const char *reason)
{
    gw_buf_t path = GW_BUF_INIT;
    gw_buf_append_excerpt(&path, req->path.base, req->path.len, 120, 0); /* untrusted: escaped and capped */
    gw_log_warn("request %s %.*s %s: the upstream %s (%s)", request_id, (int)req->method.len, req->method.base, path.base,
                what, reason != NULL ? reason : "");
    gw_buf_dispose(&path);
}

static void keep_allowed_headers(h2o_req_t *req)
{
    h2o_headers_t kept = {NULL};
    for (size_t i = 0; i != req->res.headers.size; ++i) {
        h2o_header_t *h = &req->res.headers.entries[i];
        for (const char *const *name = allowed_headers; *name != NULL; ++name) {
            if (h2o_lcstris(h->name->base, h->name->len, *name, strlen(*name))) {
                h2o_vector_reserve(&req->pool, &kept, kept.size + 1);
                kept.entries[kept.size++] = *h;
            }
        }
    }
    req->res.headers = kept;
}

/* Sets up the rest of the chain now that the response is known, and sends it as the final data. */
static void send_downstream(rewrite_ostream_t *self, h2o_req_t *req, const char *body, size_t len)
{
    req->res.content_length = len;
    h2o_setup_next_ostream(req, &self->super.next);
    int is_head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_iovec_t buf = h2o_iovec_init(body, len);
    h2o_ostream_send_next(&self->super, req, is_head ? NULL : &buf, is_head || len == 0 ? 0 : 1, H2O_SEND_STATE_FINAL);
}

/* A request h2o refused before routing never met the handler: it is counted, and gets its state and audit record, here. */
static void audit_refusal(h2o_req_t *req, gw_request_state_t *state, const gw_violation_t *v, int status)
{
    gw_server_t *server = gw_server_running();
    if (state != NULL || server == NULL)
        return;
    gw_metrics_count_request(server->pass_through_metric_id, GW_METRIC_REJECTED);
    gw_metrics_count_violation(v->code, 1);
    if (server->audit == NULL)
        return;
    state = gw_request_state_new(req);
    gw_violation_t copy = *v;
    gw_result_t result;
    gw_result_init_single(&result, &copy, status);
    gw_auditlog_prepare(state, &result);
}

static void send_rewritten(rewrite_ostream_t *self, h2o_req_t *req)
{
    /* the request's own configuration; h2o's refusals before routing have none yet: the worker's current one */
    gw_request_state_t *state = gw_request_state(req);
    const gw_config_t *config = (state != NULL ? state->runtime : gw_server_current_runtime())->config;
    h2o_iovec_t ct = content_type_of(req);
    gw_buf_t excerpt = GW_BUF_INIT;
    gw_violation_code_t code = GW_V_UPSTREAM_ERROR;
    int status = req->res.status, is_html;
    const char *what = describe_body(ct, self->captured_len, &is_html);
    gw_upstream_excerpt(self->captured, self->captured_len, is_html, GW_EXCERPT_CHARS, &excerpt);
    gw_rendered_t rendered;
    gw_negotiation_t negotiation = negotiation_of(req, &config->limits);
    const char *request_id = request_id_of(req);
    if (self->generated_by_proxy && status < 500) {
        gw_violation_t v = {.code = GW_V_BAD_REQUEST, .mode = GW_MODE_ENFORCE, .pointer = "", .excerpt = excerpt.base,
                            .limit = -1, .found = -1};
        if (status == 413) {
            /* h2o refused a body over its limit before reading it: the same 413 crmgate gives */
            v = (gw_violation_t){.code = GW_V_BODY_TOO_LARGE, .mode = GW_MODE_ENFORCE, .pointer = "",
                                 .limit = (int64_t)config->limits.max_body, .found = -1};
        }
        /* (otherwise h2o refused the request itself: broken chunked encoding, a bad request line...) */
        gw_render_violation(&v, status, negotiation, config->error_format, request_id, &rendered);
        audit_refusal(req, state, &v, status);
    } else {
        if (self->generated_by_proxy) {
            /* h2o's proxy reports its failures as a 502 whose body is the reason */
            int timeout = self->captured_len >= 11 && memcmp(self->captured, "I/O timeout", 11) == 0;
            code = timeout ? GW_V_UPSTREAM_TIMEOUT : GW_V_UPSTREAM_UNREACHABLE;
            status = timeout ? 504 : 502;
            gw_metrics_count_fault(timeout ? GW_FAULT_TIMEOUT : GW_FAULT_UNREACHABLE);
            if (state != NULL)
                state->fault = timeout ? "timeout" : "unreachable";
            log_fault(req, request_id, timeout ? "did not answer in time" : "could not be used", excerpt.base);
        }
        gw_render_upstream_error(code, status, what, excerpt.base, (int64_t)config->upstream_io_timeout_ms,
                                 negotiation, config->error_format, request_id, &rendered);
    }
    gw_buf_dispose(&excerpt);
    req->res.status = status;
    req->res.reason = gw_status_title(status);
    keep_allowed_headers(req);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   h2o_strdup(&req->pool, rendered.content_type, SIZE_MAX).base, strlen(rendered.content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, "X-Request-ID", request_id,
                          strlen(request_id));
    h2o_iovec_t body = h2o_strdup(&req->pool, rendered.body.base, rendered.body.len);
    gw_buf_dispose(&rendered.body);
    send_downstream(self, req, body.base, body.len);
}

static void on_proceed_timer(h2o_timeout_entry_t *entry)
{
    rewrite_ostream_t *self = H2O_STRUCT_FROM_MEMBER(rewrite_ostream_t, proceed_timer, entry);
    h2o_proceed_response(self->req);
}

static void capture(rewrite_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt)
{
    for (size_t i = 0; i < bufcnt; ++i) {
        size_t room = GW_ERROR_BODY_CAPTURE - self->captured_len;
        size_t n = bufs[i].len < room ? bufs[i].len : room;
        if (n < bufs[i].len)
            self->truncated = 1;
        if (n == 0)
            continue;
        if (self->captured == NULL)
            self->captured = h2o_mem_alloc_pool(&req->pool, GW_ERROR_BODY_CAPTURE);
        memcpy(self->captured + self->captured_len, bufs[i].base, n);
        self->captured_len += n;
    }
}

static void on_send(h2o_ostream_t *_self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    rewrite_ostream_t *self = (rewrite_ostream_t *)_self;
    capture(self, req, bufs, bufcnt);
    if (state == H2O_SEND_STATE_IN_PROGRESS) {
        /* keep pulling the upstream body (discarding what is over the capture); deferred to the
         * loop so that the generator is not re-entered from its own send */
        h2o_timeout_link(req->conn->ctx->loop, &req->conn->ctx->zero_timeout, &self->proceed_timer);
        return;
    }
    if (!self->generated_by_proxy && !self->truncated && is_json_media_type(content_type_of(req)) &&
        is_oracle_json(self->captured != NULL ? self->captured : "", self->captured_len)) {
        send_downstream(self, req, self->captured, self->captured_len); /* already Oracle's format: unchanged */
        return;
    }
    send_rewritten(self, req);
}

static void on_stop(h2o_ostream_t *_self, h2o_req_t *req)
{
    rewrite_ostream_t *self = (rewrite_ostream_t *)_self;
    if (h2o_timeout_is_linked(&self->proceed_timer))
        h2o_timeout_unlink(&self->proceed_timer);
}

/* A relayed success passes through untouched; an upstream that breaks off its body is counted and logged
 * (h2o then closes the client's connection, or resets the stream: a short body never looks complete). */
static void on_relay_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    if (state == H2O_SEND_STATE_ERROR) {
        gw_request_state_t *rs = gw_request_state(req);
        if (rs != NULL)
            rs->fault = "closed-mid-body";
        gw_metrics_count_fault(GW_FAULT_CLOSED_MID_BODY);
        h2o_iovec_t id = gw_request_id_ensure(req);
        log_fault(req, h2o_strdup(&req->pool, id.base, id.len).base, "broke off its response", "closed mid-body");
    }
    h2o_ostream_send_next(self, req, bufs, bufcnt, state);
}

static void on_setup_ostream(h2o_filter_t *_self, h2o_req_t *req, h2o_ostream_t **slot)
{
    rewrite_filter_t *filter = (rewrite_filter_t *)_self;
    int relayed = req != gw__rejection_in_progress && req->_generator != NULL && req->_generator->proceed != NULL;
    if (relayed) {
        /* a response of the CRM: h2o has just read its head */
        uint64_t upstream_ns = gw_server_elapsed_ns(&req->processed_at.at);
        gw_metrics_count_upstream_status(req->res.status);
        gw_metrics_observe_upstream(upstream_ns);
        gw_request_state_t *state = gw_request_state(req);
        if (state != NULL) {
            state->upstream_status = req->res.status;
            state->upstream_ns = upstream_ns;
        }
        if (req->res.status < 400) {
            h2o_ostream_t *watch = h2o_add_ostream(req, sizeof(*watch), slot);
            watch->do_send = on_relay_send;
            h2o_setup_next_ostream(req, &watch->next);
            return;
        }
    }
    if (req->res.status < 400 || req == gw__rejection_in_progress ||
        media_type_is(content_type_of(req), "application/vnd.oracle.adf.error+json")) {
        h2o_setup_next_ostream(req, slot);
        return;
    }
    rewrite_ostream_t *self = (rewrite_ostream_t *)h2o_add_ostream(req, sizeof(*self), slot);
    self->super.do_send = on_send;
    self->super.stop = on_stop;
    self->filter = filter;
    self->captured = NULL;
    self->captured_len = 0;
    self->truncated = 0;
    self->req = req;
    self->proceed_timer = (h2o_timeout_entry_t){0};
    self->proceed_timer.cb = on_proceed_timer;
    /* responses made by h2o itself (not relayed from upstream) come from a generator that cannot proceed */
    self->generated_by_proxy = !relayed;
    /* the rest of the chain is set up in send_downstream(), when the length is known */
}

void gw_rewrite_register(h2o_pathconf_t *pathconf, gw_server_t *server)
{
    rewrite_filter_t *filter = (rewrite_filter_t *)h2o_create_filter(pathconf, sizeof(*filter));
    filter->super.on_setup_ostream = on_setup_ostream;
    filter->server = server;
    /* h2o puts a new filter first: this one runs before the chunked encoder that h2o
     * registers on every path, which it must, as it decides the length (and before
     * the request-id filter, which then sees the final headers) */
    assert(pathconf->filters.entries[0] == &filter->super);
}

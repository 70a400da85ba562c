/*
 * The h2o glue. The validating handler is registered first on the traffic
 * path, so h2o has buffered the whole body before it runs; it answers a
 * rejection itself, or returns -1 so that h2o's reverse proxy, registered
 * after it, forwards the original bytes. A filter puts the request id on
 * every response, the proxy's included.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include "buf.h"
#include "evaluate.h"
#include "metrics.h"
#include "render.h"
#include "server.h"

#define GW_REQUEST_ID_MAX 128

typedef struct st_gw_handler_t {
    h2o_handler_t super;
    gw_server_t *server;
} gw_handler_t;

/* Per worker thread: the evaluator's arena and PCRE2 state. */
typedef struct st_gw_handler_context_t {
    gw_evaluator_t evaluator;
} gw_handler_context_t;

/* Per thread, seeded from getrandom() on first use: ids must be unique, not secret. */
static __thread uint64_t id_state[2];

static const h2o_iovec_t request_id_name = {"x-request-id", sizeof("x-request-id") - 1};

/* ---- request ids -------------------------------------------------------- */

static uint64_t next_random(uint64_t s[2])
{
    /* xorshift128+: ids must be unique, not secret */
    uint64_t x = s[0], y = s[1];
    s[0] = y;
    x ^= x << 23;
    s[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
    return s[1] + y;
}

static int request_id_acceptable(h2o_iovec_t v)
{
    if (v.len == 0 || v.len > GW_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < v.len; ++i)
        if ((unsigned char)v.base[i] <= 0x20 || (unsigned char)v.base[i] >= 0x7f)
            return 0;
    return 1;
}

h2o_iovec_t gw_request_id_ensure(h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, request_id_name.base, request_id_name.len, -1);
    if (i != -1 && request_id_acceptable(req->headers.entries[i].value) &&
        h2o_find_header_by_str(&req->headers, request_id_name.base, request_id_name.len, i) == -1)
        return req->headers.entries[i].value;
    if ((id_state[0] | id_state[1]) == 0 && getrandom(id_state, sizeof(id_state), 0) != sizeof(id_state))
        gw_fatal("cannot seed request ids from getrandom()");
    static const char hex_digits[] = "0123456789abcdef";
    char *id = h2o_mem_alloc_pool(&req->pool, 33);
    uint64_t r[2] = {next_random(id_state), next_random(id_state)};
    for (int half = 0; half < 2; ++half) /* 32 hex digits, most significant first */
        for (int d = 15; d >= 0; --d, r[half] >>= 4)
            id[16 * half + d] = hex_digits[r[half] & 15];
    id[32] = '\0';
    /* drop every copy the client sent, then add ours */
    while ((i = h2o_find_header_by_str(&req->headers, request_id_name.base, request_id_name.len, -1)) != -1)
        h2o_delete_header(&req->headers, i);
    h2o_add_header_by_str(&req->pool, &req->headers, request_id_name.base, request_id_name.len, 0, "X-Request-ID", id, 32);
    return h2o_iovec_init(id, 32);
}

/* ---- reading the request ------------------------------------------------ */

static gw_header_value_t header_value(h2o_req_t *req, const h2o_token_t *token, const char *name, size_t name_len)
{
    gw_header_value_t hv = {NULL, 0, 0};
    ssize_t i = -1;
    for (;;) {
        i = token != NULL ? h2o_find_header(&req->headers, token, i) : h2o_find_header_by_str(&req->headers, name, name_len, i);
        if (i == -1)
            break;
        if (hv.count++ == 0) {
            hv.base = req->headers.entries[i].value.base;
            hv.len = req->headers.entries[i].value.len;
        }
    }
    return hv;
}

static void read_request(h2o_req_t *req, gw_request_t *out)
{
    memset(out, 0, sizeof(*out));
    out->method = req->method.base;
    out->method_len = req->method.len;
    out->path = req->path.base;
    out->path_len = req->path.len;
    out->content_type = header_value(req, H2O_TOKEN_CONTENT_TYPE, NULL, 0);
    out->accept = header_value(req, H2O_TOKEN_ACCEPT, NULL, 0);
    out->upsert_mode = header_value(req, NULL, H2O_STRLIT("upsert-mode"));
    out->framework_version = header_value(req, NULL, H2O_STRLIT("rest-framework-version"));
    out->method_override = header_value(req, NULL, H2O_STRLIT("x-http-method-override"));
    out->body = req->entity.base != NULL ? req->entity.base : "";
    out->body_len = req->entity.base != NULL ? req->entity.len : 0;
}

/* ---- answering ---------------------------------------------------------- */

static void send_rejection(const gw_config_t *config, h2o_req_t *req, const gw_result_t *result, h2o_iovec_t request_id)
{
    gw_rendered_t rendered;
    char *id = h2o_mem_alloc_pool(&req->pool, request_id.len + 1);
    memcpy(id, request_id.base, request_id.len);
    id[request_id.len] = '\0';
    gw_render_rejection(result, config->error_format, id, &rendered);
    req->res.status = result->status;
    req->res.reason = gw_status_title(result->status);
    /* without a length, h2o 2.2.5 closes an HTTP/1.1 connection after a non-200 answer */
    req->res.content_length = rendered.body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, rendered.content_type,
                   strlen(rendered.content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    gw__rejection_in_progress = req; /* filters are set up within h2o_send_inline */
    h2o_send_inline(req, rendered.body.base, rendered.body.len); /* copies the body into the request pool */
    gw__rejection_in_progress = NULL;
    gw_buf_dispose(&rendered.body);
}

#define GW_REPORT_HEADER_MAX 1024

/* X-CRMGate-Report: the codes and pointers of report-mode violations, bounded. */
static void add_report_header(gw_request_state_t *state, h2o_req_t *req, const gw_result_t *result)
{
    gw_buf_t value = GW_BUF_INIT;
    size_t listed = 0;
    for (size_t i = 0; i < result->violations.count; ++i) {
        const gw_violation_t *v = &result->violations.items[i];
        size_t before = value.len;
        gw_buf_printf(&value, "%s%s ", listed == 0 ? "" : ", ", gw_violation_code_name(v->code));
        gw_buf_append_excerpt(&value, v->pointer, strlen(v->pointer), 200, 0); /* pointers quote the client's keys */
        if (value.len > GW_REPORT_HEADER_MAX - 32) {
            value.len = before;
            break;
        }
        ++listed;
    }
    if (result->violations.total > listed)
        gw_buf_printf(&value, "%s+%zu more", listed == 0 ? "" : ", ", result->violations.total - listed);
    state->report_header = h2o_strdup(&req->pool, value.base, value.len); /* the filter puts it on the response */
    gw_buf_dispose(&value);
}

/* Refuses a request before its body is judged, with one violation, counted and audited like every rejection. */
static void refuse_early(gw_server_t *server, const gw_config_t *config, h2o_req_t *req, gw_request_state_t *state,
                         const gw_route_t *route, const gw_request_t *greq, h2o_iovec_t request_id,
                         gw_violation_t *v, int status)
{
    gw_result_t result;
    gw_result_init_single(&result, v, status);
    /* the error format is negotiated as for any rejection */
    int version = greq->framework_version.count == 1
                      ? gw_framework_version_parse(greq->framework_version.base, greq->framework_version.len,
                                                   config->limits.max_framework_version)
                      : 0;
    result.framework_version = version != 0 ? version : 1;
    result.accepts_json = greq->accept.count == 0 || gw_accept_allows_json(greq->accept.base, greq->accept.len);
    gw_metrics_count_request(route != NULL ? route->metric_id : server->pass_through_metric_id, GW_METRIC_REJECTED);
    gw_metrics_count_violation(v->code, 1);
    state->route = route;
    if (server->audit != NULL)
        gw_auditlog_prepare(state, &result); /* queued if the sink can take it; counted as dropped otherwise */
    send_rejection(config, req, &result, request_id);
}

/* h2o 2.2.5 keeps an obs-fold continuation line (RFC 9112 section 5.2) as a header with an empty name, and its proxy
 * would send that line on as ":  value", which the CRM may read as a fold or as a header of its own: refused. Returns
 * the index of the header the fold continues (-1 when it is the first), or -2 when there is none. */
static ssize_t find_folded_header(const h2o_req_t *req)
{
    for (size_t i = 0; i != req->headers.size; ++i)
        if (req->headers.entries[i].name->len == 0)
            return (ssize_t)i - 1;
    return -2;
}

static void refuse_folded_header(gw_server_t *server, const gw_config_t *config, h2o_req_t *req,
                                 gw_request_state_t *state, const gw_route_t *route, const gw_request_t *greq,
                                 h2o_iovec_t request_id, ssize_t continued)
{
    char what[160];
    if (continued >= 0) {
        const h2o_header_t *header = &req->headers.entries[continued];
        const char *name = header->orig_name != NULL ? header->orig_name : header->name->base; /* as the client spelt it */
        snprintf(what, sizeof(what), "the header %.*s is folded onto a second line (obs-fold is not accepted)",
                 (int)(header->name->len < 64 ? header->name->len : 64), name);
    } else {
        snprintf(what, sizeof(what), "a header line starts with white space (obs-fold is not accepted)");
    }
    gw_violation_t v = {.code = GW_V_BAD_REQUEST, .mode = GW_MODE_ENFORCE, .pointer = "", .excerpt = what,
                        .limit = -1, .found = -1};
    refuse_early(server, config, req, state, route, greq, request_id, &v, 400);
}

static void refuse_unaudited(gw_server_t *server, const gw_config_t *config, h2o_req_t *req, gw_request_state_t *state,
                             const gw_route_t *route, const gw_request_t *greq, h2o_iovec_t request_id)
{
    gw_violation_t v = {.code = GW_V_AUDIT_UNAVAILABLE, .mode = GW_MODE_ENFORCE, .pointer = "", .limit = -1, .found = -1};
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    refuse_early(server, config, req, state, route, greq, request_id, &v, 503);
}

static void count(const gw_route_t *route, const gw_result_t *result)
{
    static const gw_metric_decision_t decisions[] = {[GW_DECISION_PASS_THROUGH] = GW_METRIC_PASS_THROUGH,
                                                     [GW_DECISION_FORWARD] = GW_METRIC_FORWARDED,
                                                     [GW_DECISION_REPORT] = GW_METRIC_REPORTED,
                                                     [GW_DECISION_REJECT] = GW_METRIC_REJECTED};
    gw_metrics_count_request(route->metric_id, decisions[result->decision]);
    for (size_t i = 0; i < result->violations.count; ++i)
        gw_metrics_count_violation(result->violations.items[i].code, result->violations.items[i].mode == GW_MODE_ENFORCE);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    gw_handler_t *handler = (gw_handler_t *)self;
    gw_handler_context_t *hctx = h2o_context_get_handler_context(req->conn->ctx, self);
    gw_request_state_t *state = gw_request_state_new(req);
    int body_cut = gw_bodyguard_on_request(req);
    h2o_iovec_t request_id = gw_request_id_ensure(req);

    gw_request_t greq;
    read_request(req, &greq);
    greq.body_too_large = body_cut;
    /* judged by the configuration and rules current when the request arrived, even across a reload */
    const gw_config_t *config = state->runtime->config;
    gw_ruleset_t *rules = state->runtime->rules;
    gw_evaluator_reset(&hctx->evaluator);
    hctx->evaluator.limits = config->limits;
    hctx->evaluator.policy = &config->policy;
    const gw_route_t *route = gw_evaluate_route(&hctx->evaluator, rules, &greq);
    ssize_t folded = find_folded_header(req);
    if (folded != -2) {
        refuse_folded_header(handler->server, config, req, state, route, &greq, request_id, folded);
        return 0;
    }
    int audited = handler->server->audit != NULL && (route != NULL || config->audit.all_routes);
    if (audited && !config->audit.fail_open && !gw_audit_healthy(handler->server->audit)) {
        /* fail-closed: nothing is served that the audit trail cannot record */
        refuse_unaudited(handler->server, config, req, state, route, &greq, request_id);
        return 0;
    }
    if (route == NULL) {
        gw_metrics_count_request(handler->server->pass_through_metric_id, GW_METRIC_PASS_THROUGH);
        if (audited)
            gw_auditlog_prepare(state, NULL);
        return -1; /* not a validated route: the proxy forwards it untouched */
    }

    gw_result_t result;
    gw_evaluate(&hctx->evaluator, route, &greq, &result);
    count(route, &result);
    state->route = route;
    if (audited)
        gw_auditlog_prepare(state, &result);
    if (result.decision == GW_DECISION_REPORT && config->report_header)
        add_report_header(state, req, &result);
    if (result.decision != GW_DECISION_REJECT)
        return -1; /* forwarded byte for byte: req->entity is what the proxy sends */
    send_rejection(config, req, &result, request_id);
    return 0;
}

static void on_context_init(h2o_handler_t *self, h2o_context_t *ctx)
{
    gw_handler_t *handler = (gw_handler_t *)self;
    gw_handler_context_t *hctx = h2o_mem_alloc(sizeof(*hctx));
    gw_evaluator_init(&hctx->evaluator, &handler->server->config->limits); /* limits and policy are set per request */
    h2o_context_set_handler_context(ctx, self, hctx);
}

static void on_context_dispose(h2o_handler_t *self, h2o_context_t *ctx)
{
    gw_handler_context_t *hctx = h2o_context_get_handler_context(ctx, self);
    gw_evaluator_dispose(&hctx->evaluator);
    free(hctx);
}

/* ---- the response filter ------------------------------------------------ */

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, request_id_name.base, request_id_name.len, -1);
    if (i != -1)
        h2o_set_header_by_str(&req->pool, &req->res.headers, request_id_name.base, request_id_name.len, 0,
                              req->headers.entries[i].value.base, req->headers.entries[i].value.len, 1);
    gw_request_state_t *state = gw_request_state(req);
    if (state != NULL && state->report_header.len != 0)
        h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-crmgate-report"), 0,
                              state->report_header.base, state->report_header.len, 1);
    h2o_setup_next_ostream(req, slot);
}

void gw_handler_register(h2o_pathconf_t *pathconf, gw_server_t *server)
{
    gw_handler_t *handler = (gw_handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->super.on_context_init = on_context_init;
    handler->super.on_context_dispose = on_context_dispose;
    handler->server = server;
    h2o_filter_t *filter = h2o_create_filter(pathconf, sizeof(*filter));
    filter->on_setup_ostream = on_setup_ostream;
}

/*
 * The audit record: one JSON object per line for every request on a validated
 * route (every request with audit.all-routes), written when the request ends so
 * that it holds the outcome. No field values are ever written: violations are
 * pointers and codes. Untrusted strings (path, request id) are escaped and capped.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <openssl/sha.h>
#include "buf.h"
#include "metrics.h"
#include "server.h"

#define GW_AUDIT_PATH_MAX 1024

void gw_auditlog_prepare(gw_request_state_t *state, const gw_result_t *result)
{
    h2o_req_t *req = state->req;
    state->audited = 1;
    state->decision = result != NULL ? result->decision : GW_DECISION_PASS_THROUGH;
    state->bytes_in = req->entity.base != NULL ? req->entity.len : 0;
    /* the body is hashed now: by the end of the request its buffer may hold the next request */
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(req->entity.base != NULL ? req->entity.base : ""), state->bytes_in, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i)
        snprintf(state->body_sha256 + 2 * i, 3, "%02x", md[i]);
    if (result == NULL || result->violations.count == 0)
        return;
    gw_buf_t json = GW_BUF_INIT;
    gw_buf_append(&json, "[", 1);
    for (size_t i = 0; i < result->violations.count; ++i) {
        const gw_violation_t *v = &result->violations.items[i];
        gw_buf_appendz(&json, i == 0 ? "{\"pointer\":" : ",{\"pointer\":");
        gw_buf_append_json_string(&json, v->pointer, strlen(v->pointer), 512);
        gw_buf_printf(&json, ",\"code\":\"%s\",\"mode\":\"%s\"}", gw_violation_code_name(v->code), gw_mode_name(v->mode));
    }
    gw_buf_append(&json, "]", 1);
    state->violations = h2o_strdup(&req->pool, json.base, json.len);
    gw_buf_dispose(&json);
}

static void append_time(gw_buf_t *out, const struct timeval *tv)
{
    struct tm tm;
    char stamp[32];
    time_t sec = tv->tv_sec;
    gmtime_r(&sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    gw_buf_printf(out, "\"%s.%06ldZ\"", stamp, (long)tv->tv_usec);
}

static void append_client(gw_buf_t *out, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    char host[INET6_ADDRSTRLEN] = "";
    unsigned port = 0;
    if (len != 0 && ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        gw_buf_printf(out, "\"%s:%u\"", host, port);
    } else if (len != 0 && ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        gw_buf_printf(out, "\"[%s]:%u\"", host, port);
    } else {
        gw_buf_appendz(out, "null");
    }
}

static const char *decision_name(gw_decision_t decision)
{
    switch (decision) {
    case GW_DECISION_PASS_THROUGH:
        return "pass-through";
    case GW_DECISION_FORWARD:
        return "forwarded";
    case GW_DECISION_REPORT:
        return "reported";
    case GW_DECISION_REJECT:
        return "rejected";
    }
    return "?";
}

static uint64_t ns_since(const struct timeval *since)
{
    return gw_server_elapsed_ns(since);
}

void gw_auditlog_write(gw_server_t *server, gw_request_state_t *state)
{
    if (!state->audited || server == NULL || server->audit == NULL)
        return;
    h2o_req_t *req = state->req;
    const gw_config_t *config = state->runtime->config;
    gw_buf_t line = GW_BUF_INIT;
    gw_buf_reserve(&line, 512);
    gw_buf_appendz(&line, "{\"time\":");
    append_time(&line, &req->timestamps.request_begin_at);
    ssize_t id = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    gw_buf_appendz(&line, ",\"request_id\":");
    if (id != -1)
        gw_buf_append_json_string(&line, req->headers.entries[id].value.base, req->headers.entries[id].value.len, 128);
    else
        gw_buf_appendz(&line, "null");
    gw_buf_appendz(&line, ",\"client\":");
    append_client(&line, req);
    gw_buf_appendz(&line, ",\"method\":");
    gw_buf_append_json_string(&line, req->input.method.base, req->input.method.len, 32);
    gw_buf_appendz(&line, ",\"path\":");
    gw_buf_append_json_string(&line, req->input.path.base, req->input.path.len, GW_AUDIT_PATH_MAX);
    gw_buf_appendz(&line, ",\"route\":");
    if (state->route != NULL)
        gw_buf_printf(&line, "\"%s %s\"", state->route->method, state->route->path); /* from the rules: trusted */
    else
        gw_buf_appendz(&line, "null");
    gw_buf_printf(&line, ",\"rules\":\"%s\",\"mode\":\"%s\",\"decision\":\"%s\",\"violations\":",
                  gw_ruleset_digest(state->runtime->rules),
                  state->decision == GW_DECISION_REJECT   ? "enforce"
                  : state->decision == GW_DECISION_REPORT ? "report"
                                                          : gw_mode_name(config->policy.mode),
                  decision_name(state->decision));
    if (state->violations.len != 0)
        gw_buf_append(&line, state->violations.base, state->violations.len);
    else
        gw_buf_appendz(&line, "[]");
    gw_buf_printf(&line, ",\"status\":%d,\"upstream_status\":", req->res.status);
    if (state->upstream_status != 0)
        gw_buf_printf(&line, "%d,\"upstream_ms\":%.3f", state->upstream_status, (double)state->upstream_ns / 1e6);
    else
        gw_buf_appendz(&line, "null,\"upstream_ms\":null");
    if (state->fault != NULL)
        gw_buf_printf(&line, ",\"fault\":\"%s\"", state->fault);
    gw_buf_printf(&line, ",\"total_ms\":%.3f,\"bytes_in\":%zu,\"bytes_out\":%zu,\"body_sha256\":\"%s\"}\n",
                  (double)ns_since(&req->timestamps.request_begin_at) / 1e6, state->bytes_in, req->bytes_sent,
                  state->body_sha256);
    if (gw_audit_write(server->audit, line.base, line.len) != 0)
        gw_metrics_count_audit_dropped();
    gw_buf_dispose(&line);
    (void)config;
}

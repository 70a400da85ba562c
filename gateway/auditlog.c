/*
 * The audit record: one JSON object per line for every request on a validated
 * route (every request with audit.all-routes), written when the request ends so
 * that it holds the outcome. No field values are ever written: violations are
 * pointers and codes. Untrusted strings (path, request id) are escaped and capped.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "buf.h"
#include "metrics.h"
#include "server.h"

#define GW_AUDIT_PATH_MAX 1024
/* A worker hands its records to the sink at the end of each event-loop pass, or sooner when this many bytes wait:
 * one lock and at most one wake-up of the writer per pass, not per request. */
#define GW_AUDIT_BATCH_BYTES 65536

static const char hex_digits[] = "0123456789abcdef";

/* Per worker thread: the records of this event-loop pass. The buffer is kept from pass to pass (bounded by
 * GW_AUDIT_BATCH_BYTES plus one record) and freed by gw_auditlog_flush(server, 1) when the worker ends. */
static __thread gw_buf_t batch;
static __thread size_t batch_records;

/* SHA-256 through a digest fetched once and a context kept per worker: OpenSSL 3's one-shot SHA256() fetches the
 * algorithm and allocates a context on every call, a third of its cost on a 1 KB body. */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static __thread EVP_MD_CTX *sha256_ctx; /* freed by gw_auditlog_flush(server, 1) */

static void fetch_sha256(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void hash_body(const void *body, size_t len, unsigned char md[SHA256_DIGEST_LENGTH])
{
    pthread_once(&sha256_once, fetch_sha256);
    if (sha256_ctx == NULL)
        sha256_ctx = EVP_MD_CTX_new();
    unsigned int mdlen;
    if (sha256 == NULL || sha256_ctx == NULL || EVP_DigestInit_ex(sha256_ctx, sha256, NULL) != 1 ||
        EVP_DigestUpdate(sha256_ctx, body, len) != 1 || EVP_DigestFinal_ex(sha256_ctx, md, &mdlen) != 1)
        gw_fatal("SHA-256 is not available from OpenSSL"); /* the audit record cannot be written without it */
}

void gw_auditlog_prepare(gw_request_state_t *state, const gw_result_t *result)
{
    h2o_req_t *req = state->req;
    state->audited = 1;
    state->decision = result != NULL ? result->decision : GW_DECISION_PASS_THROUGH;
    state->bytes_in = req->entity.base != NULL ? req->entity.len : 0;
    /* the body is hashed now: by the end of the request its buffer may hold the next request */
    unsigned char md[SHA256_DIGEST_LENGTH];
    hash_body(req->entity.base != NULL ? req->entity.base : "", state->bytes_in, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
        state->body_sha256[2 * i] = hex_digits[md[i] >> 4];
        state->body_sha256[2 * i + 1] = hex_digits[md[i] & 15];
    }
    state->body_sha256[2 * SHA256_DIGEST_LENGTH] = '\0';
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

/* ---- formatting without printf: the record is built on every request ------------------------------ */

static void append_lit(gw_buf_t *out, const char *s, size_t len)
{
    gw_buf_append(out, s, len);
}
#define APPEND_LIT(out, s) append_lit((out), (s), sizeof(s) - 1)

static void append_uint(gw_buf_t *out, uint64_t n)
{
    char digits[20];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    gw_buf_append(out, digits + i, sizeof(digits) - i);
}

/* n digits, zero-padded */
static void append_padded(gw_buf_t *out, unsigned long n, size_t width)
{
    char digits[8];
    for (size_t i = width; i-- > 0; n /= 10)
        digits[i] = (char)('0' + n % 10);
    gw_buf_append(out, digits, width);
}

/* nanoseconds as milliseconds with three decimals, rounded to the microsecond */
static void append_ms(gw_buf_t *out, uint64_t ns)
{
    uint64_t us = (ns + 500) / 1000;
    append_uint(out, us / 1000);
    gw_buf_append(out, ".", 1);
    append_padded(out, (unsigned long)(us % 1000), 3);
}

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ", with the part up to the seconds formatted once a second per thread */
static void append_time(gw_buf_t *out, const struct timeval *tv)
{
    static __thread time_t cached_sec = -1;
    static __thread char cached[24];
    if (tv->tv_sec != cached_sec) {
        struct tm tm;
        time_t sec = tv->tv_sec;
        gmtime_r(&sec, &tm);
        if (strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            cached[0] = '\0';
        cached_sec = tv->tv_sec;
    }
    gw_buf_append(out, "\"", 1);
    gw_buf_appendz(out, cached);
    gw_buf_append(out, ".", 1);
    append_padded(out, (unsigned long)tv->tv_usec, 6);
    APPEND_LIT(out, "Z\"");
}

static void append_ipv4(gw_buf_t *out, const struct in_addr *addr)
{
    const unsigned char *b = (const unsigned char *)&addr->s_addr; /* network order: the first octet first */
    for (int i = 0; i < 4; ++i) {
        if (i != 0)
            gw_buf_append(out, ".", 1);
        append_uint(out, b[i]);
    }
}

static void append_client(gw_buf_t *out, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len != 0 && ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        gw_buf_append(out, "\"", 1);
        append_ipv4(out, &sin->sin_addr);
        gw_buf_append(out, ":", 1);
        append_uint(out, ntohs(sin->sin_port));
        gw_buf_append(out, "\"", 1);
    } else if (len != 0 && ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        char host[INET6_ADDRSTRLEN] = "";
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        APPEND_LIT(out, "\"[");
        gw_buf_appendz(out, host);
        APPEND_LIT(out, "]:");
        append_uint(out, ntohs(sin6->sin6_port));
        gw_buf_append(out, "\"", 1);
    } else {
        APPEND_LIT(out, "null");
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

static void append_record(gw_buf_t *line, gw_request_state_t *state)
{
    h2o_req_t *req = state->req;
    const gw_config_t *config = state->runtime->config;
    APPEND_LIT(line, "{\"time\":");
    append_time(line, &req->timestamps.request_begin_at);
    ssize_t id = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    APPEND_LIT(line, ",\"request_id\":");
    if (id != -1)
        gw_buf_append_json_string(line, req->headers.entries[id].value.base, req->headers.entries[id].value.len, 128);
    else
        APPEND_LIT(line, "null");
    APPEND_LIT(line, ",\"client\":");
    append_client(line, req);
    APPEND_LIT(line, ",\"method\":");
    gw_buf_append_json_string(line, req->input.method.base, req->input.method.len, 32);
    APPEND_LIT(line, ",\"path\":");
    gw_buf_append_json_string(line, req->input.path.base, req->input.path.len, GW_AUDIT_PATH_MAX);
    APPEND_LIT(line, ",\"route\":");
    if (state->route != NULL) { /* from the rules: trusted */
        gw_buf_append(line, "\"", 1);
        gw_buf_appendz(line, state->route->method);
        gw_buf_append(line, " ", 1);
        gw_buf_appendz(line, state->route->path);
        gw_buf_append(line, "\"", 1);
    } else {
        APPEND_LIT(line, "null");
    }
    APPEND_LIT(line, ",\"rules\":\"");
    gw_buf_appendz(line, gw_ruleset_digest(state->runtime->rules));
    APPEND_LIT(line, "\",\"mode\":\"");
    gw_buf_appendz(line, state->decision == GW_DECISION_REJECT   ? "enforce"
                         : state->decision == GW_DECISION_REPORT ? "report"
                                                                 : gw_mode_name(config->policy.mode));
    APPEND_LIT(line, "\",\"decision\":\"");
    gw_buf_appendz(line, decision_name(state->decision));
    APPEND_LIT(line, "\",\"violations\":");
    if (state->violations.len != 0)
        gw_buf_append(line, state->violations.base, state->violations.len);
    else
        APPEND_LIT(line, "[]");
    APPEND_LIT(line, ",\"status\":");
    append_uint(line, (uint64_t)(req->res.status > 0 ? req->res.status : 0));
    APPEND_LIT(line, ",\"upstream_status\":");
    if (state->upstream_status != 0) {
        append_uint(line, (uint64_t)state->upstream_status);
        APPEND_LIT(line, ",\"upstream_ms\":");
        append_ms(line, state->upstream_ns);
    } else {
        APPEND_LIT(line, "null,\"upstream_ms\":null");
    }
    if (state->fault != NULL) {
        APPEND_LIT(line, ",\"fault\":\"");
        gw_buf_appendz(line, state->fault);
        gw_buf_append(line, "\"", 1);
    }
    APPEND_LIT(line, ",\"total_ms\":");
    append_ms(line, gw_server_elapsed_ns(&req->timestamps.request_begin_at));
    APPEND_LIT(line, ",\"bytes_in\":");
    append_uint(line, state->bytes_in);
    APPEND_LIT(line, ",\"bytes_out\":");
    append_uint(line, req->bytes_sent);
    APPEND_LIT(line, ",\"body_sha256\":\"");
    gw_buf_append(line, state->body_sha256, 2 * SHA256_DIGEST_LENGTH);
    APPEND_LIT(line, "\"}\n");
}

void gw_auditlog_write(gw_server_t *server, gw_request_state_t *state)
{
    if (!state->audited || server == NULL || server->audit == NULL)
        return;
    append_record(&batch, state);
    ++batch_records;
    if (batch.len >= GW_AUDIT_BATCH_BYTES)
        gw_auditlog_flush(server, 0);
}

void gw_auditlog_flush(gw_server_t *server, int last)
{
    if (batch.len != 0 && server != NULL && server->audit != NULL &&
        gw_audit_write(server->audit, batch.base, batch.len) != 0)
        for (size_t i = 0; i < batch_records; ++i)
            gw_metrics_count_audit_dropped();
    batch.len = 0;
    batch_records = 0;
    if (last) {
        gw_buf_dispose(&batch);
        EVP_MD_CTX_free(sha256_ctx);
        sha256_ctx = NULL;
    }
}

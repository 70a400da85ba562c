/* The admin listener: separate from traffic, loopback by default. */
#include <string.h>
#include "buf.h"
#include "metrics.h"
#include "server.h"

typedef struct st_gw_admin_handler_t {
    h2o_handler_t super;
    gw_server_t *server;
} gw_admin_handler_t;

static void send_text(h2o_req_t *req, int status, const char *reason, const char *body)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = strlen(body);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, strlen(body));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/-/healthz"))) {
        send_text(req, 200, "OK", "ok\n");
        return 0;
    }
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/-/readyz"))) {
        /* ready once a rule set is loaded: the server never runs without one */
        gw_server_t *server = gw_server_running();
        if (server->audit != NULL && !gw_audit_healthy(server->audit)) {
            send_text(req, 503, "Service Unavailable", "not ready: the audit sink is failing\n");
            return 0;
        }
        /* the admin listener runs on worker 0: its runtime is the one it judges by */
        gw_ruleset_t *rules = gw_server_current_runtime()->rules;
        char body[100];
        snprintf(body, sizeof(body), "ready rules=%s\n", gw_ruleset_digest(rules));
        send_text(req, 200, "OK", body);
        return 0;
    }
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/-/metrics"))) {
        gw_buf_t text = GW_BUF_INIT;
        gw_metrics_render(&text);
        req->res.status = 200;
        req->res.reason = "OK";
        req->res.content_length = text.len;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
        h2o_send_inline(req, text.base, text.len);
        gw_buf_dispose(&text);
        return 0;
    }
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/-/rules"))) {
        /* the loaded rule set, as `crmgate rules show` prints it */
        gw_buf_t listing = GW_BUF_INIT;
        gw_ruleset_show(gw_server_current_runtime()->rules, &listing);
        send_text(req, 200, "OK", listing.base); /* h2o_send_inline copies the body */
        gw_buf_dispose(&listing);
        return 0;
    }
    send_text(req, 404, "Not Found", "not found: try /-/healthz, /-/readyz, /-/metrics or /-/rules\n");
    return 0;
}

void gw_admin_register(h2o_hostconf_t *hostconf, gw_server_t *server)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    gw_admin_handler_t *handler = (gw_admin_handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->server = server;
}

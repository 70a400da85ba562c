/* The YAML configuration: defaults, every key, and errors that point at the value. */
#include "../../gateway/config.h"
#include "check.h"

static gw_error_t err;

static gw_config_t *load(const char *yaml)
{
    gw_error_clear(&err);
    return gw_config_load_text("c.yaml", "/etc/crmgate", yaml, strlen(yaml), &err);
}

static void expect_error(const char *yaml, const char *want)
{
    gw_config_t *c = load(yaml);
    CHECK_REPORT(c == NULL && strstr(err.text, want) != NULL, "error for <%s> contains \"%s\" (got \"%s\")", yaml, want,
                 err.text);
    gw_config_destroy(c);
}

static void test_defaults(void)
{
    size_t len;
    const char *text = gw_config_default_text(&len);
    gw_error_clear(&err);
    gw_config_t *c = gw_config_load_text("<embedded default>", "", text, len, &err);
    CHECK_REPORT(c != NULL, "the embedded default loads (%s)", err.text);
    if (c == NULL)
        return;
    CHECK_STR_EQ(c->listen.host, "127.0.0.1");
    CHECK_INT_EQ(c->listen.port, 8080);
    CHECK_INT_EQ(c->admin.port, 9901);
    CHECK(c->admin_enabled);
    CHECK_INT_EQ(c->threads, 0);
    CHECK_STR_EQ(c->upstream_url, "http://127.0.0.1:8081");
    CHECK_INT_EQ(c->upstream_keepalive_ms, 2000);
    CHECK_INT_EQ(c->upstream_io_timeout_ms, 30000);
    CHECK(c->upstream_verify_peer);
    CHECK(c->upstream_ca_file == NULL && c->tls_cert_file == NULL);
    CHECK_INT_EQ(c->shutdown_timeout_ms, 10000);
    CHECK_INT_EQ(c->nrules, 1);
    CHECK_STR_EQ(c->rules[0], "rules");
    CHECK_INT_EQ(c->limits.max_body, 1024 * 1024);
    CHECK_INT_EQ(c->limits.max_depth, 32);
    CHECK_INT_EQ(c->limits.max_violations, 50);
    CHECK_INT_EQ(c->limits.max_framework_version, 9);
    CHECK_INT_EQ(c->limits.http2_resets_per_second, 100);
    CHECK_INT_EQ(c->limits.http2_pings_per_second, 50);
    CHECK_INT_EQ(c->limits.http2_settings_per_second, 50);
    CHECK(c->error_format == GW_ERRORS_ORACLE);
    gw_config_destroy(c);
    c = load("");
    CHECK(c != NULL && c->listen.port == 8080); /* an empty file means every default */
    gw_config_destroy(c);
}

static void test_keys(void)
{
    gw_config_t *c = load("listen: 0.0.0.0:80\nadmin: off\nthreads: 4\nshutdown-timeout: 2500ms\n"
                          "upstream:\n  url: https://crm.example.com\n  keepalive-timeout: 0\n  timeout: {io: 2m}\n"
                          "  ca-file: certs/ca.pem\n  verify-peer: off\n"
                          "tls: {cert: /t/c.pem, key: k.pem}\n"
                          "rules: [a.json, /abs/dir]\n"
                          "limits: {max-body: 512k, max-depth: 8, max-violations: 5, framework-version-max: 12,\n"
                          "          http2-resets-per-second: 0, http2-pings-per-second: 7, http2-settings-per-second: 9}\n"
                          "errors: {format: problem+json}\n");
    CHECK_REPORT(c != NULL, "every key loads (%s)", err.text);
    if (c == NULL)
        return;
    CHECK_INT_EQ(c->listen.port, 80);
    CHECK(!c->admin_enabled);
    CHECK_INT_EQ(c->threads, 4);
    CHECK_INT_EQ(c->shutdown_timeout_ms, 2500);
    CHECK_STR_EQ(c->upstream_url, "https://crm.example.com");
    CHECK_INT_EQ(c->upstream_keepalive_ms, 0);
    CHECK_INT_EQ(c->upstream_io_timeout_ms, 120000);
    CHECK_STR_EQ(c->upstream_ca_file, "/etc/crmgate/certs/ca.pem");
    CHECK(!c->upstream_verify_peer);
    CHECK_STR_EQ(c->tls_cert_file, "/t/c.pem");
    CHECK_STR_EQ(c->tls_key_file, "/etc/crmgate/k.pem");
    CHECK_INT_EQ(c->nrules, 2);
    CHECK_STR_EQ(c->rules[0], "/etc/crmgate/a.json"); /* relative to the file */
    CHECK_STR_EQ(c->rules[1], "/abs/dir");
    CHECK_INT_EQ(c->limits.max_body, 512 * 1024);
    CHECK_INT_EQ(c->limits.max_depth, 8);
    CHECK_INT_EQ(c->limits.max_violations, 5);
    CHECK_INT_EQ(c->limits.max_framework_version, 12);
    CHECK_INT_EQ(c->limits.http2_resets_per_second, 0);
    CHECK_INT_EQ(c->limits.http2_pings_per_second, 7);
    CHECK_INT_EQ(c->limits.http2_settings_per_second, 9);
    CHECK(c->error_format == GW_ERRORS_PROBLEM_JSON);
    gw_config_destroy(c);
    c = load("upstream: http://10.0.0.1:8080\nlisten: \"[::1]:8080\"\n");
    CHECK(c != NULL && strcmp(c->upstream_url, "http://10.0.0.1:8080") == 0 && strcmp(c->listen.host, "::1") == 0);
    gw_config_destroy(c);
}

static void test_errors(void)
{
    expect_error("listen: 127.0.0.1:8080\nlisen: x\n", "c.yaml:2:1: unknown key \"lisen\" (did you mean \"listen\"?)");
    expect_error("limits:\n  max-bdy: 1\n", "c.yaml:2:3: unknown key \"limits.max-bdy\" (did you mean \"limits.max-body\"?)");
    expect_error("zzz: 1\n", "unknown key \"zzz\" (known here: listen, admin, threads");
    expect_error("listen: 127.0.0.1:99999\n", "c.yaml:1:9: listen: \"127.0.0.1:99999\": the port must be a number from 0 to 65535");
    expect_error("listen: 8080\n", "is not HOST:PORT");
    expect_error("threads: 0\n", "c.yaml:1:10: threads must be \"auto\" or a number from 1 to 256");
    expect_error("upstream: ftp://x\n", "must be an http:// or https:// URL");
    expect_error("upstream: {timeout: {io: 10 s}}\n", "upstream.timeout.io: \"10 s\" is not a duration");
    expect_error("upstream: {timeout: {io: 0}}\n", "must be more than 0");
    expect_error("upstream: {timeout: {connect: 1s}}\n", "unknown key \"upstream.timeout.connect\"");
    expect_error("upstream: {verify-peer: maybe}\n", "upstream.verify-peer: \"maybe\" is not on or off");
    expect_error("tls: {cert: c.pem}\n", "tls: give both cert and key");
    expect_error("limits: {max-body: 1x}\n", "limits.max-body: \"1x\" must be a size from 1 to");
    expect_error("limits: {max-depth: 0}\n", "limits.max-depth: \"0\" must be a number from 1 to 1000");
    expect_error("limits: {max-depth: 1k}\n", "must be a number");
    expect_error("limits: {http2-resets-per-second: -1}\n", "limits.http2-resets-per-second: \"-1\" must be a number from 0 to 1000000");
    expect_error("errors: {format: xml}\n", "errors.format: \"xml\" is not \"oracle\" or \"problem+json\"");
    expect_error("listen: [a, b]\n", "c.yaml:1:9: listen: expected a single value, not a list");
    expect_error("limits: 5\n", "limits: expected a mapping");
    expect_error("listen: a:1\nlisten: b:2\n", "c.yaml:2:1: listen: duplicate key (first at line 1)");
    expect_error("listen: [unclosed\n", "c.yaml:2:1: YAML syntax error");
    expect_error("- a\n- b\n", "expected a mapping");
}

static void test_policy_and_audit(void)
{
    gw_config_t *c = load("mode: report\nmodes: {maxLength: enforce, lookup: off}\n"
                          "field-modes: {\"/a/*/b\": off, \"/c\": enforce}\nreport-header: on\n"
                          "audit: {path: log/audit.log, fsync: always, fsync-interval: 250ms, on-failure: fail-open,"
                          " all-routes: on, queue: 64KiB}\n");
    CHECK_REPORT(c != NULL, "policy and audit keys load (%s)", err.text);
    if (c == NULL)
        return;
    CHECK(c->policy.mode == GW_MODE_REPORT);
    CHECK_INT_EQ(c->policy.kind_modes[GW_KIND_MAX_LENGTH], GW_MODE_ENFORCE);
    CHECK_INT_EQ(c->policy.kind_modes[GW_KIND_LOOKUP], GW_MODE_OFF);
    CHECK_INT_EQ(c->policy.kind_modes[GW_KIND_TYPE], GW_MODE_UNSET);
    CHECK_INT_EQ(c->policy.npointers, 2);
    CHECK(gw_policy_pointer_mode(&c->policy, "/a/0/b", GW_MODE_ENFORCE) == GW_MODE_OFF);
    CHECK(gw_policy_pointer_mode(&c->policy, "/a/12/b", GW_MODE_ENFORCE) == GW_MODE_OFF);
    CHECK(gw_policy_pointer_mode(&c->policy, "/a/0/b/x", GW_MODE_REPORT) == GW_MODE_REPORT); /* whole pointers only */
    CHECK(gw_policy_pointer_mode(&c->policy, "/a/0", GW_MODE_REPORT) == GW_MODE_REPORT);
    CHECK(gw_policy_pointer_mode(&c->policy, "/c", GW_MODE_REPORT) == GW_MODE_ENFORCE);
    CHECK(c->report_header);
    CHECK_STR_EQ(c->audit.path, "/etc/crmgate/log/audit.log");
    CHECK(c->audit.fsync == GW_FSYNC_ALWAYS);
    CHECK_INT_EQ(c->audit.fsync_interval_ms, 250);
    CHECK(c->audit.fail_open && c->audit.all_routes);
    CHECK_INT_EQ(c->audit.queue_bytes, 64 * 1024);
    gw_config_destroy(c);
    c = load("audit: {path: off}\n");
    CHECK(c != NULL && c->audit.path == NULL);
    gw_config_destroy(c);
    c = load("");
    CHECK(c != NULL && strcmp(c->audit.path, "-") == 0 && !c->audit.fail_open && c->audit.fsync == GW_FSYNC_INTERVAL);
    gw_config_destroy(c);
    expect_error("mode: strict\n", "mode: \"strict\" is not enforce, report or off");
    expect_error("modes: {maxLenght: report}\n", "modes: unknown rule kind \"maxLenght\"");
    expect_error("modes: {structure: report}\n", "unknown rule kind \"structure\"");
    expect_error("field-modes: {Description: report}\n", "is not a JSON pointer");
    expect_error("audit: {fsync: sometimes}\n", "audit.fsync: \"sometimes\" is not always, interval or never");
    expect_error("audit: {on-failure: ignore}\n", "is not fail-closed or fail-open");
    expect_error("audit: {queue: 1}\n", "audit.queue: \"1\" must be a size from 4096");
    expect_error("audit: {pth: x}\n", "did you mean \"audit.path\"?");
}

static void test_parsers(void)
{
    gw_hostport_t hp;
    gw_error_clear(&err);
    CHECK(gw_config_parse_hostport("127.0.0.1:0", &hp, &err) == 0 && hp.port == 0);
    CHECK(gw_config_parse_hostport(":80", &hp, &err) != 0);
    CHECK(gw_config_parse_hostport("h:-1", &hp, &err) != 0);
    CHECK(gw_config_parse_hostport("h:", &hp, &err) != 0);
    unsigned n;
    CHECK(gw_config_parse_threads("auto", &n, &err) == 0 && n == 0);
    CHECK(gw_config_parse_threads("257", &n, &err) != 0);
    CHECK(gw_config_parse_upstream("http:///x", &err) != 0);
}

int main(void)
{
    test_defaults();
    test_keys();
    test_errors();
    test_policy_and_audit();
    test_parsers();
    return check_done();
}

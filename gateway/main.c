/* crmgate: command line, configuration, and hand-over to the server. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "config.h"
#include "offline.h"
#include "rules.h"
#include "server.h"

static void usage(FILE *out)
{
    fputs("usage: crmgate [-c FILE] [-t] [--listen HOST:PORT] [--upstream URL]\n"
          "               [--admin HOST:PORT|off] [--threads N|auto] [--rules PATH] [--audit PATH|-|off]\n"
          "       crmgate validate [--rules PATH] [--method M] [--path P] [--framework-version N] FILE|-\n"
          "       crmgate rules show [--rules PATH]\n"
          "       crmgate rules import-describe DESCRIBE.json [--lookups LOOKUPS.json] [-o FILE]\n"
          "       crmgate --version | --help\n"
          "\n"
          "  -c, --config FILE   configuration (default: the embedded conf/crmgate.yaml)\n"
          "  -t, --test          check the configuration and the rules, then exit (0 ok, 1 not)\n"
          "      --listen H:P    traffic listener (overrides listen:)\n"
          "      --upstream URL  the CRM (overrides upstream.url:)\n"
          "      --admin H:P     admin listener, or off (overrides admin:)\n"
          "      --threads N     worker threads, or auto (overrides threads:)\n"
          "      --rules PATH    a rule file or directory (overrides rules:)\n"
          "      --audit PATH    the audit trail: a file, - (standard output) or off (overrides audit.path:)\n"
          "\n"
          "Signals: SIGTERM/SIGINT stop accepting, finish requests in flight, flush the audit trail and exit 0\n"
          "(a second one exits at once); SIGHUP reloads configuration and rules; SIGUSR1 reopens the audit file.\n"
          "Exit status: 0 ok, 1 configuration or rules error, 2 usage error.\n",
          out);
}

typedef struct st_overrides_t {
    const char *config_path;
    const char *listen, *upstream, *admin, *threads, *rules, *audit;
} overrides_t;

static int apply_overrides(gw_config_t *config, const overrides_t *o, gw_error_t *err_out)
{
    gw_error_t err;
    gw_error_clear(&err);
    if (o->listen != NULL && gw_config_parse_hostport(o->listen, &config->listen, &err) != 0)
        goto Error;
    if (o->admin != NULL) {
        config->admin_enabled = strcmp(o->admin, "off") != 0;
        if (config->admin_enabled && gw_config_parse_hostport(o->admin, &config->admin, &err) != 0)
            goto Error;
    }
    if (o->threads != NULL && gw_config_parse_threads(o->threads, &config->threads, &err) != 0)
        goto Error;
    if (o->audit != NULL)
        gw_config_set_audit_path(config, o->audit);
    if (o->upstream != NULL) {
        if (gw_config_parse_upstream(o->upstream, &err) != 0)
            goto Error;
        gw_config_set_string(&config->upstream_url, o->upstream);
    }
    return 0;
Error:
    gw_error_set(err_out, "command line: %s", err.text);
    return -1;
}

/* The configuration as the command line asks: the file (or the embedded default) with the overrides. */
static gw_config_t *load_configuration(void *ctx, gw_error_t *err)
{
    const overrides_t *o = ctx;
    gw_config_t *config;
    if (o->config_path != NULL) {
        config = gw_config_load_file(o->config_path, err);
    } else {
        size_t len;
        const char *text = gw_config_default_text(&len);
        config = gw_config_load_text("<embedded default>", "", text, len, err);
    }
    if (config == NULL)
        return NULL;
    if (o->rules != NULL)
        gw_config_set_rules(config, o->rules);
    if (apply_overrides(config, o, err) != 0) {
        gw_config_destroy(config);
        return NULL;
    }
    return config;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "validate") == 0)
        return gw_offline_validate(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "rules") == 0)
        return gw_offline_rules(argc - 1, argv + 1);

    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                             {"test", no_argument, NULL, 't'},
                                             {"listen", required_argument, NULL, 'L'},
                                             {"upstream", required_argument, NULL, 'U'},
                                             {"admin", required_argument, NULL, 'A'},
                                             {"threads", required_argument, NULL, 'T'},
                                             {"rules", required_argument, NULL, 'R'},
                                             {"audit", required_argument, NULL, 'a'},
                                             {"version", no_argument, NULL, 'V'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    static overrides_t overrides; /* read again by every reload */
    int test_only = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:th", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            overrides.config_path = optarg;
            break;
        case 't':
            test_only = 1;
            break;
        case 'L':
            overrides.listen = optarg;
            break;
        case 'U':
            overrides.upstream = optarg;
            break;
        case 'A':
            overrides.admin = optarg;
            break;
        case 'T':
            overrides.threads = optarg;
            break;
        case 'R':
            overrides.rules = optarg;
            break;
        case 'a':
            overrides.audit = optarg;
            break;
        case 'V':
            printf("crmgate %s (h2o %s, jansson %s)\n", CRMGATE_VERSION, H2O_VERSION, JANSSON_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "crmgate: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    gw_error_t err;
    gw_error_clear(&err);
    gw_config_t *config = load_configuration(&overrides, &err);
    if (config == NULL) {
        fprintf(stderr, "crmgate: %s\n", err.text);
        return 1;
    }
    gw_ruleset_t *rules = gw_ruleset_load((const char *const *)config->rules, config->nrules, &config->policy, &err);
    if (rules == NULL) {
        fprintf(stderr, "crmgate: %s\n", err.text);
        gw_config_destroy(config);
        return 1;
    }
    int status;
    if (test_only && gw_server_check(config) != 0) {
        fprintf(stderr, "crmgate: configuration %s is not usable (see above)\n", config->source);
        status = 1;
    } else if (test_only) {
        printf("crmgate: configuration %s OK; rules %s: %zu routes from %zu file(s)\n", config->source,
               gw_ruleset_digest(rules), gw_ruleset_route_count(rules), gw_ruleset_file_count(rules));
        status = 0;
    } else {
        return gw_server_run(config, rules, load_configuration, &overrides); /* owns config and rules now */
    }
    gw_ruleset_release(rules);
    gw_config_destroy(config);
    return status;
}

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "config.h"
#include "evaluate.h"
#include "offline.h"
#include "render.h"
#include "rules.h"

#define GW_DEFAULT_VALIDATE_PATH "/crmRestApi/resources/11.13.18.05/interactions"

struct st_gw_config_t *gw_offline_load_config(const char *config_path, const char *rules_path)
{
    gw_error_t err;
    gw_error_clear(&err);
    gw_config_t *config;
    if (config_path != NULL) {
        config = gw_config_load_file(config_path, &err);
    } else {
        size_t len;
        const char *text = gw_config_default_text(&len);
        config = gw_config_load_text("<embedded default>", "", text, len, &err);
    }
    if (config == NULL) {
        fprintf(stderr, "crmgate: %s\n", err.text);
        return NULL;
    }
    if (rules_path != NULL)
        gw_config_set_rules(config, rules_path);
    return config;
}

static int read_all(const char *path, gw_buf_t *out)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "crmgate validate: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0)
        gw_buf_append(out, chunk, n);
    int failed = ferror(fp);
    if (fp != stdin)
        fclose(fp);
    if (failed) {
        fprintf(stderr, "crmgate validate: %s: read error\n", path);
        return -1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: crmgate validate [-c FILE] [--rules PATH] [--method M] [--path P]\n"
          "                        [--framework-version N] [--content-type T] FILE|-\n"
          "Validates a payload with the engine the gateway uses and prints the error document\n"
          "it would send. Exit status: 0 valid, 1 rejected, 2 usage or rules error.\n",
          out);
}

int gw_offline_validate(int argc, char **argv)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                             {"rules", required_argument, NULL, 'r'},
                                             {"method", required_argument, NULL, 'm'},
                                             {"path", required_argument, NULL, 'p'},
                                             {"framework-version", required_argument, NULL, 'f'},
                                             {"content-type", required_argument, NULL, 'T'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *rules_path = NULL, *method = "POST", *path = GW_DEFAULT_VALIDATE_PATH;
    const char *version = NULL, *content_type = "application/json";
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'r':
            rules_path = optarg;
            break;
        case 'm':
            method = optarg;
            break;
        case 'p':
            path = optarg;
            break;
        case 'f':
            version = optarg;
            break;
        case 'T':
            content_type = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "crmgate validate: give exactly one payload file, or - for standard input\n");
        usage(stderr);
        return 2;
    }
    gw_config_t *config = gw_offline_load_config(config_path, rules_path);
    if (config == NULL)
        return 2;
    gw_error_t err;
    gw_error_clear(&err);
    gw_ruleset_t *rules = gw_ruleset_load((const char *const *)config->rules, config->nrules, &err);
    gw_buf_t body = GW_BUF_INIT;
    int status = 2;
    if (rules == NULL) {
        fprintf(stderr, "crmgate: %s\n", err.text);
    } else if (read_all(argv[optind], &body) == 0) {
        gw_request_t req = {.method = method, .method_len = strlen(method), .path = path, .path_len = strlen(path),
                            .content_type = {content_type, strlen(content_type), 1},
                            .body = body.base != NULL ? body.base : "", .body_len = body.len};
        if (version != NULL)
            req.framework_version = (gw_header_value_t){version, strlen(version), 1};
        gw_evaluator_t ev;
        gw_evaluator_init(&ev, &config->limits);
        const gw_route_t *route = gw_evaluate_route(&ev, rules, &req);
        if (route == NULL) {
            fprintf(stderr, "crmgate validate: no rule matches %s %s: the gateway would forward it unvalidated\n",
                    method, path);
        } else {
            gw_result_t result;
            gw_evaluate(&ev, route, &req, &result);
            if (result.decision == GW_DECISION_REJECT) {
                gw_rendered_t rendered;
                gw_render_rejection(&result, config->error_format, "offline", &rendered);
                printf("HTTP %d %s\nContent-Type: %s\n\n", result.status, gw_status_title(result.status),
                       rendered.content_type);
                fwrite(rendered.body.base, 1, rendered.body.len, stdout);
                gw_buf_dispose(&rendered.body);
                status = 1;
            } else {
                fprintf(stderr, "valid: %s %s matches route %s %s (schema %s)", method, path, route->method,
                        route->path, route->schema->name);
                if (result.decision == GW_DECISION_REPORT)
                    fprintf(stderr, "; %zu violation(s) in report mode would be recorded", result.violations.total);
                fputc('\n', stderr);
                status = 0;
            }
        }
        gw_evaluator_dispose(&ev);
    }
    gw_buf_dispose(&body);
    gw_ruleset_release(rules);
    gw_config_destroy(config);
    return status;
}

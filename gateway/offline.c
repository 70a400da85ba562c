#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "config.h"
#include "describe.h"
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
        fprintf(stderr, "crmgate: %s: %s\n", path, strerror(errno));
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
        fprintf(stderr, "crmgate: %s: read error\n", path);
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
    gw_ruleset_t *rules = gw_ruleset_load((const char *const *)config->rules, config->nrules, &config->policy, &err);
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
        ev.policy = &config->policy;
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

/* ---- crmgate rules ------------------------------------------------------ */

/* Writes text to path through a temporary file and a rename: a reader never sees half a file,
 * and a failure leaves nothing behind. */
static int write_atomically(const char *path, const gw_buf_t *text)
{
    gw_buf_t tmp = GW_BUF_INIT;
    gw_buf_printf(&tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *fp = fopen(tmp.base, "wb");
    int ok = fp != NULL && fwrite(text->base, 1, text->len, fp) == text->len && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int saved = errno;
    if (fp != NULL && fclose(fp) != 0 && ok)
        ok = 0, saved = errno;
    if (ok && rename(tmp.base, path) != 0)
        ok = 0, saved = errno;
    if (!ok) {
        fprintf(stderr, "crmgate: %s: cannot write: %s\n", path, strerror(saved));
        unlink(tmp.base);
    }
    gw_buf_dispose(&tmp);
    return ok ? 0 : -1;
}

static void rules_usage(FILE *out)
{
    fputs("usage: crmgate rules show [-c FILE] [--rules PATH]\n"
          "       crmgate rules import-describe DESCRIBE.json [--lookups LOOKUPS.json] [-o FILE]\n"
          "show: prints the compiled rule set (routes, schemas, fields and their constraints) and its digest.\n"
          "import-describe: turns the output of GET .../describe into a rule file (stdout, or FILE).\n",
          out);
}

static int rules_show(int argc, char **argv)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                             {"rules", required_argument, NULL, 'r'},
                                             {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *rules_path = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:", options, NULL)) != -1) {
        if (opt == 'c')
            config_path = optarg;
        else if (opt == 'r')
            rules_path = optarg;
        else
            return rules_usage(stderr), 2;
    }
    if (optind != argc)
        return rules_usage(stderr), 2;
    gw_config_t *config = gw_offline_load_config(config_path, rules_path);
    if (config == NULL)
        return 1;
    gw_error_t err;
    gw_error_clear(&err);
    gw_ruleset_t *rules = gw_ruleset_load((const char *const *)config->rules, config->nrules, &config->policy, &err);
    int status = 1;
    if (rules == NULL) {
        fprintf(stderr, "crmgate: %s\n", err.text);
    } else {
        gw_buf_t out = GW_BUF_INIT;
        gw_ruleset_show(rules, &out);
        fwrite(out.base, 1, out.len, stdout);
        gw_buf_dispose(&out);
        gw_ruleset_release(rules);
        status = 0;
    }
    gw_config_destroy(config);
    return status;
}

static int rules_import(int argc, char **argv)
{
    static const struct option options[] = {{"lookups", required_argument, NULL, 'l'},
                                             {"output", required_argument, NULL, 'o'},
                                             {NULL, 0, NULL, 0}};
    const char *lookups_path = NULL, *output = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:", options, NULL)) != -1) {
        if (opt == 'l')
            lookups_path = optarg;
        else if (opt == 'o')
            output = optarg;
        else
            return rules_usage(stderr), 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "crmgate rules import-describe: give exactly one describe document\n");
        return rules_usage(stderr), 2;
    }
    gw_buf_t describe = GW_BUF_INIT, lookups = GW_BUF_INIT, out = GW_BUF_INIT;
    gw_error_t err;
    gw_error_clear(&err);
    int status = 1;
    if (read_all(argv[optind], &describe) != 0 || (lookups_path != NULL && read_all(lookups_path, &lookups) != 0))
        goto Exit;
    if (gw_describe_import(argv[optind], describe.base != NULL ? describe.base : "", describe.len, lookups_path,
                           lookups_path != NULL ? (lookups.base != NULL ? lookups.base : "") : NULL, lookups.len, &out,
                           &err) != 0) {
        fprintf(stderr, "crmgate: %s\n", err.text);
        goto Exit;
    }
    if (output == NULL || strcmp(output, "-") == 0) {
        fwrite(out.base, 1, out.len, stdout);
        status = fflush(stdout) == 0 ? 0 : 1;
    } else if (write_atomically(output, &out) == 0) {
        fprintf(stderr, "crmgate: wrote %s; review it with: crmgate rules show --rules %s\n", output, output);
        status = 0;
    }
Exit:
    gw_buf_dispose(&describe);
    gw_buf_dispose(&lookups);
    gw_buf_dispose(&out);
    return status;
}

int gw_offline_rules(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "show") == 0)
        return rules_show(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "import-describe") == 0)
        return rules_import(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return rules_usage(stdout), 0;
    rules_usage(stderr);
    return 2;
}

/* Commands that run the validation engine without serving: `crmgate validate` and `crmgate rules`. */
#ifndef GW_OFFLINE_H
#define GW_OFFLINE_H

/** `crmgate validate ...` (argv[0] is "validate"). Exit status: 0 valid, 1 invalid, 2 usage or rules error. */
int gw_offline_validate(int argc, char **argv);

/** `crmgate rules show|import-describe ...` (argv[0] is "rules"). Exit status: 0 ok, 1 bad input, 2 usage error. */
int gw_offline_rules(int argc, char **argv);

/** Loads -c FILE (or the embedded default) and applies --rules; shared by the daemon and the offline commands. */
struct st_gw_config_t *gw_offline_load_config(const char *config_path, const char *rules_path);

#endif

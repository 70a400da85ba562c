/*
 * One request, judged: the shared entry point of the daemon, `crmgate
 * validate`, the case-folder driver and the fuzzers. Pure: no sockets, no h2o.
 *
 * Flow: route (method + normalised path) -> body size -> Content-Type ->
 * headers -> parse once with jansson (strict) -> validate -> decide.
 */
#ifndef GW_EVALUATE_H
#define GW_EVALUATE_H

#include <stddef.h>
#include "arena.h"
#include "rules.h"
#include "validate.h"

typedef struct st_gw_limits_t {
    size_t max_body;       /* bytes; over it: 413 */
    size_t max_depth;      /* nesting levels, the top-level object being 1 */
    size_t max_violations; /* stored per request (all are counted) */
    int max_framework_version;
    /* HTTP/2 control frames one connection may send per second (0: no limit); more close it */
    unsigned http2_resets_per_second, http2_pings_per_second, http2_settings_per_second;
} gw_limits_t;

#define GW_LIMITS_DEFAULT {1024 * 1024, 32, 50, 9, 100, 50, 50}

/* A header value as received; count is how many times the header appeared (0: absent). */
typedef struct st_gw_header_value_t {
    const char *base;
    size_t len;
    unsigned count;
} gw_header_value_t;

/* The parts of a request that crmgate judges. All borrowed from the caller. */
typedef struct st_gw_request_t {
    const char *method;
    size_t method_len;
    const char *path; /* the request target as sent: may hold a query and %-escapes */
    size_t path_len;
    gw_header_value_t content_type;
    gw_header_value_t upsert_mode;
    gw_header_value_t framework_version; /* REST-Framework-Version */
    gw_header_value_t accept;
    gw_header_value_t method_override; /* X-HTTP-Method-Override: the method the CRM will act on */
    const char *body;
    size_t body_len;
    int body_too_large; /* set when the transport stopped reading at the limit */
} gw_request_t;

typedef enum en_gw_decision_t {
    GW_DECISION_PASS_THROUGH, /* no route: forwarded without validation */
    GW_DECISION_FORWARD,      /* validated, no violation */
    GW_DECISION_REPORT,       /* violations, all in report mode: forwarded unchanged */
    GW_DECISION_REJECT        /* answered by crmgate with `status` */
} gw_decision_t;

typedef struct st_gw_result_t {
    gw_decision_t decision;
    int status; /* of the rejection; 0 otherwise */
    const gw_route_t *route;
    gw_violations_t violations;
    int framework_version; /* 1..max, or 1 when absent or invalid: selects the error format */
    int accepts_json;      /* Accept allows a JSON error document */
} gw_result_t;

/* Per-thread state: PCRE2 match data and limits, and the arena every result lives in. */
typedef struct st_gw_evaluator_t {
    gw_arena_t arena;
    pcre2_match_data *match_data;
    pcre2_match_context *match_context;
    gw_limits_t limits;
    const gw_policy_t *policy; /* the configuration's pointer-level modes; borrowed, may be NULL */
} gw_evaluator_t;

void gw_evaluator_init(gw_evaluator_t *ev, const gw_limits_t *limits);
void gw_evaluator_dispose(gw_evaluator_t *ev);
/** Releases the previous result's memory. Call before each request. */
void gw_evaluator_reset(gw_evaluator_t *ev);

/** The route of a request, or NULL: then it passes through unvalidated. */
const gw_route_t *gw_evaluate_route(gw_evaluator_t *ev, const gw_ruleset_t *rules, const gw_request_t *req);

/**
 * Judges a request on a route. The result (violations, pointers) lives in the
 * evaluator's arena until the next gw_evaluator_reset().
 */
/* A rejection with the one violation v (borrowed: it must outlive result), answered with status; the negotiation
 * fields are left at 0 for the caller. Used by refusals that never reach the validator. */
void gw_result_init_single(gw_result_t *result, gw_violation_t *v, int status);

void gw_evaluate(gw_evaluator_t *ev, const gw_route_t *route, const gw_request_t *req, gw_result_t *out);

/* Header checks, exposed for unit tests. Each returns 1 when the value is acceptable. */
int gw_content_type_is_json(const char *value, size_t len);
int gw_upsert_mode_is_valid(const char *value, size_t len);
/** Returns the version (1..max) or 0 when the value is not an integer in that range. */
int gw_framework_version_parse(const char *value, size_t len, int max);
int gw_accept_allows_json(const char *value, size_t len);

#endif

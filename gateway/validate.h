/*
 * The validator: a pure function of (compiled schema, parsed document) to a
 * list of violations. No I/O, no h2o; memory comes from the caller's arena.
 */
#ifndef GW_VALIDATE_H
#define GW_VALIDATE_H

#include <jansson.h>
#include "arena.h"
#include "rules.h"
#include "violation.h"

/* The violations of one evaluation. Items live in the arena of the evaluation. */
/* The largest limits.max-depth: the validator's path holds this many levels, and jansson parses 2048. */
#define GW_MAX_DEPTH_LIMIT 1000

typedef struct st_gw_violations_t {
    gw_violation_t *items;
    size_t count; /* stored, at most max */
    size_t total; /* found, including those over the cap */
    size_t max;
    size_t enforced; /* found with mode enforce (including over the cap) */
    int status;      /* of the rejection, from every enforced violation found: 413 over 415 over 400 */
    gw_arena_t *arena;
} gw_violations_t;

void gw_violations_init(gw_violations_t *list, gw_arena_t *arena, size_t max);
/**
 * Adds a violation (copied); returns the stored copy, or NULL when it is only
 * counted. When the list is full, an enforced violation takes the place of a
 * stored report-mode one: a rejection must show its reasons.
 */
gw_violation_t *gw_violations_add(gw_violations_t *list, const gw_violation_t *v);
/** Whether a violation of this mode would be stored (callers skip building its details otherwise). */
int gw_violations_has_room(const gw_violations_t *list, gw_mode_t mode);

typedef struct st_gw_validate_params_t {
    gw_operation_t operation;
    size_t max_depth; /* the top-level object is depth 1; at most GW_MAX_DEPTH_LIMIT */
    pcre2_match_data *match_data;
    pcre2_match_context *match_context;
    const gw_policy_t *policy; /* pointer-level modes; may be NULL */
} gw_validate_params_t;

/** Validates a parsed top-level object against a schema, adding to list. */
void gw_validate_document(const gw_schema_t *schema, const json_t *doc, const gw_validate_params_t *params,
                          gw_violations_t *list);

/** Checks an ISO 8601 date (YYYY-MM-DD) or date-time (with 'T', seconds, optional fraction and zone). */
int gw_is_iso8601(const char *s, size_t len, int with_time);

#endif

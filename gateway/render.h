/*
 * Error documents, in the format the client negotiated:
 *  - Oracle text (REST-Framework-Version 1-3 or absent): text/plain, one line per violation;
 *  - Oracle JSON (version 4+ and Accept allows JSON): application/vnd.oracle.adf.error+json;
 *  - RFC 9457 problem+json when the configuration says errors.format: problem+json.
 * Pure: the caller sends what is rendered.
 */
#ifndef GW_RENDER_H
#define GW_RENDER_H

#include "buf.h"
#include "evaluate.h"

typedef enum en_gw_error_format_t { GW_ERRORS_ORACLE, GW_ERRORS_PROBLEM_JSON } gw_error_format_t;

typedef struct st_gw_rendered_t {
    gw_buf_t body; /* owned: release with gw_buf_dispose() */
    const char *content_type; /* static */
} gw_rendered_t;

/** Renders the rejection of a result (decision REJECT) into out. */
void gw_render_rejection(const gw_result_t *result, gw_error_format_t format, const char *request_id,
                         gw_rendered_t *out);

/** What a client negotiated for its error documents (from REST-Framework-Version and Accept). */
typedef struct st_gw_negotiation_t {
    int framework_version;
    int accepts_json;
} gw_negotiation_t;

/**
 * Renders an error of the CRM, or of the way to it, in the negotiated format.
 * code: GW_V_UPSTREAM_ERROR (the CRM answered `status` with a body that is not
 * Oracle JSON: `what` says what it was, `excerpt` quotes it, already escaped),
 * GW_V_UPSTREAM_UNREACHABLE (502; `excerpt` is the reason) or
 * GW_V_UPSTREAM_TIMEOUT (504; `timeout_ms` the limit).
 */
void gw_render_upstream_error(gw_violation_code_t code, int status, const char *what, const char *excerpt, int64_t timeout_ms,
                              gw_negotiation_t negotiation, gw_error_format_t format, const char *request_id,
                              gw_rendered_t *out);

/** Renders one violation as the whole error, with the given status (e.g. h2o's own refusals). */
void gw_render_violation(const gw_violation_t *v, int status, gw_negotiation_t negotiation, gw_error_format_t format,
                         const char *request_id, gw_rendered_t *out);

/**
 * Appends a short, escaped excerpt of an upstream error body: for HTML, its
 * text without tags, scripts and styles; white space is collapsed, and at most
 * max_chars characters are kept.
 */
void gw_upstream_excerpt(const char *body, size_t len, int is_html, size_t max_chars, gw_buf_t *out);

/** Appends the human-readable sentence for one violation. */
void gw_violation_detail(const gw_violation_t *v, gw_buf_t *out);

/** The reason phrase of a status, e.g. "Bad Request". */
const char *gw_status_title(int status);

#endif

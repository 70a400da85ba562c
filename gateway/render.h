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

/** Appends the human-readable sentence for one violation. */
void gw_violation_detail(const gw_violation_t *v, gw_buf_t *out);

/** The reason phrase of a status, e.g. "Bad Request". */
const char *gw_status_title(int status);

#endif

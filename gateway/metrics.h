/*
 * Counters and histograms, shared by all worker threads (relaxed atomics: each
 * one is independent and only summed when scraped), and their Prometheus text
 * exposition. Pure: no h2o, no sockets. One process-wide registry lives for
 * the process; route labels survive rule reloads.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "violation.h"

#define GW_METRICS_MAX_ROUTES 512 /* distinct route labels over the process's life; more share the last */

typedef enum en_gw_metric_decision_t {
    GW_METRIC_PASS_THROUGH,
    GW_METRIC_FORWARDED,
    GW_METRIC_REPORTED,
    GW_METRIC_REJECTED,
    GW_METRIC_DECISION__COUNT
} gw_metric_decision_t;

typedef enum en_gw_upstream_fault_t {
    GW_FAULT_UNREACHABLE, /* refused, reset, invalid response */
    GW_FAULT_TIMEOUT,
    GW_FAULT_CLOSED_MID_BODY,
    GW_FAULT__COUNT
} gw_upstream_fault_t;

/** The label index of a route ("POST /crmRestApi/resources/{version}/interactions"); thread-safe. */
unsigned gw_metrics_route_id(const char *label);

void gw_metrics_count_request(unsigned route_id, gw_metric_decision_t decision);
void gw_metrics_count_violation(gw_violation_code_t code, int enforced);
void gw_metrics_count_upstream_status(int status);
void gw_metrics_count_fault(gw_upstream_fault_t fault);
void gw_metrics_count_audit_record(void);
void gw_metrics_add_audit_wait(uint64_t nanoseconds);
void gw_metrics_count_audit_failure(void);
void gw_metrics_count_audit_dropped(void);
void gw_metrics_count_reload(int ok);
void gw_metrics_observe_request(uint64_t nanoseconds);
void gw_metrics_observe_upstream(uint64_t nanoseconds);

/** Appends the Prometheus text exposition (version 0.0.4) of every family. */
void gw_metrics_render(gw_buf_t *out);

/* For tests: the current value of a counter family (summed over labels when label is NULL). */
uint64_t gw_metrics_requests(const char *route_label, gw_metric_decision_t decision);

#endif

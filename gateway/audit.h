/*
 * The audit sink: one JSON object per line, appended by a writer thread.
 * Workers hand it finished lines; a full queue makes them wait (back-pressure,
 * counted) rather than lose a record. The sink is a file opened O_APPEND
 * (reopened on request, for log rotation) or standard output.
 *
 * When writing fails (disk full, file gone) the sink turns unhealthy, keeps
 * what it could not write and retries every second; the caller decides what
 * unhealthy means for traffic (fail-closed: refuse; fail-open: go on).
 * Ownership: gw_audit_open() returns the sink; gw_audit_close() flushes,
 * syncs and frees it.
 */
#ifndef GW_AUDIT_H
#define GW_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef enum en_gw_fsync_policy_t { GW_FSYNC_ALWAYS, GW_FSYNC_INTERVAL, GW_FSYNC_NEVER } gw_fsync_policy_t;

typedef struct st_gw_audit_options_t {
    const char *path; /* "-": standard output */
    gw_fsync_policy_t fsync;
    uint64_t fsync_interval_ms;
    size_t queue_bytes; /* records waiting to be written, at most */
} gw_audit_options_t;

typedef struct st_gw_audit_t gw_audit_t;

/** Opens the sink and starts its writer; NULL with err set if the file cannot be opened. */
gw_audit_t *gw_audit_open(const gw_audit_options_t *options, gw_error_t *err);
/**
 * Queues one record (a whole line, with its newline). Waits while the queue is
 * full and the sink healthy; returns 0 when queued, -1 when it had to be
 * dropped (the sink is failing and the queue is full), which is counted.
 */
int gw_audit_write(gw_audit_t *audit, const char *line, size_t len);
int gw_audit_healthy(gw_audit_t *audit);
/** Asks the writer to reopen the file (after logrotate moved it); safe from any thread. */
void gw_audit_reopen(gw_audit_t *audit);
/** Writes every queued record, syncs the file, stops the writer and frees the sink. */
void gw_audit_close(gw_audit_t *audit);

#endif

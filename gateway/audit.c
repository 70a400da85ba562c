#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "audit.h"
#include "buf.h"
#include "metrics.h"

#define RETRY_MS 1000

struct st_gw_audit_t {
    gw_audit_options_t options;
    char *path;
    int fd;
    int is_stdout;
    pthread_t writer;
    pthread_mutex_t lock;
    pthread_cond_t has_work;  /* records queued, a reopen asked, or stopping */
    pthread_cond_t has_room;  /* the writer took the queue */
    gw_buf_t queue;           /* under lock */
    int reopen_requested;     /* under lock */
    int stopping;             /* under lock */
    atomic_int healthy;
    /* the writer's own */
    gw_buf_t writing;
    uint64_t last_sync_ms;
    int unsynced;
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int open_sink(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* ---- the writer ----------------------------------------------------------- */

static void set_health(gw_audit_t *audit, int healthy, const char *why)
{
    if (atomic_exchange(&audit->healthy, healthy) == healthy)
        return;
    if (healthy)
        gw_log_info("audit sink %s: writing again", audit->path);
    else
        gw_log_error("AUDIT SINK FAILED: %s: %s; records are kept and retried every %d ms", audit->path, why, RETRY_MS);
}

/* A file that was removed (or moved away and replaced) no longer reaches the auditors: open the path again. */
static void reopen_if_gone(gw_audit_t *audit)
{
    struct stat open_st, path_st;
    if (audit->is_stdout || audit->fd == -1)
        return;
    if (fstat(audit->fd, &open_st) == 0 && open_st.st_nlink > 0 && stat(audit->path, &path_st) == 0 &&
        path_st.st_ino == open_st.st_ino && path_st.st_dev == open_st.st_dev)
        return;
    close(audit->fd);
    audit->fd = open_sink(audit->path);
}

static int write_all(gw_audit_t *audit)
{
    size_t done = 0;
    while (done < audit->writing.len) {
        ssize_t n = write(audit->fd, audit->writing.base + done, audit->writing.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* keep what was not written, for the retry */
            memmove(audit->writing.base, audit->writing.base + done, audit->writing.len - done);
            audit->writing.len -= done;
            set_health(audit, 0, n < 0 ? strerror(errno) : "nothing written");
            gw_metrics_count_audit_failure();
            return -1;
        }
        done += (size_t)n;
    }
    for (const char *p = audit->writing.base, *end = p + audit->writing.len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; ++p)
        gw_metrics_count_audit_record();
    audit->writing.len = 0;
    audit->unsynced = 1;
    return 0;
}

static void maybe_sync(gw_audit_t *audit, int force)
{
    uint64_t now = monotonic_ms();
    if (!audit->unsynced || audit->options.fsync == GW_FSYNC_NEVER)
        return;
    if (!force && audit->options.fsync == GW_FSYNC_INTERVAL && now - audit->last_sync_ms < audit->options.fsync_interval_ms)
        return;
    if (fsync(audit->fd) != 0 && errno != EINVAL && errno != EROFS) /* stdout may be a pipe: nothing to sync */
        set_health(audit, 0, strerror(errno));
    audit->last_sync_ms = now;
    audit->unsynced = 0;
}

/* Writes what it holds; returns -1 when the sink failed (what is left is retried later). */
static int flush_writing(gw_audit_t *audit)
{
    if (audit->writing.len == 0)
        return 0;
    reopen_if_gone(audit);
    if (audit->fd == -1) {
        audit->fd = open_sink(audit->path);
        if (audit->fd == -1) {
            set_health(audit, 0, strerror(errno));
            gw_metrics_count_audit_failure();
            return -1;
        }
    }
    if (write_all(audit) != 0)
        return -1;
    maybe_sync(audit, audit->options.fsync == GW_FSYNC_ALWAYS);
    set_health(audit, 1, NULL);
    return 0;
}

static void wait_for_work(gw_audit_t *audit, uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec += 1;
        until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&audit->has_work, &audit->lock, &until);
}

static void *writer_main(void *arg)
{
    gw_audit_t *audit = arg;
    int tries_at_exit = 0;
    pthread_mutex_lock(&audit->lock);
    for (;;) {
        int failing = audit->writing.len != 0; /* left over from a failed write: retried, not grown */
        if (!audit->stopping && !audit->reopen_requested && (failing || audit->queue.len == 0))
            wait_for_work(audit, failing ? RETRY_MS : audit->options.fsync_interval_ms);
        int reopen = audit->reopen_requested, stopping = audit->stopping;
        audit->reopen_requested = 0;
        if (!failing || stopping) {
            /* take the queue, after what was left over, so that records keep their order */
            gw_buf_append(&audit->writing, audit->queue.base, audit->queue.len);
            audit->queue.len = 0;
            pthread_cond_broadcast(&audit->has_room);
        }
        pthread_mutex_unlock(&audit->lock);

        if (reopen && !audit->is_stdout) {
            maybe_sync(audit, 1);
            if (audit->fd != -1)
                close(audit->fd);
            audit->fd = open_sink(audit->path);
            gw_log_info("audit sink %s reopened", audit->path);
        }
        int ok = flush_writing(audit) == 0;
        maybe_sync(audit, stopping);

        pthread_mutex_lock(&audit->lock);
        if (audit->stopping && audit->queue.len == 0 && audit->writing.len == 0)
            break;
        if (audit->stopping && !ok && ++tries_at_exit > 3) {
            gw_log_error("AUDIT: %zu bytes of records could not be written before exit",
                         audit->writing.len + audit->queue.len);
            break;
        }
    }
    pthread_mutex_unlock(&audit->lock);
    return NULL;
}

/* ---- the workers' side ------------------------------------------------------ */

gw_audit_t *gw_audit_open(const gw_audit_options_t *options, gw_error_t *err)
{
    gw_audit_t *audit = calloc(1, sizeof(*audit));
    if (audit == NULL || (audit->path = strdup(options->path)) == NULL)
        gw_fatal("out of memory");
    audit->options = *options;
    audit->options.path = audit->path;
    audit->is_stdout = strcmp(options->path, "-") == 0;
    audit->fd = audit->is_stdout ? STDOUT_FILENO : open_sink(options->path);
    if (audit->fd == -1) {
        gw_error_set(err, "%s: cannot open the audit file: %s", options->path, strerror(errno));
        free(audit->path);
        free(audit);
        return NULL;
    }
    atomic_init(&audit->healthy, 1);
    audit->last_sync_ms = monotonic_ms();
    pthread_mutex_init(&audit->lock, NULL);
    pthread_cond_init(&audit->has_work, NULL);
    pthread_cond_init(&audit->has_room, NULL);
    if (pthread_create(&audit->writer, NULL, writer_main, audit) != 0)
        gw_fatal("cannot start the audit writer");
    return audit;
}

int gw_audit_write(gw_audit_t *audit, const char *line, size_t len)
{
    pthread_mutex_lock(&audit->lock);
    if (audit->queue.len + len > audit->options.queue_bytes && audit->queue.len != 0) {
        if (!atomic_load(&audit->healthy)) {
            pthread_mutex_unlock(&audit->lock);
            return -1; /* a failing sink cannot make room: waiting would stop the gateway */
        }
        uint64_t started = monotonic_ns();
        while (audit->queue.len + len > audit->options.queue_bytes && audit->queue.len != 0 && atomic_load(&audit->healthy))
            pthread_cond_wait(&audit->has_room, &audit->lock);
        gw_metrics_add_audit_wait(monotonic_ns() - started);
        if (audit->queue.len + len > audit->options.queue_bytes && audit->queue.len != 0) {
            pthread_mutex_unlock(&audit->lock);
            return -1;
        }
    }
    gw_buf_append(&audit->queue, line, len);
    pthread_cond_signal(&audit->has_work);
    pthread_mutex_unlock(&audit->lock);
    return 0;
}

int gw_audit_healthy(gw_audit_t *audit)
{
    return atomic_load(&audit->healthy);
}

void gw_audit_reopen(gw_audit_t *audit)
{
    pthread_mutex_lock(&audit->lock);
    audit->reopen_requested = 1;
    pthread_cond_signal(&audit->has_work);
    pthread_mutex_unlock(&audit->lock);
}

void gw_audit_close(gw_audit_t *audit)
{
    pthread_mutex_lock(&audit->lock);
    audit->stopping = 1;
    pthread_cond_signal(&audit->has_work);
    pthread_mutex_unlock(&audit->lock);
    pthread_join(audit->writer, NULL);
    if (!audit->is_stdout && audit->fd != -1)
        close(audit->fd);
    gw_buf_dispose(&audit->queue);
    gw_buf_dispose(&audit->writing);
    pthread_mutex_destroy(&audit->lock);
    pthread_cond_destroy(&audit->has_work);
    pthread_cond_destroy(&audit->has_room);
    free(audit->path);
    free(audit);
}

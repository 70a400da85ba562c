/* The audit sink: order and completeness, rotation by reopen, and failure handling. */
#include <stdlib.h>
#include <unistd.h>
#include "../../gateway/audit.h"
#include "../../gateway/buf.h"
#include "check.h"

static size_t count_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    size_t n = 0;
    int c;
    if (fp == NULL)
        return 0;
    while ((c = fgetc(fp)) != EOF)
        n += c == '\n';
    fclose(fp);
    return n;
}

static void test_order_and_completeness(const char *dir)
{
    char path[256], line[64];
    snprintf(path, sizeof(path), "%s/a.log", dir);
    gw_error_t err;
    gw_error_clear(&err);
    /* a tiny queue: writers wait for the sink (back-pressure) instead of dropping */
    gw_audit_options_t o = {.path = path, .fsync = GW_FSYNC_INTERVAL, .fsync_interval_ms = 50, .queue_bytes = 4096};
    gw_audit_t *audit = gw_audit_open(&o, &err);
    CHECK_REPORT(audit != NULL, "open (%s)", err.text);
    if (audit == NULL)
        return;
    int dropped = 0;
    for (int i = 0; i < 20000; ++i) {
        int n = snprintf(line, sizeof(line), "{\"n\":%d}\n", i);
        dropped += gw_audit_write(audit, line, (size_t)n) != 0;
    }
    CHECK(gw_audit_healthy(audit));
    gw_audit_close(audit);
    CHECK_INT_EQ(dropped, 0);
    CHECK_INT_EQ(count_lines(path), 20000);
    FILE *fp = fopen(path, "r");
    int expected = 0, in_order = 1;
    while (fgets(line, sizeof(line), fp) != NULL) {
        int n;
        if (sscanf(line, "{\"n\":%d}", &n) != 1 || n != expected++)
            in_order = 0;
    }
    fclose(fp);
    CHECK(in_order);
    unlink(path);
}

static void test_reopen(const char *dir)
{
    char path[256], rotated[256];
    snprintf(path, sizeof(path), "%s/b.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/b.log.1", dir);
    gw_audit_options_t o = {.path = path, .fsync = GW_FSYNC_NEVER, .fsync_interval_ms = 1000, .queue_bytes = 1 << 20};
    gw_audit_t *audit = gw_audit_open(&o, NULL);
    gw_audit_write(audit, "one\n", 4);
    usleep(100 * 1000);
    rename(path, rotated);
    gw_audit_write(audit, "two\n", 4); /* the path no longer names the open file: the writer follows the path */
    usleep(100 * 1000);
    gw_audit_reopen(audit);
    usleep(100 * 1000);
    gw_audit_write(audit, "three\n", 6);
    gw_audit_close(audit);
    CHECK_INT_EQ(count_lines(rotated), 1);
    CHECK_INT_EQ(count_lines(path), 2);
    /* a removed file is noticed and opened again: records keep reaching the path */
    audit = gw_audit_open(&o, NULL);
    unlink(path);
    gw_audit_write(audit, "four\n", 5);
    gw_audit_close(audit);
    CHECK_INT_EQ(count_lines(path), 1);
    unlink(path);
    unlink(rotated);
}

static void test_failure(void)
{
    gw_audit_options_t o = {.path = "/dev/full", .fsync = GW_FSYNC_NEVER, .fsync_interval_ms = 1000, .queue_bytes = 4096};
    gw_audit_t *audit = gw_audit_open(&o, NULL);
    CHECK(audit != NULL);
    if (audit == NULL)
        return;
    char line[100];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\n';
    int dropped = 0;
    for (int i = 0; i < 500 && !dropped; ++i) {
        dropped = gw_audit_write(audit, line, sizeof(line)) != 0; /* never blocks on a failing sink */
        usleep(1000);
    }
    CHECK(!gw_audit_healthy(audit));
    CHECK(dropped); /* once the queue is full: dropped and counted, not waited for */
    gw_audit_close(audit);
    gw_error_t err;
    gw_error_clear(&err);
    gw_audit_options_t bad = {.path = "/nonexistent-dir/audit.log", .queue_bytes = 4096, .fsync_interval_ms = 1000};
    CHECK(gw_audit_open(&bad, &err) == NULL);
    CHECK_CONTAINS(err.text, "/nonexistent-dir/audit.log: cannot open the audit file");
}

int main(void)
{
    char dir[] = "/tmp/crmgate-audit-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    test_order_and_completeness(dir);
    test_reopen(dir);
    test_failure();
    rmdir(dir);
    return check_done();
}

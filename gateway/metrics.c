#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include "metrics.h"

typedef atomic_uint_fast64_t counter_t;

/* Latency buckets, in seconds: upper bounds of the cumulative histogram. */
static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define NBUCKETS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

typedef struct st_histogram_t {
    counter_t buckets[NBUCKETS + 1]; /* the last one is +Inf */
    counter_t count;
    counter_t sum_ns;
} histogram_t;

static struct {
    pthread_mutex_t lock; /* route labels only */
    char *route_labels[GW_METRICS_MAX_ROUTES];
    atomic_uint nroutes;
    counter_t requests[GW_METRICS_MAX_ROUTES][GW_METRIC_DECISION__COUNT];
    counter_t violations[GW_V__COUNT][2];
    counter_t upstream_status[6]; /* 1xx..5xx; [0] other */
    counter_t faults[GW_FAULT__COUNT];
    counter_t audit_records, audit_wait_ns, audit_failures, audit_dropped;
    counter_t reloads[2];
    histogram_t request_latency, upstream_latency;
} registry = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void inc(counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(counter_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

unsigned gw_metrics_route_id(const char *label)
{
    pthread_mutex_lock(&registry.lock);
    unsigned n = atomic_load(&registry.nroutes), id;
    for (id = 0; id < n; ++id)
        if (strcmp(registry.route_labels[id], label) == 0)
            break;
    if (id == n) {
        if (n == GW_METRICS_MAX_ROUTES) {
            id = n - 1;
        } else {
            if ((registry.route_labels[n] = strdup(label)) == NULL)
                gw_fatal("out of memory");
            atomic_store(&registry.nroutes, n + 1);
        }
    }
    pthread_mutex_unlock(&registry.lock);
    return id;
}

void gw_metrics_count_request(unsigned route_id, gw_metric_decision_t decision)
{
    inc(&registry.requests[route_id < GW_METRICS_MAX_ROUTES ? route_id : GW_METRICS_MAX_ROUTES - 1][decision], 1);
}

void gw_metrics_count_violation(gw_violation_code_t code, int enforced)
{
    inc(&registry.violations[code][enforced ? 0 : 1], 1);
}

void gw_metrics_count_upstream_status(int status)
{
    inc(&registry.upstream_status[status >= 100 && status < 600 ? status / 100 : 0], 1);
}

void gw_metrics_count_fault(gw_upstream_fault_t fault)
{
    inc(&registry.faults[fault], 1);
}

void gw_metrics_count_audit_record(void)
{
    inc(&registry.audit_records, 1);
}

void gw_metrics_add_audit_wait(uint64_t nanoseconds)
{
    inc(&registry.audit_wait_ns, nanoseconds);
}

void gw_metrics_count_audit_failure(void)
{
    inc(&registry.audit_failures, 1);
}

void gw_metrics_count_audit_dropped(void)
{
    inc(&registry.audit_dropped, 1);
}

void gw_metrics_count_reload(int ok)
{
    inc(&registry.reloads[ok ? 0 : 1], 1);
}

static void observe(histogram_t *h, uint64_t ns)
{
    double seconds = (double)ns / 1e9;
    size_t i = 0;
    while (i < NBUCKETS && seconds > latency_bounds[i])
        ++i;
    inc(&h->buckets[i], 1); /* stored per bucket, made cumulative when rendered */
    inc(&h->count, 1);
    inc(&h->sum_ns, ns);
}

void gw_metrics_observe_request(uint64_t nanoseconds)
{
    observe(&registry.request_latency, nanoseconds);
}

void gw_metrics_observe_upstream(uint64_t nanoseconds)
{
    observe(&registry.upstream_latency, nanoseconds);
}

uint64_t gw_metrics_requests(const char *route_label, gw_metric_decision_t decision)
{
    uint64_t total = 0;
    unsigned n = atomic_load(&registry.nroutes);
    for (unsigned id = 0; id < n; ++id)
        if (route_label == NULL || strcmp(registry.route_labels[id], route_label) == 0)
            total += get(&registry.requests[id][decision]);
    return total;
}

/* ---- exposition ----------------------------------------------------------- */

/* Label values escape backslash, quote and newline (text format 0.0.4). */
static void append_label_value(gw_buf_t *out, const char *v)
{
    for (; *v != '\0'; ++v) {
        if (*v == '\\' || *v == '"')
            gw_buf_printf(out, "\\%c", *v);
        else if (*v == '\n')
            gw_buf_appendz(out, "\\n");
        else
            gw_buf_append(out, v, 1);
    }
}

static void family(gw_buf_t *out, const char *name, const char *type, const char *help)
{
    gw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_histogram(gw_buf_t *out, const char *name, const char *help, histogram_t *h)
{
    family(out, name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < NBUCKETS; ++i) {
        cumulative += get(&h->buckets[i]);
        gw_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, latency_bounds[i], (unsigned long long)cumulative);
    }
    cumulative += get(&h->buckets[NBUCKETS]);
    gw_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cumulative);
    gw_buf_printf(out, "%s_sum %.9f\n%s_count %llu\n", name, (double)get(&h->sum_ns) / 1e9, name,
                  (unsigned long long)cumulative);
}

void gw_metrics_render(gw_buf_t *out)
{
    static const char *decisions[] = {"pass-through", "forwarded", "reported", "rejected"};
    static const char *faults[] = {"unreachable", "timeout", "closed-mid-body"};

    family(out, "crmgate_requests_total", "counter", "Requests by route and decision (pass-through: no route matched).");
    unsigned n = atomic_load(&registry.nroutes);
    for (unsigned id = 0; id < n; ++id) {
        for (int d = 0; d < GW_METRIC_DECISION__COUNT; ++d) {
            uint64_t v = get(&registry.requests[id][d]);
            if (v == 0)
                continue;
            gw_buf_appendz(out, "crmgate_requests_total{route=\"");
            append_label_value(out, registry.route_labels[id]);
            gw_buf_printf(out, "\",decision=\"%s\"} %llu\n", decisions[d], (unsigned long long)v);
        }
    }
    family(out, "crmgate_violations_total", "counter", "Violations found, by rule code and mode.");
    for (int c = 0; c < GW_V__COUNT; ++c)
        for (int m = 0; m < 2; ++m)
            if (get(&registry.violations[c][m]) != 0)
                gw_buf_printf(out, "crmgate_violations_total{code=\"%s\",mode=\"%s\"} %llu\n",
                              gw_violation_code_name((gw_violation_code_t)c), m == 0 ? "enforce" : "report",
                              (unsigned long long)get(&registry.violations[c][m]));
    family(out, "crmgate_upstream_responses_total", "counter", "Responses received from the CRM, by status class.");
    for (int k = 1; k <= 5; ++k)
        gw_buf_printf(out, "crmgate_upstream_responses_total{class=\"%dxx\"} %llu\n", k,
                      (unsigned long long)get(&registry.upstream_status[k]));
    family(out, "crmgate_upstream_faults_total", "counter", "Requests the CRM could not answer, by kind of fault.");
    for (int f = 0; f < GW_FAULT__COUNT; ++f)
        gw_buf_printf(out, "crmgate_upstream_faults_total{kind=\"%s\"} %llu\n", faults[f],
                      (unsigned long long)get(&registry.faults[f]));
    family(out, "crmgate_audit_records_total", "counter", "Audit records written to the sink.");
    gw_buf_printf(out, "crmgate_audit_records_total %llu\n", (unsigned long long)get(&registry.audit_records));
    family(out, "crmgate_audit_backpressure_seconds_total", "counter",
           "Time requests waited for room in the audit queue (a slow sink).");
    gw_buf_printf(out, "crmgate_audit_backpressure_seconds_total %.9f\n", (double)get(&registry.audit_wait_ns) / 1e9);
    family(out, "crmgate_audit_sink_failures_total", "counter", "Failed writes to the audit sink.");
    gw_buf_printf(out, "crmgate_audit_sink_failures_total %llu\n", (unsigned long long)get(&registry.audit_failures));
    family(out, "crmgate_audit_records_dropped_total", "counter",
           "Audit records that could not be queued because the sink was failing and the queue was full.");
    gw_buf_printf(out, "crmgate_audit_records_dropped_total %llu\n", (unsigned long long)get(&registry.audit_dropped));
    family(out, "crmgate_rule_reloads_total", "counter", "Configuration and rule reloads, by result.");
    gw_buf_printf(out, "crmgate_rule_reloads_total{result=\"ok\"} %llu\ncrmgate_rule_reloads_total{result=\"failed\"} %llu\n",
                  (unsigned long long)get(&registry.reloads[0]), (unsigned long long)get(&registry.reloads[1]));
    render_histogram(out, "crmgate_request_duration_seconds", "Time from the request's arrival to the end of its response.",
                     &registry.request_latency);
    render_histogram(out, "crmgate_upstream_duration_seconds", "Time from forwarding a request to the CRM's response head.",
                     &registry.upstream_latency);
}

/*
 * A minimal TAP test harness for the unit tests: typed checks that print both
 * values with file and line, one "ok"/"not ok" line each, and a plan at the end.
 */
#ifndef GW_CHECK_H
#define GW_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int check_count, check_failed;

#define CHECK_REPORT(ok, ...)                                                                                                 \
    do {                                                                                                                       \
        ++check_count;                                                                                                         \
        if (ok) {                                                                                                              \
            printf("ok %d - ", check_count);                                                                                   \
        } else {                                                                                                               \
            ++check_failed;                                                                                                    \
            printf("not ok %d - %s:%d: ", check_count, __FILE__, __LINE__);                                                    \
        }                                                                                                                      \
        printf(__VA_ARGS__);                                                                                                   \
        printf("\n");                                                                                                          \
    } while (0)

#define CHECK(cond) CHECK_REPORT((cond), "%s", #cond)
#define CHECK_INT_EQ(a, b)                                                                                                    \
    do {                                                                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                                    \
        CHECK_REPORT(a_ == b_, "%s == %s (%lld vs %lld)", #a, #b, a_, b_);                                                      \
    } while (0)
#define CHECK_STR_EQ(a, b)                                                                                                    \
    do {                                                                                                                       \
        const char *a_ = (a), *b_ = (b);                                                                                       \
        CHECK_REPORT(a_ != NULL && b_ != NULL && strcmp(a_, b_) == 0, "%s == \"%s\" (got \"%s\")", #a, b_ ? b_ : "(null)",     \
                     a_ ? a_ : "(null)");                                                                                      \
    } while (0)
#define CHECK_CONTAINS(hay, needle)                                                                                           \
    do {                                                                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                                                                \
        CHECK_REPORT(h_ != NULL && strstr(h_, n_) != NULL, "%s contains \"%s\" (got \"%s\")", #hay, n_, h_ ? h_ : "(null)");  \
    } while (0)

static inline int check_done(void)
{
    printf("1..%d\n", check_count);
    printf("%d passed, %d failed\n", check_count - check_failed, check_failed);
    return check_failed == 0 ? 0 : 1;
}

#endif

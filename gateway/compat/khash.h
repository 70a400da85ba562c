/*
 * Debian's libh2o-evloop-dev installs h2o/http2_internal.h, which includes
 * klib's khash.h, but not khash.h itself. crmgate needs only the layout of
 * h2o_http2_conn_t from that header (where the frame-parser hook and the write
 * buffer are), never h2o's stream table: the body guard tracks streams from the
 * frames it sees. So this stand-in declares the table type as opaque (the
 * connection holds only a pointer to it) and makes lookups find nothing.
 * h2o_http2_conn_get_stream() must not be called in crmgate.
 */
#ifndef GW_COMPAT_KHASH_H
#define GW_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khint_t;
typedef khint_t khiter_t;

#define KHASH_MAP_INIT_INT64(name, khval_t) typedef struct kh_##name##_s kh_##name##_t;
#define khash_t(name) kh_##name##_t
#define kh_get(name, h, k) ((void)(h), (void)(k), (khiter_t)0)
#define kh_end(h) ((void)(h), (khiter_t)0)
#define kh_val(h, x) ((void)(h), (void)(x), NULL)

#endif

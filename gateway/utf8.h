/* UTF-8 helpers for length rules. Input strings come from jansson, which only
 * produces valid UTF-8, so counting never has to decide what a bad byte is. */
#ifndef GW_UTF8_H
#define GW_UTF8_H

#include <stddef.h>

typedef enum en_gw_length_unit_t {
    GW_LENGTH_CHARACTERS, /* Unicode scalar values: what Oracle's attribute lengths count */
    GW_LENGTH_BYTES,      /* UTF-8 bytes */
    GW_LENGTH_UTF16       /* UTF-16 code units: characters outside the BMP count twice */
} gw_length_unit_t;

/** Length of the valid, shortest-form UTF-8 sequence at s (1-4), or 0 if there is none. */
size_t gw_utf8_valid_sequence(const char *s, size_t len);
/** Length of a valid UTF-8 string in the given unit. */
size_t gw_utf8_length(const char *s, size_t len, gw_length_unit_t unit);

#endif

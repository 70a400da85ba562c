/*
 * The error of a failed load (config, rules, describe import). The caller owns
 * it and may pass NULL; the first error set wins, so a low-level failure is not
 * overwritten by the generic message of the caller that noticed it.
 * Text form: "FILE:LINE:COL: message" or "FILE: /json/pointer: message".
 */
#ifndef GW_ERROR_H
#define GW_ERROR_H

typedef struct st_gw_error_t {
    char text[1024];
} gw_error_t;

static inline void gw_error_clear(gw_error_t *err)
{
    if (err != NULL)
        err->text[0] = '\0';
}

void gw_error_set(gw_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

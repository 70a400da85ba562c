/*
 * `crmgate rules import-describe`: Oracle ADF's describe document (GET
 * .../interactions/describe) becomes a crmgate rule file, so a tenant's own
 * metadata, custom fields included, becomes its rules. Pure: text in, text out.
 */
#ifndef GW_DESCRIBE_H
#define GW_DESCRIBE_H

#include <stddef.h>
#include "buf.h"
#include "error.h"

/**
 * Converts a describe document (named `name` in errors) into a rule file,
 * appended to out as indented JSON ending in a newline. `lookups` (may be NULL)
 * is the optional lookups file: {"lookups": {NAME: [codes]}, "attributes":
 * {"Attr" or "resource.Attr": NAME}}. The output depends only on the inputs.
 * Returns 0, or -1 with err set.
 */
int gw_describe_import(const char *name, const char *describe, size_t len, const char *lookups_name, const char *lookups,
                       size_t lookups_len, gw_buf_t *out, gw_error_t *err);

#endif

/* Where in a JSON document a byte offset lies, as a JSON pointer. jansson
 * reports parse errors by position only; this turns the position into the
 * pointer clients see for every other violation. */
#ifndef GW_JSONPOS_H
#define GW_JSONPOS_H

#include <stddef.h>
#include "buf.h"

/**
 * Appends to out the JSON pointer of the innermost value or member being read
 * at byte offset `offset` of json (e.g. "/interactionReferences/1/ObjectTypeCd";
 * "" for the top level). Works on malformed input, reads nothing past
 * min(offset, len), keeps at most 64 levels, and runs in linear time.
 */
void gw_json_pointer_at(const char *json, size_t len, size_t offset, gw_buf_t *out);

/** Appends token to out escaped as a JSON pointer token (~ -> ~0, / -> ~1). */
void gw_json_pointer_append_token(gw_buf_t *out, const char *token, size_t len);

#endif

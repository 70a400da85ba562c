/* Request paths as the CRM will understand them, for route matching. */
#ifndef GW_PATH_H
#define GW_PATH_H

#include <stddef.h>
#include "arena.h"

/**
 * Normalises a request target for route matching, so that no spelling of a
 * validated route escapes validation: the query is dropped, every %XX is
 * decoded, ";parameters" are cut from each segment (servlet containers such as
 * Oracle's WebLogic ignore them), empty and "." segments are dropped, ".."
 * removes the previous segment, and a trailing slash is dropped. The result is
 * allocated from the arena and always starts with '/'.
 */
const char *gw_path_normalize(gw_arena_t *arena, const char *path, size_t len, size_t *out_len);

#endif

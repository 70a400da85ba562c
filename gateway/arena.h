/*
 * A bump allocator for request-scoped memory (violations, pointers, rendered
 * errors, and jansson's parse of the body). Nothing is freed individually:
 * gw_arena_reset() releases everything at once and keeps a bounded number of
 * chunks for the next request, so a steady state of valid requests allocates
 * nothing from the heap.
 */
#ifndef GW_ARENA_H
#define GW_ARENA_H

#include <stddef.h>

typedef struct st_gw_arena_chunk_t gw_arena_chunk_t;

typedef struct st_gw_arena_t {
    gw_arena_chunk_t *chunks; /* newest first */
    size_t used;              /* bytes used in the newest chunk */
    gw_arena_chunk_t *spare;  /* standard chunks kept by reset for the next request */
    size_t nspare;
} gw_arena_t;

void gw_arena_init(gw_arena_t *arena);
/** Frees every chunk. The arena can be reused after gw_arena_init(). */
void gw_arena_dispose(gw_arena_t *arena);
/** Releases everything allocated so far; keeps up to GW_ARENA_RETAIN bytes of standard chunks for reuse, so that
 * a steady state of requests of similar size allocates nothing from the heap. */
void gw_arena_reset(gw_arena_t *arena);
/** Returns memory owned by the arena, aligned for any type; aborts on out-of-memory. */
void *gw_arena_alloc(gw_arena_t *arena, size_t size);
/** Copies len bytes and adds a NUL; the copy is owned by the arena. */
char *gw_arena_strndup(gw_arena_t *arena, const char *s, size_t len);

#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "arena.h"
#include "buf.h"

#define GW_ARENA_CHUNK_SIZE 16384
#define GW_ARENA_ALIGN 16
/* Standard chunks kept across resets, per arena (one arena per worker thread): enough for the parse of a body of
 * tens of KB, so those never touch the heap, while one huge body does not pin its memory forever. */
#define GW_ARENA_RETAIN_CHUNKS 16

/* Under AddressSanitizer every block is unpoisoned alone and followed by a poisoned gap, and a chunk is poisoned
 * whole when it is reset: a read past a block (jansson's values live here) or of a previous request's memory is
 * reported as it would be on the heap. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ARENA_REDZONE GW_ARENA_ALIGN
#define ARENA_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_REDZONE 0
#define ARENA_POISON(p, n) ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct st_gw_arena_chunk_t {
    gw_arena_chunk_t *next;
    size_t size;
    _Alignas(GW_ARENA_ALIGN) unsigned char bytes[];
};

void gw_arena_init(gw_arena_t *arena)
{
    arena->chunks = NULL;
    arena->used = 0;
    arena->spare = NULL;
    arena->nspare = 0;
}

static void free_chunk(gw_arena_chunk_t *chunk)
{
    ARENA_UNPOISON(chunk->bytes, chunk->size);
    free(chunk);
}

static void free_list(gw_arena_chunk_t *chunk)
{
    while (chunk != NULL) {
        gw_arena_chunk_t *next = chunk->next;
        free_chunk(chunk);
        chunk = next;
    }
}

void gw_arena_dispose(gw_arena_t *arena)
{
    free_list(arena->chunks);
    free_list(arena->spare);
    gw_arena_init(arena);
}

void gw_arena_reset(gw_arena_t *arena)
{
    gw_arena_chunk_t *chunk = arena->chunks;
    while (chunk != NULL) {
        gw_arena_chunk_t *next = chunk->next;
        if (chunk->size == GW_ARENA_CHUNK_SIZE && arena->nspare < GW_ARENA_RETAIN_CHUNKS) {
            ARENA_POISON(chunk->bytes, chunk->size);
            chunk->next = arena->spare;
            arena->spare = chunk;
            ++arena->nspare;
        } else {
            free_chunk(chunk);
        }
        chunk = next;
    }
    arena->chunks = NULL;
    arena->used = 0;
}

static gw_arena_chunk_t *new_chunk(gw_arena_t *arena, size_t size)
{
    if (size == GW_ARENA_CHUNK_SIZE && arena->spare != NULL) {
        gw_arena_chunk_t *chunk = arena->spare;
        arena->spare = chunk->next;
        --arena->nspare;
        return chunk;
    }
    gw_arena_chunk_t *chunk = malloc(sizeof(*chunk) + size);
    if (chunk == NULL)
        gw_fatal("out of memory (arena chunk of %zu bytes)", size);
    chunk->size = size;
    ARENA_POISON(chunk->bytes, size);
    return chunk;
}

static void *hand_out(void *p, size_t asked)
{
    ARENA_UNPOISON(p, asked);
    return p;
}

void *gw_arena_alloc(gw_arena_t *arena, size_t size)
{
    size_t asked = size;
    size = (size + ARENA_REDZONE + GW_ARENA_ALIGN - 1) & ~(size_t)(GW_ARENA_ALIGN - 1);
    if (arena->chunks != NULL && arena->chunks->size - arena->used >= size) {
        void *p = arena->chunks->bytes + arena->used;
        arena->used += size;
        return hand_out(p, asked);
    }
    if (size > GW_ARENA_CHUNK_SIZE / 4) {
        /* a big block gets a chunk of its own, placed behind the current one
         * so the current chunk's free space stays usable */
        gw_arena_chunk_t *chunk = new_chunk(arena, size);
        if (arena->chunks == NULL) {
            chunk->next = NULL;
            arena->chunks = chunk;
            arena->used = size;
        } else {
            chunk->next = arena->chunks->next;
            arena->chunks->next = chunk;
        }
        return hand_out(chunk->bytes, asked);
    }
    gw_arena_chunk_t *chunk = new_chunk(arena, GW_ARENA_CHUNK_SIZE);
    chunk->next = arena->chunks;
    arena->chunks = chunk;
    arena->used = size;
    return hand_out(chunk->bytes, asked);
}

char *gw_arena_strndup(gw_arena_t *arena, const char *s, size_t len)
{
    char *copy = gw_arena_alloc(arena, len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

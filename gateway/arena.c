#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "arena.h"
#include "buf.h"

#define GW_ARENA_CHUNK_SIZE 8192
#define GW_ARENA_ALIGN 16

struct st_gw_arena_chunk_t {
    gw_arena_chunk_t *next;
    size_t size;
    _Alignas(GW_ARENA_ALIGN) unsigned char bytes[];
};

void gw_arena_init(gw_arena_t *arena)
{
    arena->chunks = NULL;
    arena->used = 0;
}

void gw_arena_dispose(gw_arena_t *arena)
{
    gw_arena_chunk_t *chunk = arena->chunks;
    while (chunk != NULL) {
        gw_arena_chunk_t *next = chunk->next;
        free(chunk);
        chunk = next;
    }
    gw_arena_init(arena);
}

void gw_arena_reset(gw_arena_t *arena)
{
    if (arena->chunks == NULL)
        return;
    /* keep the oldest chunk (always the standard size), free the rest */
    while (arena->chunks->next != NULL) {
        gw_arena_chunk_t *next = arena->chunks->next;
        free(arena->chunks);
        arena->chunks = next;
    }
    arena->used = 0;
}

static gw_arena_chunk_t *new_chunk(size_t size)
{
    gw_arena_chunk_t *chunk = malloc(sizeof(*chunk) + size);
    if (chunk == NULL)
        gw_fatal("out of memory (arena chunk of %zu bytes)", size);
    chunk->size = size;
    return chunk;
}

void *gw_arena_alloc(gw_arena_t *arena, size_t size)
{
    size = (size + GW_ARENA_ALIGN - 1) & ~(size_t)(GW_ARENA_ALIGN - 1);
    if (arena->chunks != NULL && arena->chunks->size - arena->used >= size) {
        void *p = arena->chunks->bytes + arena->used;
        arena->used += size;
        return p;
    }
    if (arena->chunks == NULL) {
        /* the first chunk is always of the standard size: it is the one reset keeps */
        arena->chunks = new_chunk(GW_ARENA_CHUNK_SIZE);
        arena->chunks->next = NULL;
        arena->used = 0;
        if (size <= GW_ARENA_CHUNK_SIZE)
            return gw_arena_alloc(arena, size);
    }
    if (size > GW_ARENA_CHUNK_SIZE / 4) {
        /* a big block gets a chunk of its own, placed behind the current one
         * so the current chunk's free space stays usable */
        gw_arena_chunk_t *chunk = new_chunk(size);
        chunk->next = arena->chunks->next;
        arena->chunks->next = chunk;
        return chunk->bytes;
    }
    gw_arena_chunk_t *chunk = new_chunk(GW_ARENA_CHUNK_SIZE);
    chunk->next = arena->chunks;
    arena->chunks = chunk;
    arena->used = size;
    return chunk->bytes;
}

char *gw_arena_strndup(gw_arena_t *arena, const char *s, size_t len)
{
    char *copy = gw_arena_alloc(arena, len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

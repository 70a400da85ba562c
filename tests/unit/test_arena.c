/* The request arena: alignment, big blocks, and reuse across resets, so that a steady state of requests of
 * similar size takes nothing from the heap (jansson's parse of each body is allocated here). */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../../gateway/arena.h"
#include "check.h"

#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer the arena poisons what it has not handed out: reading one byte past a block, or a block of
 * a previous request after a reset, must kill the reading process as a heap overflow or use-after-free would. */
static int dies_reading(int after_reset)
{
    pid_t pid = fork();
    if (pid == 0) {
        gw_arena_t arena;
        gw_arena_init(&arena);
        char *p = gw_arena_alloc(&arena, 10);
        memset(p, 1, 10);
        if (after_reset)
            gw_arena_reset(&arena);
        volatile char c = after_reset ? p[0] : p[10];
        (void)c;
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
#endif

/* the allocation pattern of one request: many small blocks and one big one */
static void one_request(gw_arena_t *arena, void **first, void **big)
{
    *first = gw_arena_alloc(arena, 40);
    for (int i = 0; i < 2000; ++i) {
        unsigned char *p = gw_arena_alloc(arena, (size_t)(i % 97) + 1);
        memset(p, 0xab, (size_t)(i % 97) + 1); /* ASan: every byte handed out is ours */
    }
    *big = gw_arena_alloc(arena, 100000);
    memset(*big, 0xcd, 100000);
}

int main(void)
{
    gw_arena_t arena;
    gw_arena_init(&arena);
    int aligned = 1;
    for (size_t size = 1; size < 300; ++size)
        aligned &= ((uintptr_t)gw_arena_alloc(&arena, size) % 16) == 0;
    CHECK_REPORT(aligned, "every block is 16-byte aligned");
    char *s = gw_arena_strndup(&arena, "abcdef", 3);
    CHECK_STR_EQ(s, "abc");
    gw_arena_reset(&arena);

    void *first1, *big1, *first2, *big2;
    one_request(&arena, &first1, &big1);
    gw_arena_reset(&arena);
    one_request(&arena, &first2, &big2);
    /* the small blocks reuse the chunks kept by the reset; the same sequence lands at the same addresses */
    CHECK(first1 == first2);
    gw_arena_reset(&arena);

    /* a big block first, then small ones: both usable */
    char *big = gw_arena_alloc(&arena, 50000);
    char *small = gw_arena_alloc(&arena, 16);
    memset(big, 1, 50000);
    memset(small, 2, 16);
    CHECK(big != small && (small < big || small >= big + 50000));
    gw_arena_dispose(&arena);

#if defined(__SANITIZE_ADDRESS__)
    printf("# two AddressSanitizer reports follow: the children that read poisoned arena memory\n");
    fflush(stdout);
    CHECK_REPORT(dies_reading(0), "reading one byte past a block is caught by AddressSanitizer");
    CHECK_REPORT(dies_reading(1), "reading a block after the arena's reset is caught by AddressSanitizer");
#endif

    /* a disposed arena starts again from nothing */
    gw_arena_init(&arena);
    CHECK(gw_arena_alloc(&arena, 8) != NULL);
    gw_arena_dispose(&arena);
    return check_done();
}

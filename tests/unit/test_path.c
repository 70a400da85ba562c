/* Path normalisation: every spelling of a validated route must match it. */
#include "../../gateway/path.h"
#include "check.h"

static void expect(const char *in, const char *want)
{
    gw_arena_t arena;
    gw_arena_init(&arena);
    size_t len;
    const char *out = gw_path_normalize(&arena, in, strlen(in), &len);
    CHECK_REPORT(strcmp(out, want) == 0 && strlen(out) == len, "normalize(\"%s\") == \"%s\" (got \"%s\")", in, want, out);
    gw_arena_dispose(&arena);
}

/* Normalising a normal path changes nothing: over every path of up to 8 characters from / . a ; ? (no %, which
 * decodes once per pass), the result is a fixed point. The fast path for normal paths must agree with the rest. */
static void test_fixed_point(void)
{
    static const char alphabet[] = "/.a;?";
    char in[9];
    int failures = 0, total = 0;
    for (int len = 0; len <= 8; ++len) {
        long n = 1;
        for (int i = 0; i < len; ++i)
            n *= 5;
        for (long code = 0; code < n; ++code) {
            long c = code;
            for (int i = 0; i < len; ++i, c /= 5)
                in[i] = alphabet[c % 5];
            in[len] = '\0';
            gw_arena_t arena;
            gw_arena_init(&arena);
            size_t once_len, twice_len;
            const char *once = gw_path_normalize(&arena, in, (size_t)len, &once_len);
            const char *twice = gw_path_normalize(&arena, once, once_len, &twice_len);
            if (once_len != twice_len || memcmp(once, twice, once_len) != 0 || once[0] != '/') {
                if (failures++ < 5)
                    printf("# \"%s\" -> \"%s\" -> \"%s\"\n", in, once, twice);
            }
            ++total;
            gw_arena_dispose(&arena);
        }
    }
    CHECK_REPORT(failures == 0, "normalisation is idempotent over %d paths (%d not)", total, failures);
}

int main(void)
{
    expect("/a/b", "/a/b");
    expect("/a/b?x=1", "/a/b");
    expect("/a/b/", "/a/b");
    expect("//a///b", "/a/b");
    expect("/a/./b", "/a/b");
    expect("/a/x/../b", "/a/b");
    expect("/../../a", "/a");
    expect("/a/interaction%73", "/a/interactions"); /* an escape at the very end */
    expect("/a%2Fb", "/a/b");
    expect("/a/%2e%2e/b", "/b");
    expect("/a/b;jsessionid=1/c", "/a/b/c");
    expect("/a/b;x", "/a/b");
    expect("/a/%zz", "/a/%zz"); /* not an escape: kept */
    expect("/a/%4", "/a/%4");
    expect("", "/");
    expect("/", "/");
    expect("?q", "/");
    expect("/a#frag", "/a");
    expect("/a/.hidden", "/a/.hidden"); /* a dot-led segment that is no dot segment */
    expect("/a/b/..", "/a");
    expect("a/b", "/a/b");
    expect("/a/b;", "/a/b");
    test_fixed_point();
    return check_done();
}

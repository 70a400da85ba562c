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
    return check_done();
}

/*
 * Native cost of the two byte-proportional steps on crmgate's validated path, per payload: jansson's parse
 * (json_loadb, as crmgate calls it) and the audit record's SHA-256 of the body (OpenSSL EVP with a reused context,
 * as gateway/auditlog.c does). callgrind cannot count the digest as it runs natively: valgrind does not offer the
 * CPU's SHA extensions, so OpenSSL takes a slower generic path under it. This program times both natively, so the
 * report can say what the digest costs relative to the parse on this machine.
 *
 *   native_costs FILE...   -> one line per file: bytes, parse ns, sha256 ns (best of 5 runs of enough iterations
 *                             for ~0.2 s each)
 * Built by tests/bench/bench.py with the system compiler; a benchmark helper, not part of crmgate.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double parse_once(const char *body, size_t len)
{
    json_error_t err;
    double t = now_ns();
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    t = now_ns() - t; /* crmgate frees the document with its arena's reset: the free is not timed */
    if (doc == NULL) {
        fprintf(stderr, "native_costs: not JSON: %s\n", err.text);
        exit(1);
    }
    json_decref(doc);
    return t;
}

static double sha_once(EVP_MD_CTX *ctx, const EVP_MD *md, const char *body, size_t len)
{
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen;
    double t = now_ns();
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, body, len) != 1 ||
        EVP_DigestFinal_ex(ctx, out, &outlen) != 1) {
        fprintf(stderr, "native_costs: SHA-256 failed\n");
        exit(1);
    }
    return now_ns() - t;
}

int main(int argc, char **argv)
{
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (md == NULL || ctx == NULL)
        return 1;
    for (int a = 1; a < argc; ++a) {
        FILE *f = fopen(argv[a], "rb");
        if (f == NULL) {
            perror(argv[a]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        char *body = malloc((size_t)size + 1);
        if (body == NULL || fread(body, 1, (size_t)size, f) != (size_t)size)
            return 1;
        fclose(f);
        double probe = parse_once(body, (size_t)size) + 1;
        long iters = (long)(2e8 / probe) + 1; /* about 0.2 s a run */
        double best_parse = 1e18, best_sha = 1e18;
        for (int run = 0; run < 5; ++run) {
            double p = 0, s = 0;
            for (long i = 0; i < iters; ++i) {
                p += parse_once(body, (size_t)size);
                s += sha_once(ctx, md, body, (size_t)size);
            }
            if (p / iters < best_parse)
                best_parse = p / iters;
            if (s / iters < best_sha)
                best_sha = s / iters;
        }
        printf("%ld %.0f %.0f\n", size, best_parse, best_sha);
        free(body);
    }
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    return 0;
}

/*
 * Replays inputs through a fuzz target without libFuzzer, so that every build
 * (gcc, ASan + UBSan) runs the committed corpora as ordinary tests:
 *
 *   fuzz_body_replay DIR_OR_FILE...
 *
 * Calls LLVMFuzzerInitialize() once (when the target defines it), then
 * LLVMFuzzerTestOneInput() on every regular file given, and on every regular
 * file directly inside every directory given, in name order (names starting
 * with '.' are skipped). Each input is copied into a buffer of exactly its
 * size, so that a read past its end is caught by AddressSanitizer. Arguments
 * starting with '-' (libFuzzer flags) are ignored.
 *
 * Exit status: 0 when every input passed and there was at least one; 1 when
 * there was none or a path cannot be read. A failing input aborts, after its
 * name was printed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static size_t replayed;

static int replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *data = malloc(cap);
    size_t n;
    while (data != NULL && (n = fread(data + len, 1, cap - len, fp)) != 0) {
        len += n;
        if (len == cap) {
            uint8_t *bigger = realloc(data, cap *= 2);
            if (bigger == NULL)
                free(data);
            data = bigger;
        }
    }
    int failed = data == NULL || ferror(fp);
    fclose(fp);
    if (failed) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        free(data);
        return -1;
    }
    /* exactly len bytes: reading past the input is an ASan report, as under libFuzzer */
    uint8_t *exact = malloc(len != 0 ? len : 1);
    if (exact == NULL) {
        free(data);
        return -1;
    }
    memcpy(exact, data, len);
    free(data);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    ++replayed;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_directory(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        if (count == cap) {
            char **bigger = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*names));
            if (bigger == NULL)
                abort();
            names = bigger;
        }
        size_t need = strlen(dir) + strlen(ent->d_name) + 2;
        if ((names[count] = malloc(need)) == NULL)
            abort();
        snprintf(names[count++], need, "%s/%s", dir, ent->d_name);
    }
    closedir(d);
    qsort(names, count, sizeof(*names), compare_names);
    int ret = 0;
    for (size_t i = 0; i < count; ++i) {
        struct stat st;
        if (ret == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            ret = replay_file(names[i]);
        free(names[i]);
    }
    free(names);
    return ret;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    int paths = 0;
    for (int i = 1; i < argc; ++i) {
        if (argv[i][0] == '-')
            continue;
        ++paths;
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if ((S_ISDIR(st.st_mode) ? replay_directory(argv[i]) : replay_file(argv[i])) != 0)
            return 1;
    }
    if (replayed == 0) {
        fprintf(stderr, "replay: no inputs (usage: %s DIR_OR_FILE...)\n", argv[0]);
        return 1;
    }
    printf("replay: %zu inputs from %d path%s passed\n", replayed, paths, paths == 1 ? "" : "s");
    return 0;
}

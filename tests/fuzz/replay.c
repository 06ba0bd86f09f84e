/* Replays fuzz corpora without libFuzzer: every file of each directory (or
 * each file) named on the command line goes through LLVMFuzzerTestOneInput
 * once. A target's invariants abort, which fails the test. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rbe");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;

    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            uint8_t *grown = realloc(buf, cap ? cap * 2 : 4096);
            if (!grown) {
                free(buf);
                fclose(f);
                fprintf(stderr, "replay: %s: out of memory\n", path);
                return -1;
            }
            buf = grown;
            cap = cap ? cap * 2 : 4096;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        fprintf(stderr, "replay: %s: read error\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int replay_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int r = 0;

    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d))) {
        char *path;
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        if (asprintf(&path, "%s/%s", dir, e->d_name) < 0) {
            r = -1;
            break;
        }
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(path) < 0)
                r = -1;
            else
                (*count)++;
        }
        free(path);
    }
    closedir(d);
    return r;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int r = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            r |= replay_dir(argv[i], &count);
        else if (replay_file(argv[i]) == 0)
            count++;
        else
            r = -1;
    }
    printf("replay: %zu input(s) passed\n", count);
    /* An empty corpus would pass without testing anything. */
    return r < 0 || count == 0 ? 1 : 0;
}

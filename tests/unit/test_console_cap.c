/* vm_console_cap on a log that QEMU would append to: cut back to half its
 * limit with the newest lines kept, on a filesystem that can collapse a
 * file's start (the state dir's, usually ext4) and on one that cannot
 * (tmpfs), where the newest half is copied. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "vm.h"

#define LINES 3000
#define LIMIT 20000

static void fill(const char *path)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    for (int i = 1; i <= LINES; i++)
        fprintf(f, "line %06d of the console\n", i);
    fclose(f);
}

static void cap_in(const char *base)
{
    char dir[256], path[300];
    snprintf(dir, sizeof(dir), "%s/test_console_cap.XXXXXX", base);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "skip %s: cannot make a dir there\n", base);
        return;
    }
    snprintf(path, sizeof(path), "%s/serial.log", dir);
    struct vm vm = {.run_dir = dir};

    fill(path);
    CHECK(vm_console_cap(&vm, 1 << 30) == 0); /* under the limit: left alone */
    CHECK(vm_console_cap(&vm, LIMIT) == 1);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    fprintf(stderr, "%s: %lld bytes after the cap\n", base, (long long)st.st_size);
    CHECK(st.st_size <= LIMIT);
    CHECK(st.st_size >= LIMIT / 2 - 4096);
    char *data = NULL;
    size_t len = 0;
    CHECK(read_file(path, &data, &len, 1 << 20) == 0);
    if (data) {
        char last[64];
        snprintf(last, sizeof(last), "line %06d of the console\n", LINES);
        CHECK(len >= strlen(last) && strcmp(data + len - strlen(last), last) == 0);
        CHECK(strstr(data, "line 000001 ") == NULL);
    }
    free(data);
    CHECK(vm_console_cap(&vm, LIMIT) == 0); /* now short enough */

    /* Later output is appended after what was kept. */
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "after\n", 6) == 6);
    if (fd >= 0)
        close(fd);
    data = NULL;
    CHECK(read_file(path, &data, &len, 1 << 20) == 0);
    CHECK(data && len > 6 && strcmp(data + len - 6, "after\n") == 0);
    free(data);

    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    cap_in(tmp && *tmp ? tmp : "/tmp");
    cap_in("/dev/shm");
    CHECK_DONE();
}

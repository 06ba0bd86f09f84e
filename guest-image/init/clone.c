/* Clone refresh: a VM restored from a template takes an identity of its
 * own (RNG seed, host key, machine id, clock). */

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timex.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The template's kernel RNG state is in every clone's memory: mix the
 * host's seed in, credit it, and reseed the CRNG at once, so two clones'
 * random output differs from their first read on. */
static int rng_reseed(const char *hex)
{
    struct {
        int entropy_count;
        int buf_size;
        unsigned char buf[64];
    } add = {0};
    size_t n = strlen(hex) / 2;
    if (n == 0 || n > sizeof(add.buf) || strlen(hex) % 2)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        add.buf[i] = (unsigned char)(hi << 4 | lo);
    }
    add.buf_size = (int)n;
    add.entropy_count = (int)n * 8;
    int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = 0;
    if (ioctl(fd, RNDADDENTROPY, &add) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
        r = -errno;
    close(fd);
    explicit_bzero(&add, sizeof(add));
    return r;
}

/* Sets the clock to "SEC.NSEC" (the host's, when it sent it) and prints
 * "clock=SEC.NSEC" as read right after: the host compares that with its
 * own clock when the line arrives, and shifts the guest's by what the
 * command took to start (clock-shift). */
int clock_set_main(const char *when)
{
    char *end = NULL;
    struct timespec ts = {.tv_sec = (time_t)strtoll(when, &end, 10)};
    if (end && *end == '.')
        ts.tv_nsec = strtol(end + 1, NULL, 10);
    if (ts.tv_sec <= 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000L ||
        clock_settime(CLOCK_REALTIME, &ts) < 0) {
        fprintf(stderr, "setting the clock: %s\n", strerror(errno ? errno : EINVAL));
        return 1;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("clock=%lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
    fflush(stdout);
    return 0;
}

/* Moves the clock by NS nanoseconds (may be negative), however long this
 * command took to start. */
int clock_shift_main(const char *arg)
{
    char *end = NULL;
    long long ns = strtoll(arg, &end, 10);
    if (!end || *end || ns <= -86400000000000LL || ns >= 86400000000000LL) {
        fprintf(stderr, "clock-shift: not a shift in nanoseconds: %s\n", arg);
        return 2;
    }
    struct timex tx = {.modes = ADJ_SETOFFSET | ADJ_NANO};
    tx.time.tv_sec = ns / 1000000000LL;
    tx.time.tv_usec = ns % 1000000000LL;
    if (tx.time.tv_usec < 0) {
        tx.time.tv_sec -= 1;
        tx.time.tv_usec += 1000000000L;
    }
    if (clock_adjtime(CLOCK_REALTIME, &tx) < 0) {
        fprintf(stderr, "clock-shift: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* stdin: the clone's identity, "authorized_key=LINE", "host_key=HEX" (its
 * sshd's private key file), "seed=HEX" (at most 64 bytes), "time=SEC.NSEC"
 * (the host's clock) and "machine_id=HEX32",
 * one per line, then a line "--" and the VM's config as at boot (its host
 * name, env vars and proxy are applied as boot applies them). */
int clone_refresh_main(void)
{
    static char text[CONFIG_MAX + 16 * 1024];
    ssize_t n = read_fd_all(STDIN_FILENO, text, sizeof(text) - 1);
    if (n < 0) {
        fprintf(stderr, "clone-refresh: stdin: %s\n", strerror((int)-n));
        return 1;
    }
    const char *key = NULL, *seed = NULL, *when = NULL, *mid = NULL, *hostkey = NULL;
    char *config = NULL;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strcmp(line, "--") == 0) {
            config = next;
            break;
        }
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *val = eq + 1;
        if (strcmp(line, "authorized_key") == 0)
            key = val;
        else if (strcmp(line, "seed") == 0)
            seed = val;
        else if (strcmp(line, "time") == 0)
            when = val;
        else if (strcmp(line, "machine_id") == 0)
            mid = val;
        else if (strcmp(line, "host_key") == 0)
            hostkey = val;
    }
    static struct config cfg;
    config_defaults(&cfg);
    if (!config || config_parse(&cfg, config, config_reject_log, NULL) > 0 || !key ||
        strncmp(key, "ssh-", 4) != 0 || !seed || !when || !mid || strlen(mid) != 32 || !hostkey ||
        strlen(hostkey) % 2 || strlen(hostkey) / 2 > HOST_KEY_MAX) {
        fprintf(stderr, "clone-refresh: incomplete or invalid input\n");
        return 1;
    }
    int r = rng_reseed(seed);
    if (r < 0) {
        fprintf(stderr, "clone-refresh: reseeding the RNG: %s\n", strerror(-r));
        return 1;
    }
    hostname_apply(&cfg);
    env_install(&cfg);
    char line[64];
    snprintf(line, sizeof(line), "%s\n", mid);
    write_string("/etc/machine-id", line, 0444);
    /* Its own host key: sshd reads it for every new connection. */
    static char hk[HOST_KEY_MAX];
    size_t hk_len = strlen(hostkey) / 2;
    for (size_t i = 0; i < hk_len; i++) {
        int hi = hex_nibble(hostkey[2 * i]), lo = hex_nibble(hostkey[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            fprintf(stderr, "clone-refresh: host_key is not hex\n");
            return 1;
        }
        hk[i] = (char)(hi << 4 | lo);
    }
    r = write_file(HOST_KEY_PATH, hk, hk_len, 0600);
    explicit_bzero(hk, hk_len);
    if (r < 0) {
        fprintf(stderr, "clone-refresh: " HOST_KEY_PATH ": %s\n", strerror(-r));
        return 1;
    }
    unlink(HOST_KEY_PATH ".pub");
    /* The template's key stops working here: only this clone's opens a
     * new session (the one running this command stays). */
    char keys[4096];
    if (snprintf(keys, sizeof(keys), "%s\n", key) >= (int)sizeof(keys) ||
        (r = write_string("/root/.ssh/authorized_keys", keys, 0600)) < 0) {
        fprintf(stderr, "clone-refresh: authorized_keys: %s\n", strerror(r < 0 ? -r : E2BIG));
        return 1;
    }
    /* Last, so that what the host measures is only the way back. */
    return clock_set_main(when);
}

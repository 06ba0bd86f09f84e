/* Argument parsing shared by the commands. Every value the user types is
 * checked here before it goes anywhere, so a typo is a usage error (exit 2)
 * and never a confusing answer from the gateway. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

#define CLI_MAX_ENV_VALUE (32 * 1024)
#define CLI_MAX_ENV_VARS 256

int cli_parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (!s || !*s || strlen(s) > 32)
        return -EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end || end == s)
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int cli_parse_env(const char *kv, json_t *obj)
{
    const char *eq = strchr(kv, '=');
    char name[129];
    size_t n;

    if (!eq)
        return -EINVAL;
    n = (size_t)(eq - kv);
    if (n == 0 || n >= sizeof(name) || strlen(eq + 1) > CLI_MAX_ENV_VALUE)
        return -EINVAL;
    memcpy(name, kv, n);
    name[n] = '\0';
    if (!env_name_valid(name))
        return -EINVAL;
    if (json_object_size(obj) >= CLI_MAX_ENV_VARS && !json_object_get(obj, name))
        return -E2BIG;
    /* A value that is not UTF-8 cannot travel in JSON. */
    json_t *v = json_string(eq + 1);
    if (!v)
        return -EINVAL;
    return json_object_set_new(obj, name, v) < 0 ? -ENOMEM : 0;
}

bool cli_common_option(struct cli_ctx *c, int opt, int argc, char **argv, int *exit_code)
{
    const char *bad = optind > 0 && optind - 1 < argc ? argv[optind - 1] : "?";

    switch (opt) {
    case CLI_OPT_JSON:
        c->json = true;
        return true;
    case CLI_OPT_HELP:
        *exit_code = cli_help(c);
        return false;
    case CLI_OPT_STATE_DIR:
        if (!*optarg || strlen(optarg) >= PATH_MAX - 64) {
            *exit_code = cli_usage_error(c, "--state-dir: invalid directory");
            return false;
        }
        c->state_dir = optarg;
        return true;
    case ':':
        *exit_code = cli_usage_error(c, "option %s needs a value", bad);
        return false;
    default:
        /* optopt holds a long option's value when it was given a value it
         * does not take ("--json=1"); only a letter means a short option. */
        if (optopt > 0 && optopt < 128 && isalnum(optopt))
            *exit_code = cli_usage_error(c, "unknown option -%c", optopt);
        else
            *exit_code = cli_usage_error(c, "unknown or malformed option %s", bad);
        return false;
    }
}

bool cli_opt_int(struct cli_ctx *c, const char *name, const char *value, long min, long max,
                 long *out, int *exit_code)
{
    if (cli_parse_int(value, min, max, out) == 0)
        return true;
    *exit_code = cli_usage_error(c, "%s: expected a whole number from %ld to %ld, got '%.40s'",
                                 name, min, max, value);
    return false;
}

char *cli_state_dir(const struct cli_ctx *c)
{
    char cwd[PATH_MAX];
    char *out;

    if (!c->state_dir)
        return default_state_dir(); /* $PORTHOLE_STATE_DIR, else XDG */
    if (c->state_dir[0] == '/')
        return strdup(c->state_dir);
    /* Absolute, so a gateway started from here finds the same directory. */
    if (!getcwd(cwd, sizeof(cwd)) || asprintf(&out, "%s/%s", cwd, c->state_dir) < 0)
        return NULL;
    return out;
}

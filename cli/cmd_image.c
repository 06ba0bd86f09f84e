/* `porthole image build`: runs the guest-image recipe (a bash script shipped
 * with porthole) and streams its progress. The recipe does the work; this
 * command finds it, tells it where images live, and reports its status. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "util.h"

static const char usage_image[] =
    "Usage: porthole image build [base|browser|all] [--force] [--json]\n"
    "\n"
    "Builds guest images from Debian packages into the cache dir\n"
    "($PORTHOLE_CACHE_DIR, else $XDG_CACHE_HOME/porthole), using the recipe\n"
    "guest-image/build.sh. Needs root (mmdebstrap) and network access; an image\n"
    "whose recipe did not change is kept unless --force.\n"
    "\n"
    "  base      the command-sandbox image\n"
    "  browser   the image with Chromium and a VNC server\n"
    "  all       both (default)\n"
    "  --force   rebuild even when the image is up to date\n"
    "  --json    progress on stderr, one envelope on stdout\n";

/* The installed recipe first, then the source tree this binary was built from. */
static int find_recipe(char *out, size_t len)
{
    const char *roots[] = {PORTHOLE_DATADIR, PORTHOLE_SOURCE_ROOT};

    for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
        snprintf(out, len, "%s/guest-image/build.sh", roots[i]);
        if (access(out, R_OK) == 0)
            return 0;
    }
    return -ENOENT;
}

static int run_recipe(struct cli_ctx *c, const char *recipe, const char *flavour, const char *cache,
                      bool force, int *status)
{
    char *argv[] = {"bash",        (char *)recipe, (char *)flavour,
                    "--cache-dir", (char *)cache,  force ? "--force" : NULL,
                    NULL};
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    pid_t pid, w;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* With --json, stdout carries only the envelope. */
        if (c->json && dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
            _exit(127);
        execvp("bash", argv);
        dprintf(STDERR_FILENO, "porthole: cannot run bash: %m\n");
        _exit(127);
    }
    /* Like system(): Ctrl-C stops the recipe, and we report how it ended. */
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    do
        w = waitpid(pid, status, 0);
    while (w < 0 && errno == EINTR);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    return w < 0 ? -errno : 0;
}

static int image_build(struct cli_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    _cleanup_free_ char *cache = NULL;
    char recipe[PATH_MAX];
    static const char *const flavours[] = {"base", "browser"};
    const char *flavour = "all";
    json_t *built;
    struct cli_error err;
    bool force = false;
    int opt, code, status, r;

    c->command = "image.build";
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":hf", opts, NULL)) != -1) {
        if (opt == 'f')
            force = true;
        else if (!cli_common_option(c, opt, argc, argv, &code))
            return code;
    }
    if (argc - optind > 1)
        return cli_usage_error(c, "expected at most one flavour");
    if (optind < argc)
        flavour = argv[optind];
    if (strcmp(flavour, "base") != 0 && strcmp(flavour, "browser") != 0 &&
        strcmp(flavour, "all") != 0)
        return cli_usage_error(c, "unknown flavour '%.32s': base, browser or all", flavour);
    if (find_recipe(recipe, sizeof(recipe)) < 0) {
        cli_error_set(&err, 1, "recipe_missing", "reinstall porthole", -ENOENT,
                      "guest-image/build.sh not found under %s or %s", PORTHOLE_DATADIR,
                      PORTHOLE_SOURCE_ROOT);
        return cli_fail(c, &err);
    }
    /* The recipe writes where vm_image_dir(default_cache_dir()) reads. */
    cache = default_cache_dir();
    built = json_array();
    if (!cache || !built) {
        json_decref(built);
        cli_error_set(&err, 1, "internal", NULL, -ENOMEM, "out of memory");
        return cli_fail(c, &err);
    }
    /* The recipe builds one flavour per run; "all" is base, then browser. */
    for (size_t i = 0; i < ARRAY_SIZE(flavours); i++) {
        if (strcmp(flavour, "all") != 0 && strcmp(flavour, flavours[i]) != 0)
            continue;
        cli_notice(c, "building the %s image into %s (%s)", flavours[i], cache, recipe);
        r = run_recipe(c, recipe, flavours[i], cache, force, &status);
        if (r < 0) {
            json_decref(built);
            cli_error_set(&err, 1, "image_build_failed", NULL, r, "cannot run %s: %s", recipe,
                          strerror(-r));
            return cli_fail(c, &err);
        }
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code != 0) {
            cli_error_set(&err, code, "image_build_failed",
                          c->json ? "read the recipe's output on stderr"
                                  : "read the recipe's output above",
                          -EIO, "building the %s image failed (exit status %d)", flavours[i], code);
            return cli_emit(c, code,
                            json_pack("{s:s, s:o, s:s, s:s, s:s, s:i}", "flavour", flavour, "built",
                                      built, "failed", flavours[i], "recipe", recipe, "cache_dir",
                                      cache, "exit_status", code),
                            &err);
        }
        json_array_append_new(built, json_string(flavours[i]));
    }
    return cli_ok(c, json_pack("{s:s, s:o, s:s, s:s, s:i}", "flavour", flavour, "built", built,
                               "recipe", recipe, "cache_dir", cache, "exit_status", 0));
}

int cmd_image(struct cli_ctx *c, int argc, char **argv)
{
    c->command = "image";
    c->usage = usage_image;
    if (argc < 2)
        return cli_usage_error(c, "missing image command: build");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0)
        return cli_help(c);
    if (strcmp(argv[1], "build") == 0)
        return image_build(c, argc - 1, argv + 1);
    return cli_usage_error(c, "unknown image command '%.64s'", argv[1]);
}

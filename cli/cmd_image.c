/* `porthole image build|list`: runs the guest-image recipe (a bash script shipped
 * with porthole) and streams its progress. The recipe does the work; this
 * command finds it, tells it where images live, and reports its status. */
#include <dirent.h>
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
    "       porthole image build NAME --packages PKG,... | --recipe FILE [--force] [--json]\n"
    "       porthole image list [--json]\n"
    "\n"
    "Builds guest images from Debian packages into the cache dir\n"
    "($PORTHOLE_CACHE_DIR, else $XDG_CACHE_HOME/porthole), using the recipe\n"
    "guest-image/build.sh. Needs root (mmdebstrap) and network access; an image\n"
    "whose recipe did not change is kept unless --force.\n"
    "\n"
    "  base            the command-sandbox image\n"
    "  browser         the image with Chromium and a VNC server\n"
    "  all             both (default)\n"
    "  NAME            a custom sandbox image: base plus more Debian packages, for\n"
    "                  'porthole sandbox create --image NAME' or {\"image\": NAME}\n"
    "  --packages L    the custom image's packages, comma-separated\n"
    "  --recipe FILE   the same from a file, one package per line ('#' comments)\n"
    "  --force         rebuild even when the image is up to date\n"
    "  --json          progress on stderr, one envelope on stdout\n";

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

struct custom_image {
    const char *packages; /* NULL for base and browser */
    const char *recipe_file;
};

static int run_recipe(struct cli_ctx *c, const char *recipe, const char *flavour, const char *cache,
                      bool force, const struct custom_image *custom, int *status)
{
    char *argv[12] = {"bash", (char *)recipe, (char *)flavour, "--cache-dir", (char *)cache};
    size_t n = 5;

    if (force)
        argv[n++] = "--force";
    if (custom->packages) {
        argv[n++] = "--packages";
        argv[n++] = (char *)custom->packages;
    }
    if (custom->recipe_file) {
        argv[n++] = "--recipe";
        argv[n++] = (char *)custom->recipe_file;
    }
    argv[n] = NULL;
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
        {"packages", required_argument, NULL, 'p'},
        {"recipe", required_argument, NULL, 'r'},
        CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    _cleanup_free_ char *cache = NULL;
    char recipe[PATH_MAX];
    static const char *const flavours[] = {"base", "browser"};
    const char *flavour = "all";
    struct custom_image custom = {0};
    json_t *built;
    struct cli_error err;
    bool force = false, is_custom;
    int opt, code, status, r;

    c->command = "image.build";
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":hf", opts, NULL)) != -1) {
        if (opt == 'f')
            force = true;
        else if (opt == 'p')
            custom.packages = optarg;
        else if (opt == 'r')
            custom.recipe_file = optarg;
        else if (!cli_common_option(c, opt, argc, argv, &code))
            return code;
    }
    if (argc - optind > 1)
        return cli_usage_error(c, "expected at most one image name");
    if (optind < argc)
        flavour = argv[optind];
    is_custom = strcmp(flavour, "base") != 0 && strcmp(flavour, "browser") != 0 &&
                strcmp(flavour, "all") != 0;
    if (is_custom && !custom.packages && !custom.recipe_file)
        return cli_usage_error(c, "custom image '%.32s': give --packages PKG,... or --recipe FILE",
                               flavour);
    if (!is_custom && (custom.packages || custom.recipe_file))
        return cli_usage_error(c,
                               "%s is built from its own lists; name a custom image: "
                               "porthole image build NAME --packages ...",
                               flavour);
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
    /* The recipe builds one image per run; "all" is base, then browser. */
    for (size_t i = 0; i < (is_custom ? 1 : ARRAY_SIZE(flavours)); i++) {
        const char *name = is_custom ? flavour : flavours[i];
        if (strcmp(flavour, "all") != 0 && strcmp(flavour, name) != 0)
            continue;
        cli_notice(c, "building the %s image into %s (%s)", name, cache, recipe);
        r = run_recipe(c, recipe, name, cache, force, &custom, &status);
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
                          -EIO, "building the %s image failed (exit status %d)", name, code);
            return cli_emit(c, code,
                            json_pack("{s:s, s:o, s:s, s:s, s:s, s:i}", "flavour", flavour, "built",
                                      built, "failed", name, "recipe", recipe, "cache_dir", cache,
                                      "exit_status", code),
                            &err);
        }
        json_array_append_new(built, json_string(name));
    }
    return cli_ok(c, json_pack("{s:s, s:o, s:s, s:s, s:i}", "flavour", flavour, "built", built,
                               "recipe", recipe, "cache_dir", cache, "exit_status", 0));
}

/* The images of the cache dir: each NAME link with a complete build. */
static int image_list(struct cli_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    _cleanup_free_ char *cache = default_cache_dir(), *dir = NULL;
    json_t *list = json_array();
    struct cli_error err;
    struct dirent *e;
    int opt, code;
    DIR *d;

    c->command = "image.list";
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
        if (!cli_common_option(c, opt, argc, argv, &code)) {
            json_decref(list);
            return code;
        }
    if (!cache || !list || asprintf(&dir, "%s/images", cache) < 0) {
        json_decref(list);
        cli_error_set(&err, 1, "internal", NULL, -ENOMEM, "out of memory");
        return cli_fail(c, &err);
    }
    if ((d = opendir(dir))) {
        while ((e = readdir(d))) {
            _cleanup_free_ char *manifest = NULL, *text = NULL;
            if (e->d_name[0] == '.' || e->d_type != DT_LNK ||
                asprintf(&manifest, "%s/%s/manifest.json", dir, e->d_name) < 0 ||
                read_file(manifest, &text, NULL, 64 * 1024) < 0)
                continue;
            json_t *m = json_loads(text, 0, NULL);
            const char *pkgs = json_string_value(json_object_get(m, "packages"));
            json_array_append_new(
                list,
                json_pack("{s:s, s:s?, s:s?, s:I}", "name", e->d_name, "built_at",
                          json_string_value(json_object_get(m, "built_at")), "packages",
                          pkgs && *pkgs ? pkgs : NULL, "rootfs_bytes",
                          (json_int_t)json_integer_value(json_object_get(m, "rootfs_bytes"))));
            if (!c->json)
                printf("%-20s %s %5lld MiB%s%s\n", e->d_name,
                       json_string_value(json_object_get(m, "built_at")) ?: "?",
                       (long long)(json_integer_value(json_object_get(m, "rootfs_bytes")) >> 20),
                       pkgs && *pkgs ? "  + " : "", pkgs && *pkgs ? pkgs : "");
            json_decref(m);
        }
        closedir(d);
    }
    return cli_ok(c, json_pack("{s:o, s:s}", "images", list, "cache_dir", cache));
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
    if (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "ls") == 0)
        return image_list(c, argc - 1, argv + 1);
    return cli_usage_error(c, "unknown image command '%.64s'", argv[1]);
}

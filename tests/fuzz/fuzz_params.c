/* Fuzz target for the API's request-body validators (gateway/params.c).
 * The input is a request body: it goes through every parser, as it could
 * reach any endpoint. Whatever the bytes: no crash or leak, a refusal is a
 * 400 with a message, and what a parser accepts keeps the promises of
 * params.h (ranges, names, canonical allow-lists the guest can take). */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "params.h"
#include "util.h"

/* r from a parser: true when it accepted, else the refusal is checked. */
static bool accepted(int r, const struct ph_error *err)
{
    if (r >= 0) {
        REQUIRE(r == 0);
        return true;
    }
    REQUIRE(err->kind == PH_ERR_INVALID || (err->kind == PH_ERR_INTERNAL && r == -ENOMEM));
    REQUIRE(err->message[0] && strnlen(err->message, sizeof(err->message)) < sizeof(err->message));
    return false;
}

static void check_env(json_t *env)
{
    const char *key;
    json_t *v;
    size_t total = 0;

    REQUIRE(json_is_object(env) && json_object_size(env) <= PARAMS_MAX_ENV);
    json_object_foreach(env, key, v)
    {
        const char *s = json_string_value(v);
        REQUIRE(env_name_valid(key) && s);
        REQUIRE(strlen(s) == json_string_length(v) && !strpbrk(s, "\r\n"));
        REQUIRE(json_string_length(v) <= PARAMS_MAX_ENV_VALUE);
        total += strlen("env==\n") + strlen(key) + strlen(s);
    }
    REQUIRE(total <= PARAMS_MAX_ENV_TOTAL);
}

/* An accepted allow-list: canonical (it parses again to itself), and
 * matching what each entry promises. */
static void check_allowed(enum net_mode mode, json_t *allowed)
{
    size_t i;
    json_t *d;

    REQUIRE((mode == NET_ALLOWLIST) == (allowed != NULL));
    if (!allowed)
        return;
    REQUIRE(json_array_size(allowed) <= BROWSER_MAX_DOMAINS);

    json_t *body = json_pack("{s:O}", "allowed_domains", allowed), *again = NULL;
    enum net_mode mode2;
    struct ph_error err = {0};
    REQUIRE(body);
    REQUIRE(network_params_parse(body, &mode2, &again, &err) == 0 && mode2 == NET_ALLOWLIST);
    REQUIRE(json_equal(again, allowed));
    json_decref(again);
    json_decref(body);

    json_array_foreach(allowed, i, d)
    {
        const char *p = json_string_value(d);
        json_t *one = json_pack("[s]", p);
        char sub[300];
        REQUIRE(p && *p && one);
        for (const char *c = p; *c; c++)
            REQUIRE(!(*c >= 'A' && *c <= 'Z'));
        if (strncmp(p, "*.", 2) == 0) {
            /* Subdomains at any depth, never the domain itself. */
            snprintf(sub, sizeof(sub), "a.b%s", p + 1);
            REQUIRE(domain_allowed(one, sub) && !domain_allowed(one, p + 2));
        } else {
            REQUIRE(domain_allowed(one, p));
        }
        json_decref(one);
    }
}

/* What a sandbox and a browser share: nothing left to free after a
 * refusal; env_vars and an allow-list that keep their promises. */
static void check_shared(bool ok, json_t *env, enum net_mode mode, json_t *allowed)
{
    if (!ok) {
        REQUIRE(!env && !allowed);
        return;
    }
    check_env(env);
    check_allowed(mode, allowed);
}

static void sandbox(json_t *body)
{
    struct sandbox_params p;
    struct ph_error err = {0}, e2;
    bool ok = accepted(sandbox_params_parse(body, &p, &err), &err);

    check_shared(ok, p.env_vars, p.net_mode, p.allowed_domains);
    if (!ok)
        return;
    REQUIRE(!p.id[0] || instance_id_check(p.id, "id", &e2) == 0);
    REQUIRE(p.vcpus >= 1 && p.vcpus <= 8);
    REQUIRE(p.mem_mib >= 256 && p.mem_mib <= 16384);
    REQUIRE(p.disk_mib == 0 || (p.disk_mib >= 1024 && p.disk_mib <= 65536));
    REQUIRE(p.timeout_minutes >= 1 && p.timeout_minutes <= 1440);
    /* An image name never names a path or the browser image. */
    REQUIRE(!p.image[0] || (image_name_check(p.image, "image", &e2) == 0 && !strchr(p.image, '/') &&
                            strcmp(p.image, "browser") != 0 && strcmp(p.image, "base") != 0));
    sandbox_params_done(&p);
}

static void browser(json_t *body)
{
    struct browser_params p;
    struct ph_error err = {0};
    bool ok = accepted(browser_params_parse(body, &p, &err), &err);

    check_shared(ok, p.env_vars, p.net_mode, p.allowed_domains);
    if (!ok)
        return;
    REQUIRE(p.width >= 640 && p.width <= 7680 && p.height >= 480 && p.height <= 4320);
    REQUIRE(!p.record_video || p.live);
    REQUIRE(!p.profile_id[0] || (p.persistent && profile_id_valid(p.profile_id)));
    REQUIRE(p.timeout_minutes >= 1 && p.timeout_minutes <= 240);
    REQUIRE(p.mem_mib >= 512 && p.mem_mib <= 16384);
    REQUIRE(p.disk_mib == 0 || (p.disk_mib >= 2048 && p.disk_mib <= 16384));
    browser_params_done(&p);
}

static void exec(json_t *body)
{
    struct exec_params p;
    struct ph_error err = {0};

    if (!accepted(exec_params_parse(body, &p, &err), &err))
        return;
    REQUIRE(p.command && *p.command && strlen(p.command) <= RUN_MAX_COMMAND_LEN);
    REQUIRE(p.shell == RUN_SHELL_LOGIN || p.shell == RUN_SHELL_RAW);
    REQUIRE(p.timeout_s >= 1 && p.timeout_s <= RUN_MAX_TIMEOUT_S);
}

static void ports(json_t *body)
{
    struct port_params p;
    struct ph_error err = {0};

    if (!accepted(port_params_parse(body, &p, &err), &err))
        return;
    REQUIRE(p.guest_port >= 1 && p.guest_port <= 65535);
    REQUIRE(p.host_port >= 0 && p.host_port <= 65535);
}

static void guest_path(const char *path)
{
    struct ph_error err = {0};

    if (!accepted(guest_path_check(path, &err), &err))
        return;
    size_t n = strlen(path);
    REQUIRE(path[0] == '/' && path[n - 1] != '/' && n <= PARAMS_MAX_PATH);
    for (size_t i = 0; i < n; i++)
        REQUIRE((unsigned char)path[i] >= 0x20 && path[i] != 0x7f);
    for (const char *seg = path; (seg = strstr(seg, "..")); seg++)
        REQUIRE(!(seg[-1] == '/' && (seg[2] == '/' || seg[2] == '\0')));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    /* As http_json_body reads a body, and with NULs inside strings, which
     * the parsers must refuse themselves. */
    json_t *body =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);

    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    sandbox(body);
    browser(body);
    exec(body);
    ports(body);
    const char *path = json_string_value(json_object_get(body, "path"));
    if (path)
        guest_path(path);
    json_t *env = json_object_get(body, "env_vars"), *copy = NULL;
    struct ph_error err = {0};
    if (accepted(env_vars_parse(env, "env_vars", &copy, &err), &err))
        check_env(copy);
    json_decref(copy);
    json_decref(body);
    return 0;
}

#include "params.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "urlhost.h"
#include "util.h"

int params_only(json_t *obj, const char *const *allowed, struct ph_error *err)
{
    const char *key;
    json_t *val;

    json_object_foreach(obj, key, val)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0)
                ok = true;
        if (!ok)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "unknown field \"%.64s\"", key);
    }
    return 0;
}

int params_int(json_t *obj, const char *field, int def, int min, int max, int *out,
               struct ph_error *err)
{
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "%s must be an integer", field);
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return ph_error_set(err, PH_ERR_INVALID, -ERANGE, "%s must be between %d and %d", field,
                            min, max);
    *out = (int)n;
    return 0;
}

int params_bool(json_t *obj, const char *field, bool def, bool *out, struct ph_error *err)
{
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "%s must be true or false", field);
    *out = json_is_true(v);
    return 0;
}

int params_string(json_t *obj, const char *field, const char *def, size_t max, const char **out,
                  struct ph_error *err)
{
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_string(v))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "%s must be a string", field);
    if (json_string_length(v) > max)
        return ph_error_set(err, PH_ERR_INVALID, -E2BIG, "%s is longer than %zu bytes", field, max);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "%s must not contain NUL", field);
    *out = json_string_value(v);
    return 0;
}

int env_vars_parse(json_t *value, const char *field, json_t **out, struct ph_error *err)
{
    const char *key;
    json_t *val;
    size_t total = 0;

    if (!value || json_is_null(value)) {
        *out = json_object();
        return *out ? 0 : ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    if (!json_is_object(value))
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "%s must be an object of NAME: \"value\"",
                            field);
    if (json_object_size(value) > PARAMS_MAX_ENV)
        return ph_error_set(err, PH_ERR_INVALID, -E2BIG, "%s holds more than %d variables", field,
                            PARAMS_MAX_ENV);
    json_object_foreach(value, key, val)
    {
        if (!env_name_valid(key))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "%s: \"%.64s\" is not a valid variable name", field, key);
        if (!json_is_string(val))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "%s.%s must be a string", field, key);
        const char *s = json_string_value(val);
        size_t n = json_string_length(val);
        if (n > PARAMS_MAX_ENV_VALUE)
            return ph_error_set(err, PH_ERR_INVALID, -E2BIG, "%s.%s is longer than %d bytes", field,
                                key, PARAMS_MAX_ENV_VALUE);
        /* Values travel to the guest as one config line each. */
        if (strlen(s) != n || strpbrk(s, "\n\r"))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "%s.%s must not contain newlines or NUL", field, key);
        total += strlen("env==\n") + strlen(key) + n;
    }
    if (total > PARAMS_MAX_ENV_TOTAL)
        return ph_error_set(err, PH_ERR_INVALID, -E2BIG,
                            "%s take %zu bytes in all; the guest takes at most %d", field, total,
                            PARAMS_MAX_ENV_TOTAL);
    *out = json_deep_copy(value);
    return *out ? 0 : ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
}

void sandbox_params_done(struct sandbox_params *p)
{
    json_decref(p->env_vars);
    json_decref(p->allowed_domains);
    p->env_vars = p->allowed_domains = NULL;
}

/* 1..max of [a-z0-9_-], starting with a letter or digit, and ending with
 * one when end_alnum. */
static bool name_ok(const char *s, size_t max, bool end_alnum)
{
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= max;

    for (size_t i = 0; ok && i < n; i++) {
        bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
        ok = alnum || ((s[i] == '-' || s[i] == '_') && i > 0 && (!end_alnum || i + 1 < n));
    }
    return ok;
}

int instance_id_check(const char *id, const char *field, struct ph_error *err)
{
    /* vm-: the pool's VMs; snap- and fork-: snapshots, whose records
     * share the state's id space. */
    if (!name_ok(id, 39, true) || strncmp(id, "vm-", 3) == 0 || strncmp(id, "snap-", 5) == 0 ||
        strncmp(id, "fork-", 5) == 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "%s must be 1 to 39 of a-z, 0-9, '-' and '_', start and end with a "
                            "letter or digit, and not start with \"vm-\", \"snap-\" or \"fork-\"",
                            field);
    return 0;
}

int image_name_check(const char *name, const char *field, struct ph_error *err)
{
    if (!name_ok(name, 31, false) || strcmp(name, "browser") == 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "%s must name a sandbox image: \"base\" or a custom one (1 to 31 of "
                            "a-z, 0-9, '-' and '_', starting with a letter or digit)",
                            field);
    return 0;
}

static int sandbox_params_fields(json_t *body, struct sandbox_params *p, struct ph_error *err)
{
    static const char *const allowed[] = {
        "id",   "vcpus",   "mem_mib",         "disk_mib", "env_vars",      "timeout_minutes",
        "wait", "network", "allowed_domains", "image",    "from_snapshot", NULL};
    const char *id = NULL, *image = NULL, *snap = NULL;
    int r;

    memset(p, 0, sizeof(*p));
    if ((r = params_only(body, allowed, err)) < 0 ||
        (r = params_string(body, "id", NULL, 39, &id, err)) < 0 ||
        (id && (r = instance_id_check(id, "id", err)) < 0) ||
        (r = params_int(body, "vcpus", SANDBOX_DEFAULT_VCPUS, 1, 8, &p->vcpus, err)) < 0 ||
        (r = params_int(body, "mem_mib", SANDBOX_DEFAULT_MEM_MIB, 256, 16384, &p->mem_mib, err)) <
            0 ||
        (r = params_int(body, "disk_mib", 0, 0, 65536, &p->disk_mib, err)) < 0 ||
        (r = params_int(body, "timeout_minutes", 60, 1, 1440, &p->timeout_minutes, err)) < 0 ||
        (r = params_bool(body, "wait", true, &p->wait, err)) < 0 ||
        (r = params_string(body, "image", NULL, 31, &image, err)) < 0 ||
        (image && (r = image_name_check(image, "image", err)) < 0) ||
        (r = params_string(body, "from_snapshot", NULL, 39, &snap, err)) < 0)
        return r;
    p->has_vcpus = json_object_get(body, "vcpus") != NULL;
    p->has_mem = json_object_get(body, "mem_mib") != NULL;
    p->has_disk = json_object_get(body, "disk_mib") != NULL;
    p->has_image = image != NULL;
    if (snap)
        snprintf(p->from_snapshot, sizeof(p->from_snapshot), "%s", snap);
    if (image && strcmp(image, "base") != 0)
        snprintf(p->image, sizeof(p->image), "%s", image);
    if (p->disk_mib != 0 && p->disk_mib < 1024)
        return ph_error_set(err, PH_ERR_INVALID, -ERANGE,
                            "disk_mib must be 0 (image size) or between 1024 and 65536");
    if (id)
        snprintf(p->id, sizeof(p->id), "%s", id);
    if ((r = network_params_parse(body, &p->net_mode, &p->allowed_domains, err)) < 0)
        return r;
    return env_vars_parse(json_object_get(body, "env_vars"), "env_vars", &p->env_vars, err);
}

int exec_params_parse(json_t *body, struct exec_params *p, struct ph_error *err)
{
    static const char *const allowed[] = {"command", "shell", "timeout", "stream", NULL};
    const char *shell;
    int r;

    memset(p, 0, sizeof(*p));
    if ((r = params_only(body, allowed, err)) < 0 ||
        (r = params_bool(body, "stream", false, &p->stream, err)) < 0 ||
        (r = params_string(body, "command", NULL, RUN_MAX_COMMAND_LEN, &p->command, err)) < 0 ||
        (r = params_string(body, "shell", "login", 16, &shell, err)) < 0 ||
        (r = params_int(body, "timeout", RUN_DEFAULT_TIMEOUT_S, 1, RUN_MAX_TIMEOUT_S, &p->timeout_s,
                        err)) < 0)
        return r;
    if (!p->command || !*p->command)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "command is required");
    if (run_shell_parse(shell, &p->shell) < 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "shell must be \"login\" or \"raw\"");
    return 0;
}

int port_params_parse(json_t *body, struct port_params *p, struct ph_error *err)
{
    static const char *const allowed[] = {"guest_port", "host_port", "guest_loopback", NULL};
    int r;

    memset(p, 0, sizeof(*p));
    if ((r = params_only(body, allowed, err)) < 0 ||
        (r = params_int(body, "guest_port", 0, 1, 65535, &p->guest_port, err)) < 0 ||
        (r = params_int(body, "host_port", 0, 1, 65535, &p->host_port, err)) < 0 ||
        (r = params_bool(body, "guest_loopback", false, &p->guest_loopback, err)) < 0)
        return r;
    if (p->guest_port == 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "guest_port is required");
    return 0;
}

int guest_path_check(const char *path, struct ph_error *err)
{
    size_t n;

    if (!path || !*path)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "path is required");
    n = strlen(path);
    if (n > PARAMS_MAX_PATH)
        return ph_error_set(err, PH_ERR_INVALID, -ENAMETOOLONG, "path is longer than %d bytes",
                            PARAMS_MAX_PATH);
    if (path[0] != '/')
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "path must be absolute");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "path must not contain control characters");
    /* ".." would let a path name something other than what it spells out;
     * refuse it outright rather than resolve it. */
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        const char *end = strchrnul(p, '/');
        if ((end - p == 2 && p[0] == '.' && p[1] == '.'))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "path must not contain \"..\"");
        p = end;
    }
    if (path[n - 1] == '/')
        return ph_error_set(err, PH_ERR_INVALID, -EISDIR, "path names a directory");
    return 0;
}

bool profile_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

void browser_params_done(struct browser_params *p)
{
    json_decref(p->env_vars);
    json_decref(p->allowed_domains);
    p->env_vars = p->allowed_domains = NULL;
}

/* A pattern ("host" or "*.domain", lowercase) in the form the URL parser
 * gives hosts, so that the two compare as strings: "Example.com." is
 * "example.com", "127.1" is "127.0.0.1", "[0::1]" is "[::1]". */
static bool domain_pattern_canonical(const char *d, char *out, size_t len)
{
    bool wildcard = strncmp(d, "*.", 2) == 0;
    const char *name = wildcard ? d + 2 : d;
    _cleanup_free_ char *url = NULL;
    struct urlhost u;

    if (!*name)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.' ||
              (name[0] == '[' && strchr("[]:", *c))))
            return false;
    if (asprintf(&url, "http://%s/", name) < 0) {
        url = NULL;
        return false;
    }
    if (urlhost_parse(url, strlen(url), &u) < 0)
        return false;
    /* A wildcard is over a domain's subdomains; an address has none. */
    if (wildcard && u.kind != URLHOST_DOMAIN)
        return false;
    int n = snprintf(out, len, "%s%s", wildcard ? "*." : "", u.host);
    return n > 0 && (size_t)n < len;
}

static int browser_params_fields(json_t *body, struct browser_params *p, struct ph_error *err)
{
    static const char *const allowed[] = {"mode",
                                          "viewport",
                                          "record_video",
                                          "profile_mode",
                                          "profile_id",
                                          "timeout_minutes",
                                          "allow_downloads",
                                          "env_vars",
                                          "mem_size_mib",
                                          "disk_size_mib",
                                          "allowed_domains",
                                          "network",
                                          "wait",
                                          NULL};
    static const char *const vp_allowed[] = {"width", "height", NULL};
    const char *mode, *profile_mode, *profile_id;
    json_t *vp;
    int r;

    memset(p, 0, sizeof(*p));
    if ((r = params_only(body, allowed, err)) < 0 ||
        (r = params_string(body, "mode", "headless", 16, &mode, err)) < 0 ||
        (r = params_bool(body, "record_video", false, &p->record_video, err)) < 0 ||
        (r = params_string(body, "profile_mode", NULL, 16, &profile_mode, err)) < 0 ||
        (r = params_string(body, "profile_id", NULL, 64, &profile_id, err)) < 0 ||
        (r = params_int(body, "timeout_minutes", 30, 1, 240, &p->timeout_minutes, err)) < 0 ||
        (r = params_bool(body, "allow_downloads", true, &p->allow_downloads, err)) < 0 ||
        (r = params_int(body, "mem_size_mib", 2048, 512, 16384, &p->mem_mib, err)) < 0 ||
        (r = params_int(body, "disk_size_mib", 0, 0, 16384, &p->disk_mib, err)) < 0 ||
        (r = params_bool(body, "wait", true, &p->wait, err)) < 0)
        return r;
    if (strcmp(mode, "live") == 0)
        p->live = true;
    else if (strcmp(mode, "headless") != 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "mode must be \"headless\" or \"live\"");
    if (p->disk_mib != 0 && p->disk_mib < 2048)
        return ph_error_set(err, PH_ERR_INVALID, -ERANGE,
                            "disk_size_mib must be between 2048 and 16384");
    vp = json_object_get(body, "viewport");
    p->width = 1280;
    p->height = 720;
    if (vp && !json_is_null(vp)) {
        if (!json_is_object(vp))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "viewport must be an object {width, height}");
        struct ph_error sub = {0};
        if (params_only(vp, vp_allowed, &sub) < 0)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "viewport: %s", sub.message);
        if (params_int(vp, "width", 1280, 640, 7680, &p->width, &sub) < 0 ||
            params_int(vp, "height", 720, 480, 4320, &p->height, &sub) < 0)
            return ph_error_set(err, PH_ERR_INVALID, -ERANGE, "viewport.%s", sub.message);
    }
    if (p->record_video && !p->live)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "record_video needs mode \"live\" (a headless browser has no screen)");
    if (profile_mode && strcmp(profile_mode, "persistent") == 0)
        p->persistent = true;
    else if (profile_mode && strcmp(profile_mode, "ephemeral") != 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "profile_mode must be \"ephemeral\" or \"persistent\"");
    if (profile_id) {
        if (!profile_id_valid(profile_id))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "profile_id must be 1-64 characters of [A-Za-z0-9._-]");
        if (!profile_mode)
            p->persistent = true;
        else if (!p->persistent)
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "profile_id needs profile_mode \"persistent\"");
        snprintf(p->profile_id, sizeof(p->profile_id), "%s", profile_id);
    }
    if ((r = network_params_parse(body, &p->net_mode, &p->allowed_domains, err)) < 0)
        return r;
    return env_vars_parse(json_object_get(body, "env_vars"), "env_vars", &p->env_vars, err);
}

static int allowed_domains_parse(json_t *ad, json_t **out, struct ph_error *err)
{
    size_t i;
    json_t *d;

    if (!json_is_array(ad) || json_array_size(ad) > BROWSER_MAX_DOMAINS)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "allowed_domains must be an array of at most %d host names",
                            BROWSER_MAX_DOMAINS);
    if (!(*out = json_array()))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    json_array_foreach(ad, i, d)
    {
        char low[254];
        const char *s = json_string_value(d);
        if (!s || strlen(s) >= sizeof(low))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "allowed_domains[%zu] must be a host name", i);
        size_t k;
        for (k = 0; s[k]; k++)
            low[k] = (char)((s[k] >= 'A' && s[k] <= 'Z') ? s[k] + 32 : s[k]);
        low[k] = '\0';
        char canon[sizeof(low)];
        if (!domain_pattern_canonical(low, canon, sizeof(canon)))
            return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                                "allowed_domains[%zu] \"%.64s\" is not a host name or "
                                "\"*.\" and a domain",
                                i, s);
        if (json_array_append_new(*out, json_string(canon)) < 0)
            return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    }
    return 0;
}

const char *net_mode_name(enum net_mode mode)
{
    switch (mode) {
    case NET_NONE:
        return "none";
    case NET_ALLOWLIST:
        return "allowlist";
    default:
        return "internet";
    }
}

int network_params_parse(json_t *body, enum net_mode *mode, json_t **allowed, struct ph_error *err)
{
    const char *net;
    json_t *ad = json_object_get(body, "allowed_domains");
    int r;

    *mode = NET_INTERNET;
    *allowed = NULL;
    if ((r = params_string(body, "network", "internet", 16, &net, err)) < 0)
        return r;
    if (strcmp(net, "none") == 0)
        *mode = NET_NONE;
    else if (strcmp(net, "internet") != 0)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "network must be \"internet\" or \"none\"");
    if (!ad || json_is_null(ad))
        return 0;
    if (*mode == NET_NONE)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL,
                            "allowed_domains needs network \"internet\" (\"none\" allows nothing)");
    *mode = NET_ALLOWLIST;
    if ((r = allowed_domains_parse(ad, allowed, err)) < 0) {
        json_decref(*allowed);
        *allowed = NULL;
    }
    return r;
}

/* A failed parse leaves nothing to free: callers free only what parsed. */
int sandbox_params_parse(json_t *body, struct sandbox_params *p, struct ph_error *err)
{
    int r = sandbox_params_fields(body, p, err);
    if (r < 0)
        sandbox_params_done(p);
    return r;
}

int browser_params_parse(json_t *body, struct browser_params *p, struct ph_error *err)
{
    int r = browser_params_fields(body, p, err);
    if (r < 0)
        browser_params_done(p);
    return r;
}

bool domain_allowed(json_t *allowed, const char *host)
{
    size_t i, hl = strlen(host);
    json_t *d;

    json_array_foreach(allowed, i, d)
    {
        const char *pat = json_string_value(d);
        if (!pat)
            continue;
        if (strncmp(pat, "*.", 2) != 0) {
            if (strcmp(host, pat) == 0)
                return true;
            continue;
        }
        /* "*.x": the host ends in ".x" after at least one character, so
         * neither "x" nor "evil-x" match. */
        const char *suffix = pat + 1;
        size_t sl = strlen(suffix);
        if (hl > sl && strcmp(host + hl - sl, suffix) == 0)
            return true;
    }
    return false;
}

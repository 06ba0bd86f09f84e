/* Fuzz target for the guest init's config parser and the two files it
 * writes from a config (guest-image/init/guest_config.c): the env script that
 * login shells source and Chromium's managed policy. The input is a
 * config as the host passes it. Whatever it is: no crash, what the parser
 * keeps is valid, both files fit the buffers the guest builds them in,
 * the script gives back every value as it was (no quoting escapes), and
 * the policy is JSON that says what the config said. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "guest_config.h"
#include "fuzz.h"

static void check_parsed(const struct config *cfg)
{
    REQUIRE(valid_hostname(cfg->hostname));
    REQUIRE(cfg->width >= 320 && cfg->width <= 7680 && cfg->height >= 240 && cfg->height <= 4320);
    REQUIRE(valid_dir(cfg->profile_dir, sizeof(cfg->profile_dir)));
    REQUIRE(valid_dir(cfg->download_dir, sizeof(cfg->download_dir)));
    REQUIRE(!cfg->proxy[0] || valid_proxy(cfg->proxy, sizeof(cfg->proxy)));
    REQUIRE(cfg->n_env <= ENV_MAX);
    for (size_t i = 0; i < cfg->n_env; i++) {
        const char *eq = strchr(cfg->env[i], '=');
        REQUIRE(eq && valid_env_name(cfg->env[i], (size_t)(eq - cfg->env[i])));
        REQUIRE(!strchr(cfg->env[i], '\n'));
    }
    REQUIRE(cfg->n_allow_domains <= ALLOW_DOMAINS_MAX);
    REQUIRE(!cfg->n_allow_domains || cfg->restricted);
    for (size_t i = 0; i < cfg->n_allow_domains; i++)
        REQUIRE(valid_domain_pattern(cfg->allow_domains[i]));
}

/* What a POSIX shell makes of a word of '...' and \' pieces, to the end
 * of the line: the value back, or NULL when the word is anything else. */
static char *shell_unquote(const char *w, const char **end)
{
    char *out = malloc(strlen(w) + 1);
    size_t n = 0;

    REQUIRE(out);
    while (*w && *w != '\n') {
        if (*w == '\'') {
            const char *close = strchr(w + 1, '\'');
            if (!close)
                break;
            memcpy(out + n, w + 1, (size_t)(close - w - 1));
            n += (size_t)(close - w - 1);
            w = close + 1;
        } else if (w[0] == '\\' && w[1] == '\'') {
            out[n++] = '\'';
            w += 2;
        } else {
            break;
        }
    }
    if (*w != '\n') {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *end = w + 1;
    return out;
}

static void check_env_script(const struct config *cfg, const char *s)
{
    REQUIRE(s[0] == '#');
    s = strchr(s, '\n') + 1;
    if (cfg->proxy[0])
        for (int i = 0; i < 6; i++) {
            size_t len = strcspn(s, "\n");
            REQUIRE(strncmp(s, "export ", 7) == 0 && strcspn(s, "'") > len && s[len]);
            s += len + 1;
        }
    for (size_t i = 0; i < cfg->n_env; i++) {
        const char *eq = strchr(cfg->env[i], '=');
        size_t nl = (size_t)(eq - cfg->env[i]);
        REQUIRE(strncmp(s, "export ", 7) == 0 && strncmp(s + 7, cfg->env[i], nl + 1) == 0);
        char *value = shell_unquote(s + 7 + nl + 1, &s);
        REQUIRE(value && strcmp(value, eq + 1) == 0);
        free(value);
    }
    REQUIRE(*s == '\0');
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void check_policy(const struct config *cfg, const char *text, bool utf8)
{
    json_error_t je;
    json_t *p = json_loads(text, 0, &je);

    /* Chromium reads the policy as UTF-8 JSON; the host's configs are. */
    if (!utf8) {
        json_decref(p);
        return;
    }
    REQUIRE(json_is_object(p));
    if (cfg->downloads)
        REQUIRE(jstr(p, "DownloadDirectory") &&
                strcmp(jstr(p, "DownloadDirectory"), cfg->download_dir) == 0);
    else
        REQUIRE(json_integer_value(json_object_get(p, "DownloadRestrictions")) == 3);
    json_t *proxy = json_object_get(p, "ProxySettings");
    REQUIRE(!cfg->proxy[0] == !proxy);
    if (proxy)
        REQUIRE(strcmp(jstr(proxy, "ProxyServer"), cfg->proxy) == 0);

    json_t *allow = json_object_get(p, "URLAllowlist"), *block = json_object_get(p, "URLBlocklist");
    REQUIRE(!cfg->restricted == !allow && !allow == !block);
    if (cfg->restricted) {
        /* Everything blocked, but for about:blank and what was listed. */
        REQUIRE(json_array_size(allow) == cfg->n_allow_domains + 1);
        REQUIRE(strcmp(json_string_value(json_array_get(allow, 0)), "about:blank") == 0);
        REQUIRE(strcmp(json_string_value(json_array_get(block, 0)), "*") == 0);
        for (size_t i = 0; i < cfg->n_allow_domains; i++) {
            const char *d = cfg->allow_domains[i],
                       *a = json_string_value(json_array_get(allow, i + 1));
            REQUIRE(a && (strncmp(d, "*.", 2) == 0 ? strcmp(a, d + 2) == 0
                                                   : a[0] == '.' && strcmp(a + 1, d) == 0));
        }
        for (size_t i = 1; i < json_array_size(block); i++) {
            const char *b = json_string_value(json_array_get(block, i));
            REQUIRE(b && b[0] == '.' && !domain_listed(cfg, b + 1));
        }
    }
    json_decref(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[CONFIG_MAX + 1], env[ENV_SCRIPT_MAX], policy[POLICY_MAX];
    static struct config cfg;

    /* As read_file gives it: at most CONFIG_MAX bytes, NUL-terminated. */
    if (size > CONFIG_MAX)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    json_t *as_string = json_stringn((const char *)data, size);
    bool utf8 = as_string != NULL;
    json_decref(as_string);

    config_defaults(&cfg);
    REQUIRE(config_parse(&cfg, text, NULL, NULL) >= 0);
    check_parsed(&cfg);

    struct strbuf sb = {.data = env, .cap = sizeof(env)};
    REQUIRE(env_script_build(&cfg, &sb) == 0);
    check_env_script(&cfg, env);
    sb = (struct strbuf){.data = policy, .cap = sizeof(policy)};
    REQUIRE(policy_build(&cfg, &sb) == 0);
    check_policy(&cfg, policy, utf8);
    return 0;
}

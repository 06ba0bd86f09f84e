/* The per-VM config (key=value lines from the host) and the two files
 * written from it: the env script login shells source and Chromium's
 * managed policy. Pure: nothing here touches the system. */

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_config.h"

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->hostname, sizeof(cfg->hostname), "porthole");
    cfg->kind = KIND_SANDBOX;
    cfg->width = 1280;
    cfg->height = 720;
    cfg->downloads = true;
    snprintf(cfg->profile_dir, sizeof(cfg->profile_dir), "/root/porthole/profile");
    snprintf(cfg->download_dir, sizeof(cfg->download_dir), "/root/porthole/downloads");
}

/* "A.B.C.D:PORT": digits, dots and one colon, nothing a shell or a JSON
 * string would treat specially. */
bool valid_proxy(const char *s, size_t cap)
{
    size_t n = strlen(s), colons = 0;
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ':')
            colons++;
        else if (!(s[i] == '.' || (s[i] >= '0' && s[i] <= '9')))
            return false;
    }
    return colons == 1 && s[n - 1] != ':';
}

bool valid_hostname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[0] == '.')
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
    return true;
}

/* "host" or "*.domain" as the gateway writes them: lowercase names or
 * IPv4 addresses (IPv6 literals are left to the host's proxy). */
bool valid_domain_pattern(const char *s)
{
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    if (!*s || strlen(s) > 253 || *s == '.' || *s == '-')
        return false;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '.'))
            return false;
    return true;
}

bool domain_listed(const struct config *cfg, const char *pattern)
{
    for (size_t i = 0; i < cfg->n_allow_domains; i++)
        if (strcmp(cfg->allow_domains[i], pattern) == 0)
            return true;
    return false;
}

bool valid_env_name(const char *s, size_t n)
{
    if (n == 0 || n > 128 || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* Absolute, no "..": the value ends up in mkdir and in Chromium's policy. */
bool valid_dir(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n > 1 && n < max && s[0] == '/' && !strstr(s, "/../") &&
           strcmp(s + n - (n >= 3 ? 3 : n), "/..") != 0;
}

static bool parse_dimension(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    /* Digits only: strtoul would also take spaces, a sign and "-1". */
    if (!isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

int config_parse(struct config *cfg, char *text, config_reject_fn *reject, void *ctx)
{
    int rejected = 0;
    size_t line_no = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line_no++;
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            if (reject)
                reject(ctx, line_no, NULL);
            rejected++;
            continue;
        }
        *eq = '\0';
        const char *key = line, *val = eq + 1;
        bool ok = true;
        if (strcmp(key, "hostname") == 0) {
            ok = valid_hostname(val);
            if (ok)
                snprintf(cfg->hostname, sizeof(cfg->hostname), "%s", val);
        } else if (strcmp(key, "kind") == 0) {
            if (strcmp(val, "sandbox") == 0)
                cfg->kind = KIND_SANDBOX;
            else if (strcmp(val, "browser") == 0)
                cfg->kind = KIND_BROWSER;
            else
                ok = false;
        } else if (strcmp(key, "env") == 0) {
            const char *veq = strchr(val, '=');
            ok = veq && valid_env_name(val, (size_t)(veq - val)) && cfg->n_env < ENV_MAX;
            if (ok)
                cfg->env[cfg->n_env++] = val;
        } else if (strcmp(key, "resize_root") == 0) {
            cfg->resize_root = strcmp(val, "1") == 0;
        } else if (strcmp(key, "browser.mode") == 0) {
            if (strcmp(val, "live") == 0)
                cfg->headless = false;
            else if (strcmp(val, "headless") == 0)
                cfg->headless = true;
            else
                ok = false;
        } else if (strcmp(key, "browser.width") == 0) {
            ok = parse_dimension(val, 320, 7680, &cfg->width);
        } else if (strcmp(key, "browser.height") == 0) {
            ok = parse_dimension(val, 240, 4320, &cfg->height);
        } else if (strcmp(key, "browser.downloads") == 0) {
            cfg->downloads = strcmp(val, "1") == 0;
        } else if (strcmp(key, "browser.profile_dir") == 0) {
            ok = valid_dir(val, sizeof(cfg->profile_dir));
            if (ok)
                snprintf(cfg->profile_dir, sizeof(cfg->profile_dir), "%s", val);
        } else if (strcmp(key, "browser.allow_domain") == 0) {
            cfg->restricted = true;
            ok = !*val || (valid_domain_pattern(val) && cfg->n_allow_domains < ALLOW_DOMAINS_MAX);
            if (ok && *val)
                cfg->allow_domains[cfg->n_allow_domains++] = val;
        } else if (strcmp(key, "network.proxy") == 0) {
            ok = valid_proxy(val, sizeof(cfg->proxy));
            if (ok)
                snprintf(cfg->proxy, sizeof(cfg->proxy), "%s", val);
        } else if (strcmp(key, "browser.download_dir") == 0) {
            ok = valid_dir(val, sizeof(cfg->download_dir));
            if (ok)
                snprintf(cfg->download_dir, sizeof(cfg->download_dir), "%s", val);
        }
        /* Unknown keys are ignored: a newer host may send more. */
        if (!ok) {
            if (reject)
                reject(ctx, line_no, key);
            rejected++;
        }
    }
    return rejected;
}

static void sb_add(struct strbuf *sb, const char *s, size_t n)
{
    if (sb->overflow || n > sb->cap - 1 - sb->len) {
        sb->overflow = true;
        return;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

static void sb_str(struct strbuf *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

/* POSIX shells have no escape inside '...': close, add \', reopen. */
static void sb_shell_quote(struct strbuf *sb, const char *s)
{
    sb_str(sb, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            sb_str(sb, "'\\''");
        else
            sb_add(sb, p, 1);
    }
    sb_str(sb, "'");
}

static void sb_json_string(struct strbuf *sb, const char *s)
{
    sb_str(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_add(sb, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            sb_str(sb, esc);
        } else {
            sb_add(sb, (const char *)p, 1);
        }
    }
    sb_str(sb, "\"");
}

int env_script_build(const struct config *cfg, struct strbuf *sb)
{
    sb_str(sb, "# Written by porthole-init from the VM's config (boot or browser-configure).\n");
    if (cfg->proxy[0]) {
        /* The only way out: the host's egress proxy. Programs that ignore
         * these variables reach nothing. */
        static const char *const names[] = {"http_proxy", "https_proxy", "HTTP_PROXY",
                                            "HTTPS_PROXY"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            sb_str(sb, "export ");
            sb_str(sb, names[i]);
            sb_str(sb, "=http://");
            sb_str(sb, cfg->proxy);
            sb_str(sb, "\n");
        }
        sb_str(sb, "export no_proxy=localhost,127.0.0.1,::1\nexport NO_PROXY=$no_proxy\n");
    }
    for (size_t i = 0; i < cfg->n_env; i++) {
        const char *eq = strchr(cfg->env[i], '=');
        sb_str(sb, "export ");
        sb_add(sb, cfg->env[i], (size_t)(eq - cfg->env[i]));
        sb_str(sb, "=");
        sb_shell_quote(sb, eq + 1);
        sb_str(sb, "\n");
    }
    return sb->overflow ? -E2BIG : 0;
}

int policy_build(const struct config *cfg, struct strbuf *sb)
{
    if (!cfg->downloads) {
        /* 3 = block all downloads. */
        sb_str(sb, "{\"DownloadRestrictions\": 3");
    } else {
        sb_str(sb, "{\"DownloadDirectory\": ");
        sb_json_string(sb, cfg->download_dir);
        sb_str(sb, ", \"PromptForDownload\": false");
    }
    if (cfg->proxy[0]) {
        /* A managed policy: no page or extension can change it. */
        sb_str(sb, ", \"ProxySettings\": {\"ProxyMode\": \"fixed_servers\", \"ProxyServer\": ");
        sb_json_string(sb, cfg->proxy);
        sb_str(sb, "}");
    }
    if (cfg->restricted) {
        /* Chromium's filters: "x" is x and its subdomains, ".x" is x alone.
         * "*.x" (subdomains only) allows "x" and blocks ".x", the more
         * specific filter, unless x itself is listed too. The host's proxy
         * enforces the same list whatever Chromium does. */
        sb_str(sb, ", \"URLAllowlist\": [\"about:blank\"");
        for (size_t i = 0; i < cfg->n_allow_domains; i++) {
            const char *d = cfg->allow_domains[i];
            char exact[256];
            snprintf(exact, sizeof(exact), ".%s", d);
            sb_str(sb, ", ");
            sb_json_string(sb, strncmp(d, "*.", 2) == 0 ? d + 2 : exact);
        }
        sb_str(sb, "], \"URLBlocklist\": [\"*\"");
        for (size_t i = 0; i < cfg->n_allow_domains; i++) {
            const char *d = cfg->allow_domains[i];
            if (strncmp(d, "*.", 2) == 0 && !domain_listed(cfg, d + 2)) {
                sb_str(sb, ", ");
                sb_json_string(sb, d + 1);
            }
        }
        sb_str(sb, "]");
    }
    sb_str(sb, "}\n");
    return sb->overflow ? -E2BIG : 0;
}

/* The guest init's config (guest-image/init/guest_config.c): what the
 * parser keeps and refuses, line by line and at every bound, and the env
 * script and Chromium policy written from it, quoting and overflow
 * included. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "guest_config.h"

/* What config_parse refused: line numbers and keys ("-" for no '='). */
struct rejects {
    size_t n;
    size_t line[8];
    char key[8][64];
};

static void note_reject(void *ctx, size_t line_no, const char *key)
{
    struct rejects *r = ctx;
    if (r->n < 8) {
        r->line[r->n] = line_no;
        snprintf(r->key[r->n], sizeof(r->key[r->n]), "%s", key ? key : "-");
    }
    r->n++;
}

/* Private copies of the texts parsed: cfg points into them, so they live
 * until the end (texts_free). */
static char **texts;
static size_t n_texts;

static int parse(struct config *cfg, const char *text, struct rejects *rej)
{
    char *copy = strdup(text), **grown = realloc(texts, (n_texts + 1) * sizeof(*texts));
    CHECK(copy != NULL && grown != NULL);
    texts = grown;
    texts[n_texts++] = copy;
    config_defaults(cfg);
    memset(rej, 0, sizeof(*rej));
    return config_parse(cfg, copy, note_reject, rej);
}

static void texts_free(void)
{
    for (size_t i = 0; i < n_texts; i++)
        free(texts[i]);
    free(texts);
}

/* One "key=value" line: whether it was kept (no refusal). */
static bool accepts(const char *key, const char *value)
{
    static struct config cfg;
    struct rejects rej;
    char line[8192];
    snprintf(line, sizeof(line), "%s=%s\n", key, value);
    return parse(&cfg, line, &rej) == 0 && rej.n == 0;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_defaults_and_full_config(void)
{
    static struct config cfg;
    struct rejects rej;

    config_defaults(&cfg);
    CHECK_STR(cfg.hostname, "porthole");
    CHECK(cfg.kind == KIND_SANDBOX && !cfg.headless && cfg.downloads && !cfg.restricted);
    CHECK(cfg.width == 1280 && cfg.height == 720 && cfg.proxy[0] == '\0');

    CHECK(parse(&cfg,
                "hostname=vm-1.test\nkind=browser\nresize_root=1\nenv=A=1\nenv=B=x=y\n"
                "browser.mode=headless\nbrowser.width=1920\nbrowser.height=1080\n"
                "browser.downloads=0\nbrowser.profile_dir=/p/prof\n"
                "browser.download_dir=/p/dl\nnetwork.proxy=10.0.2.100:3128\n"
                "browser.allow_domain=a.test\n",
                &rej) == 0);
    CHECK_STR(cfg.hostname, "vm-1.test");
    CHECK(cfg.kind == KIND_BROWSER && cfg.resize_root && cfg.headless && !cfg.downloads);
    CHECK(cfg.width == 1920 && cfg.height == 1080);
    CHECK(cfg.n_env == 2);
    CHECK_STR(cfg.env[0], "A=1");
    CHECK_STR(cfg.env[1], "B=x=y");
    CHECK_STR(cfg.profile_dir, "/p/prof");
    CHECK_STR(cfg.download_dir, "/p/dl");
    CHECK_STR(cfg.proxy, "10.0.2.100:3128");
    CHECK(cfg.restricted && cfg.n_allow_domains == 1);
    CHECK_STR(cfg.allow_domains[0], "a.test");
}

static void test_lines(void)
{
    static struct config cfg;
    struct rejects rej;

    /* Comments, blank lines and CRLF; an unknown key is no refusal (a newer
     * host may send more), a line without '=' and a bad value are, each
     * with its own line number. */
    CHECK(parse(&cfg,
                "# comment\r\n\r\n\nhostname=crlf\r\nfuture.key=whatever\nno equals sign\n"
                "kind=toaster\n=\nbrowser.width=800",
                &rej) == 2);
    CHECK_STR(cfg.hostname, "crlf");
    CHECK(cfg.kind == KIND_SANDBOX && cfg.width == 800);
    /* "=" has an empty key: unknown, so skipped. */
    CHECK(rej.n == 2);
    CHECK(rej.line[0] == 6);
    CHECK_STR(rej.key[0], "-");
    CHECK(rej.line[1] == 7);
    CHECK_STR(rej.key[1], "kind");

    /* A refused value leaves the default, and later lines still count. */
    CHECK(parse(&cfg, "hostname=-bad\nhostname=good\nbrowser.mode=fullscreen\n", &rej) == 2);
    CHECK_STR(cfg.hostname, "good");
    CHECK(!cfg.headless);

    /* No callback: refusals are still counted. */
    char text[] = "a\nb\nkind=browser\n";
    config_defaults(&cfg);
    CHECK(config_parse(&cfg, text, NULL, NULL) == 2 && cfg.kind == KIND_BROWSER);

    CHECK(parse(&cfg, "", &rej) == 0 && rej.n == 0);
    CHECK(parse(&cfg, "\n\n\r\n", &rej) == 0 && rej.n == 0);
}

static void test_hostname_bounds(void)
{
    char *h63 = repeat('a', 63), *h64 = repeat('a', 64);
    CHECK(accepts("hostname", h63));
    CHECK(!accepts("hostname", h64));
    CHECK(accepts("hostname", "a-b.c9"));
    CHECK(!accepts("hostname", ""));
    CHECK(!accepts("hostname", "-a"));
    CHECK(!accepts("hostname", ".a"));
    CHECK(!accepts("hostname", "a_b"));
    CHECK(!accepts("hostname", "a b"));
    CHECK(!accepts("hostname", "a;reboot"));
    free(h63);
    free(h64);
}

static void test_dimensions(void)
{
    CHECK(accepts("browser.width", "320"));
    CHECK(!accepts("browser.width", "319"));
    CHECK(accepts("browser.width", "7680"));
    CHECK(!accepts("browser.width", "7681"));
    CHECK(accepts("browser.height", "240"));
    CHECK(!accepts("browser.height", "239"));
    CHECK(accepts("browser.height", "4320"));
    CHECK(!accepts("browser.height", "4321"));
    CHECK(!accepts("browser.width", ""));
    CHECK(!accepts("browser.width", "1280px"));
    CHECK(!accepts("browser.width", " 1280"));
    CHECK(!accepts("browser.width", "+1280"));
    CHECK(!accepts("browser.width", "-1"));
    CHECK(!accepts("browser.width", "99999999999999999999999"));
    CHECK(accepts("browser.width", "01280"));
}

static void test_env(void)
{
    static struct config cfg;
    struct rejects rej;

    CHECK(accepts("env", "A=1"));
    CHECK(accepts("env", "_x9="));
    CHECK(!accepts("env", "9A=1"));
    CHECK(!accepts("env", "=1"));
    CHECK(!accepts("env", "A-B=1"));
    CHECK(!accepts("env", "A"));
    char *n128 = repeat('N', 128), *n129 = repeat('N', 129), line[300];
    snprintf(line, sizeof(line), "%s=v", n128);
    CHECK(accepts("env", line));
    snprintf(line, sizeof(line), "%s=v", n129);
    CHECK(!accepts("env", line));
    free(n128);
    free(n129);

    /* ENV_MAX entries fit; the next one is refused, not dropped silently. */
    size_t cap = (ENV_MAX + 1) * 16;
    char *text = malloc(cap), *p = text;
    CHECK(text != NULL);
    for (int i = 0; i <= ENV_MAX; i++)
        p += snprintf(p, cap - (size_t)(p - text), "env=V%d=%d\n", i, i);
    CHECK(parse(&cfg, text, &rej) == 1);
    CHECK(cfg.n_env == ENV_MAX && rej.n == 1 && rej.line[0] == ENV_MAX + 1);
    CHECK_STR(rej.key[0], "env");
    CHECK_STR(cfg.env[ENV_MAX - 1], "V127=127");
    free(text);
}

static void test_dirs_and_proxy(void)
{
    CHECK(accepts("browser.profile_dir", "/a"));
    CHECK(!accepts("browser.profile_dir", "/"));
    CHECK(!accepts("browser.profile_dir", "a/b"));
    CHECK(!accepts("browser.profile_dir", "/a/../b"));
    CHECK(!accepts("browser.download_dir", "/a/.."));
    CHECK(!accepts("browser.download_dir", "/.."));
    CHECK(accepts("browser.download_dir", "/a/..b"));
    CHECK(accepts("browser.download_dir", "/a/b.."));
    char dir[300] = "/";
    memset(dir + 1, 'd', 254);
    dir[255] = '\0';
    CHECK(accepts("browser.profile_dir", dir)); /* 255 bytes */
    dir[255] = 'd';
    dir[256] = '\0';
    CHECK(!accepts("browser.profile_dir", dir)); /* 256: no room for the NUL */

    CHECK(accepts("network.proxy", "10.0.2.100:3128"));
    CHECK(!accepts("network.proxy", ""));
    CHECK(!accepts("network.proxy", "10.0.2.100"));
    CHECK(!accepts("network.proxy", "10.0.2.100:"));
    CHECK(!accepts("network.proxy", "1:2:3"));
    CHECK(!accepts("network.proxy", "proxy.test:3128"));
    CHECK(!accepts("network.proxy", "1.2.3.4:80\"}"));
    /* 31 bytes fit proxy[32]; 32 do not. */
    CHECK(accepts("network.proxy", "1111111111.2222222222.333333:44"));
    CHECK(!accepts("network.proxy", "1111111111.2222222222.333333:445"));
}

static void test_allow_domains(void)
{
    static struct config cfg;
    struct rejects rej;

    CHECK(accepts("browser.allow_domain", "a.test"));
    CHECK(accepts("browser.allow_domain", "*.a.test"));
    CHECK(accepts("browser.allow_domain", "10.0.0.1"));
    CHECK(!accepts("browser.allow_domain", "*."));
    CHECK(!accepts("browser.allow_domain", "A.test"));
    CHECK(!accepts("browser.allow_domain", ".a.test"));
    CHECK(!accepts("browser.allow_domain", "-a.test"));
    CHECK(!accepts("browser.allow_domain", "a.test/path"));
    CHECK(!accepts("browser.allow_domain", "a\".test"));
    CHECK(!accepts("browser.allow_domain", "*.*.a.test"));
    char *d253 = repeat('a', 253), *d254 = repeat('a', 254);
    CHECK(accepts("browser.allow_domain", d253));
    CHECK(!accepts("browser.allow_domain", d254));
    free(d253);
    free(d254);

    /* Given empty: restricted, nothing allowed. */
    CHECK(parse(&cfg, "browser.allow_domain=\n", &rej) == 0);
    CHECK(cfg.restricted && cfg.n_allow_domains == 0);
    /* An invalid one still restricts: refusing it must not open the list. */
    CHECK(parse(&cfg, "browser.allow_domain=Bad\n", &rej) == 1);
    CHECK(cfg.restricted && cfg.n_allow_domains == 0);

    size_t cap = (ALLOW_DOMAINS_MAX + 1) * 40;
    char *text = malloc(cap), *p = text;
    CHECK(text != NULL);
    for (int i = 0; i <= ALLOW_DOMAINS_MAX; i++)
        p += snprintf(p, cap - (size_t)(p - text), "browser.allow_domain=h%d.test\n", i);
    CHECK(parse(&cfg, text, &rej) == 1);
    CHECK(cfg.n_allow_domains == ALLOW_DOMAINS_MAX && rej.line[0] == ALLOW_DOMAINS_MAX + 1);
    CHECK(domain_listed(&cfg, "h0.test") && !domain_listed(&cfg, "h64.test"));
    free(text);
}

static int build_env(const struct config *cfg, char *buf, size_t cap)
{
    struct strbuf sb = {.data = buf, .cap = cap};
    return env_script_build(cfg, &sb);
}

static int build_policy(const struct config *cfg, char *buf, size_t cap)
{
    struct strbuf sb = {.data = buf, .cap = cap};
    return policy_build(cfg, &sb);
}

static void test_env_script(void)
{
    static struct config cfg;
    struct rejects rej;
    static char out[ENV_SCRIPT_MAX];
    const char *header =
        "# Written by porthole-init from the VM's config (boot or browser-configure).\n";

    CHECK(parse(&cfg, "env=Q=it's\nenv=E=\nenv=S=$(reboot) `x` \"y\" \\\n", &rej) == 0);
    CHECK(build_env(&cfg, out, sizeof(out)) == 0);
    char want[512];
    snprintf(want, sizeof(want),
             "%sexport Q='it'\\''s'\nexport E=''\nexport S='$(reboot) `x` \"y\" \\'\n", header);
    CHECK_STR(out, want);

    CHECK(parse(&cfg, "network.proxy=10.0.2.100:3128\n", &rej) == 0);
    CHECK(build_env(&cfg, out, sizeof(out)) == 0);
    CHECK(strstr(out, "export https_proxy=http://10.0.2.100:3128\n") != NULL);
    CHECK(strstr(out, "export NO_PROXY=$no_proxy\n") != NULL);

    /* The exact size fits (with its NUL); one byte less is E2BIG, and the
     * buffer still holds a terminated prefix. */
    CHECK(parse(&cfg, "env=A=1\n", &rej) == 0);
    snprintf(want, sizeof(want), "%sexport A='1'\n", header);
    size_t need = strlen(want) + 1;
    char *exact = malloc(need);
    CHECK(exact != NULL);
    CHECK(build_env(&cfg, exact, need) == 0);
    CHECK_STR(exact, want);
    CHECK(build_env(&cfg, exact, need - 1) == -E2BIG);
    CHECK(strlen(exact) < need - 1);
    free(exact);
}

static void test_policy(void)
{
    static struct config cfg;
    struct rejects rej;
    static char out[POLICY_MAX];

    CHECK(parse(&cfg, "", &rej) == 0);
    CHECK(build_policy(&cfg, out, sizeof(out)) == 0);
    CHECK_STR(out, "{\"DownloadDirectory\": \"/root/porthole/downloads\", "
                   "\"PromptForDownload\": false}\n");

    CHECK(parse(&cfg, "browser.downloads=0\n", &rej) == 0);
    CHECK(build_policy(&cfg, out, sizeof(out)) == 0);
    CHECK_STR(out, "{\"DownloadRestrictions\": 3}\n");

    /* A directory is any absolute path: JSON escapes for what it holds. */
    CHECK(parse(&cfg, "browser.download_dir=/d\"q\\b\tt\x01\n", &rej) == 0);
    CHECK(build_policy(&cfg, out, sizeof(out)) == 0);
    CHECK(strstr(out, "\"/d\\\"q\\\\b\\u0009t\\u0001\"") != NULL);

    /* Exact hosts are Chromium's ".host"; "*.x" allows "x" and blocks ".x"
     * unless x itself is listed. */
    CHECK(parse(&cfg,
                "browser.downloads=0\nbrowser.allow_domain=a.test\n"
                "browser.allow_domain=*.sub.test\nbrowser.allow_domain=*.both.test\n"
                "browser.allow_domain=both.test\nnetwork.proxy=1.2.3.4:5\n",
                &rej) == 0);
    CHECK(build_policy(&cfg, out, sizeof(out)) == 0);
    CHECK_STR(out, "{\"DownloadRestrictions\": 3, \"ProxySettings\": {\"ProxyMode\": "
                   "\"fixed_servers\", \"ProxyServer\": \"1.2.3.4:5\"}, \"URLAllowlist\": "
                   "[\"about:blank\", \".a.test\", \"sub.test\", \"both.test\", \".both.test\"], "
                   "\"URLBlocklist\": [\"*\", \".sub.test\"]}\n");

    CHECK(parse(&cfg, "browser.allow_domain=\n", &rej) == 0);
    CHECK(build_policy(&cfg, out, sizeof(out)) == 0);
    CHECK(strstr(out, "\"URLAllowlist\": [\"about:blank\"], \"URLBlocklist\": [\"*\"]}") != NULL);

    CHECK(build_policy(&cfg, out, 16) == -E2BIG);
}

int main(void)
{
    test_defaults_and_full_config();
    test_lines();
    test_hostname_bounds();
    test_dimensions();
    test_env();
    test_dirs_and_proxy();
    test_allow_domains();
    test_env_script();
    test_policy();
    texts_free();
    CHECK_DONE();
}

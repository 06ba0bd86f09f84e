/* The per-VM config of porthole-init: "key=value" lines the host passes
 * through fw_cfg at boot (or on stdin to browser-configure and
 * clone-refresh), and the files written from it.
 *
 *   struct config cfg;
 *   config_defaults(&cfg);
 *   config_parse(&cfg, text, reject, ctx);   text stays alive: cfg points into it
 *   env_script_build(&cfg, &sb);     the env script login shells source
 *   policy_build(&cfg, &sb);         Chromium's managed policy (JSON)
 *
 * Pure: nothing here touches the system, so the host's unit tests and
 * fuzzer run it as the guest does. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_MAX (64 * 1024) /* the host refuses longer ones: VM_CONFIG_MAX in vmctl/vm.h */
/* The env script at its largest: a value's every quote takes 4 bytes
 * ('\''), so at most 4 times the config, and the proxy lines. */
#define ENV_SCRIPT_MAX (4 * CONFIG_MAX + 1024)
#define ENV_MAX 128
#define ALLOW_DOMAINS_MAX 64 /* the gateway's BROWSER_MAX_DOMAINS */
/* Chromium's policy at its largest: ALLOW_DOMAINS_MAX patterns of up to
 * 255 bytes in both lists, an escaped 255-byte directory: about 35 KiB. */
#define POLICY_MAX (64 * 1024)

enum guest_kind { KIND_SANDBOX, KIND_BROWSER };

struct config {
    char hostname[65];
    enum guest_kind kind;
    bool resize_root;
    const char *env[ENV_MAX]; /* "NAME=VALUE", weak: point into the config text */
    size_t n_env;
    bool headless;
    unsigned width, height;
    bool downloads;
    char profile_dir[256];
    char download_dir[256];
    /* "ADDR:PORT" of the host's egress proxy, the guest's one way out
     * (its network reaches nothing else); "" when not given. */
    char proxy[32];
    /* Browser: allowed_domains ("host" or "*.domain", weak: into the config
     * text) for Chromium's URL policy; restricted with none allowed when
     * the list was given empty. */
    const char *allow_domains[ALLOW_DOMAINS_MAX];
    size_t n_allow_domains;
    bool restricted;
};

void config_defaults(struct config *cfg);
/* Told of each line config_parse refuses: its number (from 1) and its key,
 * NULL for a line without '='. */
typedef void config_reject_fn(void *ctx, size_t line_no, const char *key);
/* Parses "key=value" lines in place: cfg keeps pointers into text. Empty
 * lines, '#' comments and unknown keys are skipped; an invalid value
 * leaves the default. Returns how many lines were refused (each one told
 * to reject, which may be NULL). */
int config_parse(struct config *cfg, char *text, config_reject_fn *reject, void *ctx);

/* What config_parse accepts, one value at a time. */
bool valid_proxy(const char *s, size_t cap);
bool valid_hostname(const char *s);
bool valid_domain_pattern(const char *s);
bool valid_env_name(const char *s, size_t n);
bool valid_dir(const char *s, size_t max);
bool domain_listed(const struct config *cfg, const char *pattern);

/* Appends to a bounded buffer; returns false once it would overflow. */
struct strbuf {
    char *data;
    size_t len, cap;
    bool overflow;
};

/* Both return 0, or -E2BIG when sb is too small (sb then holds a prefix). */
int env_script_build(const struct config *cfg, struct strbuf *sb);
int policy_build(const struct config *cfg, struct strbuf *sb);

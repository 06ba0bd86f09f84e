/* Validation of API request bodies, kept pure (no I/O, no state) so every
 * rule is unit-tested. Each parser fills err with a 400 naming the field. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "error.h"
#include "run.h"

#define PARAMS_MAX_ENV 64
/* A sandbox created without a size (and its template's size). */
#define SANDBOX_DEFAULT_VCPUS 2
#define SANDBOX_DEFAULT_MEM_MIB 1024
#define PARAMS_MAX_ENV_VALUE 4096
/* All of a VM's env_vars as config lines ("env=NAME=value\n"): half of
 * what the guest init takes in one config (VM_CONFIG_MAX), the rest is
 * left for the other lines. */
#define PARAMS_MAX_ENV_TOTAL (32 * 1024)
#define PARAMS_MAX_PATH 4096

/* A VM's way out, enforced on the host by the egress proxy. */
enum net_mode {
    NET_INTERNET = 0, /* "internet": any public address (the default) */
    NET_NONE,         /* "none": nothing, DNS included */
    NET_ALLOWLIST,    /* allowed_domains given: those names only */
};
const char *net_mode_name(enum net_mode mode);
/* "network" ("internet" or "none") and "allowed_domains" (an array of host
 * patterns, "x" or "*.x": the allow-list mode) of a create body. *allowed
 * is a new reference or NULL. */
int network_params_parse(json_t *body, enum net_mode *mode, json_t **allowed, struct ph_error *err);

struct sandbox_params {
    char id[40];         /* chosen by the client, or "" for a generated one */
    int vcpus;           /* 1..8, default 2 */
    int mem_mib;         /* 256..16384, default 1024 */
    int disk_mib;        /* 0 (image size) or 1024..65536 */
    int timeout_minutes; /* 1..1440, default 60 */
    bool wait;           /* reply once ready (default) or at once */
    json_t *env_vars;    /* owned: object NAME -> string */
    enum net_mode net_mode;
    json_t *allowed_domains; /* owned: array of lowercase host patterns, or NULL */
    char image[32];          /* a custom image's name, "" for the kind's own */
    char from_snapshot[40];  /* start from this snapshot, "" for a boot */
    /* What the body named (a snapshot fixes the sizes). */
    bool has_vcpus, has_mem, has_disk, has_image;
};
void sandbox_params_done(struct sandbox_params *p);
int sandbox_params_parse(json_t *body, struct sandbox_params *out, struct ph_error *err);
/* A client-chosen id: 1..39 of [a-z0-9_-], starting and ending with a
 * letter or digit, not "vm-..." (the pool's). 0 or a 400 naming field. */
int instance_id_check(const char *id, const char *field, struct ph_error *err);

/* A sandbox image name: "base" or a custom image's (1..31 of [a-z0-9_-],
 * starting with a letter or digit; not "browser"). */
int image_name_check(const char *name, const char *field, struct ph_error *err);

struct exec_params {
    const char *command; /* weak: points into the body */
    enum run_shell shell;
    int timeout_s;
    bool stream; /* reply with newline-delimited JSON events as output comes */
};
int exec_params_parse(json_t *body, struct exec_params *out, struct ph_error *err);

/* POST /v1/sandboxes/{id}/ports: {guest_port, host_port?, guest_loopback?}. */
struct port_params {
    int guest_port;      /* 1..65535, required */
    int host_port;       /* 1..65535, or 0 (absent): any free port */
    bool guest_loopback; /* accepted for SmolVM's expose_local; either way works */
};
int port_params_parse(json_t *body, struct port_params *out, struct ph_error *err);

/* env_vars: object of NAME -> string, bounded; field names the JSON key
 * in messages. Returns a new reference (a copy) in *out. */
int env_vars_parse(json_t *value, const char *field, json_t **out, struct ph_error *err);

/* A file path inside the guest: absolute, no "..", no NUL, no control
 * characters, bounded. */
int guest_path_check(const char *path, struct ph_error *err);

/* Integer field helper: absent → def; wrong type or out of range → 400. */
int params_int(json_t *obj, const char *field, int def, int min, int max, int *out,
               struct ph_error *err);
int params_bool(json_t *obj, const char *field, bool def, bool *out, struct ph_error *err);
/* String field: absent → def (may be NULL); wrong type → 400; longer than
 * max → 400. Returns a borrowed pointer. */
int params_string(json_t *obj, const char *field, const char *def, size_t max, const char **out,
                  struct ph_error *err);
/* Rejects fields not in the NULL-terminated allowed list, so a typo such as
 * "timout" is an error instead of a silently ignored option. */
int params_only(json_t *obj, const char *const *allowed, struct ph_error *err);

/* Browser sessions: every BrowserSessionConfig field, SmolVM's limits. */
#define BROWSER_MAX_DOMAINS 64

struct browser_params {
    bool live;               /* mode: "live" or "headless" (default) */
    int width, height;       /* viewport 640..7680 x 480..4320, default 1280x720 */
    bool record_video;       /* needs live */
    bool persistent;         /* profile_mode: "ephemeral" (default) or "persistent" */
    char profile_id[65];     /* [A-Za-z0-9._-]{1,64}; "" when not given */
    int timeout_minutes;     /* 1..240, default 30 */
    bool allow_downloads;    /* default true */
    json_t *env_vars;        /* owned */
    int mem_mib;             /* mem_size_mib 512..16384, default 2048 */
    int disk_mib;            /* disk_size_mib 2048..16384, 0 = image size */
    json_t *allowed_domains; /* owned: array of canonical host patterns, or NULL */
    enum net_mode net_mode;
    bool wait; /* reply once ready (default) */
};
void browser_params_done(struct browser_params *p);
int browser_params_parse(json_t *body, struct browser_params *out, struct ph_error *err);
/* A profile id: [A-Za-z0-9._-]{1,64}, not "." or "..". */
bool profile_id_valid(const char *id);
/* Host matching for allowed_domains: "example.com" allows that host only;
 * "*.example.com" its subdomains at any depth ("a.example.com",
 * "a.b.example.com") but not "example.com" itself. host is what urlhost_parse
 * gives (lowercase, no trailing dot); patterns are stored in that form. */
bool domain_allowed(json_t *allowed, const char *host);

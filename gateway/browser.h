/* Browser sessions: the /v1/browser/sessions API, the pool of pre-booted
 * browser VMs, persistent profiles, and what the CDP and VNC proxies need
 * to resolve a capability URL. Loop thread unless said otherwise. */
#pragma once

#include "manager.h"

/* Where Chromium saves downloads in the guest (its init's default). */
#define BROWSER_GUEST_DOWNLOAD_DIR "/root/porthole/downloads"

enum browser_cap {
    BROWSER_CAP_CDP,     /* cdp_url / cdp_ws_url token */
    BROWSER_CAP_VIEW,    /* live_url token: watch only */
    BROWSER_CAP_CONTROL, /* control_url token: watch and drive */
};

void browser_api_register(struct gateway *gw);

/* The session whose id and token match (token compared in constant time),
 * when it is ready; NULL otherwise. For BROWSER_CAP_VIEW the control token
 * also matches (who may drive may watch); *control tells which matched. */
struct sandbox *browser_resolve(struct gateway *gw, const char *session_id, const char *token,
                                enum browser_cap cap, bool *control);

/* Policy for a CDP command a client sends (method plus its target URL when
 * it navigates): the session's allowed_domains and the global pre-run hooks.
 * 0 allows; -EPERM refuses with reason. Audited either way. */
int browser_check_cdp(struct gateway *gw, struct sandbox *sb, const char *method, const char *url,
                      char *reason, size_t reason_len);

/* Keeps the pool of pre-booted VMs at its target (called at start and from
 * the sweep). */
void browser_pool_fill(struct gateway *gw);
/* Stops pool VMs (gateway shutdown) — they are not worth re-attaching. */
void browser_pool_drain(struct gateway *gw);

/* Worker thread, before the VM of a session stops: saves a persistent
 * profile, finalizes recordings. */
void browser_before_stop(struct gateway *gw, struct sandbox *sb, struct vm *vm);
/* Loop thread, when a session starts ending (and again once it is gone;
 * idempotent): closes proxied connections and its CDP listener. */
void browser_after_stop(struct gateway *gw, struct sandbox *sb);

/* Loop thread: a session re-attached after a gateway restart gets its
 * policy hooks and CDP listener back. */
int browser_restored(struct gateway *gw, struct sandbox *sb, struct ph_error *err);

/* Runs cmd as root in the guest over SSH (worker thread), in on its stdin;
 * a non-zero exit is an error naming its stderr. res is filled on success
 * (run_result_done it). */
int browser_guest_run(struct vm *vm, const char *cmd, const void *in, size_t in_len, int timeout_s,
                      struct run_result *res, struct ph_error *err);

json_t *browser_to_json(const struct sandbox *sb);
json_t *browser_record(const struct sandbox *sb);
struct browser_session *browser_from_record(json_t *extra);
void browser_session_free(struct browser_session *b);

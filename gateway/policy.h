/* policy: the gateway's own hooks on the run/callback core (DESIGN §3): a
 * deny list, an external hook program, and the audit log.
 *
 * Usage:
 *   struct policy *p = policy_new();
 *   r = policy_load(p, config, &err);     // once, before register
 *   r = policy_register(p, global_hooks); // deny, hook program, audit
 *   ...
 *   // a veto by a pre hook somebody else registered:
 *   policy_audit_blocked(p, &ctx, err.message);
 *   // other audited actions (CDP, computer use):
 *   policy_audit_event(p, json_pack("{s:s,...}", "event", "cdp", ...));
 *   ...
 *   policy_free(p);   // after the hooks can no longer run
 *
 * Configuration (keys of the gateway config object; other keys are left to
 * their modules):
 *   "deny": ["rm -rf /", "mkfs"]  substrings; a command containing one is
 *                                 blocked. Runs of whitespace count as one
 *                                 space on both sides. A guard rail, not a
 *                                 sandbox: "rm -r -f /" is another string.
 *   "hook": "/abs/path/program"   run for every command, no shell, with
 *                                 {"vm_id","command","shell","timeout",
 *                                 "actor"} on stdin; exit 0 allows, anything
 *                                 else blocks with its stdout (trimmed, at
 *                                 most 1 KiB) as the reason. It gets only
 *                                 PATH, HOME and PORTHOLE_HOOK=1 as its
 *                                 environment (never the gateway's token),
 *                                 and its own process group. A hook that
 *                                 cannot start, dies by a signal or outlives
 *                                 hook_timeout_s blocks (fail closed); on
 *                                 timeout its whole group is killed.
 *   "hook_timeout_s": 10          1..300
 *   "audit_log": "/abs/path.jsonl" one JSON object per line, appended
 *                                 (O_APPEND, mode 0600; missing parent
 *                                 directories are created 0700):
 *     {"ts": "2026-11-22T10:00:00.123Z", "event": "run"|"blocked"|"error",
 *      "vm_id", "actor", "command", "shell", "timeout",
 *      run:     "exit_code", "duration_ms", "stdout_bytes", "stderr_bytes",
 *               "stdout_truncated"/"stderr_truncated" when true,
 *      blocked: "reason",
 *      error:   "error": {"code", "message"}}
 *
 * Hooks run on worker threads, concurrently: after policy_load the
 * configuration is read-only and audit lines are written under a mutex,
 * one write() per line. Invalid UTF-8 in a command is audited with U+FFFD
 * in place of the bad bytes. */
#pragma once

#include <jansson.h>

#include "error.h"
#include "run.h"

#define POLICY_MAX_DENY 256
#define POLICY_MAX_DENY_LEN 256
#define POLICY_MAX_HOOK_TIMEOUT_S 300
#define POLICY_DEFAULT_HOOK_TIMEOUT_S 10
#define POLICY_MAX_HOOK_OUTPUT 1024

struct policy;

struct policy *policy_new(void);
/* config may be NULL (nothing configured). Fails with PH_ERR_INVALID on a
 * malformed key, a hook that is not an executable absolute path, or an
 * audit log that cannot be opened; -EALREADY when called twice. */
int policy_load(struct policy *p, json_t *config, struct ph_error *err);
/* Adds, in this order, the deny-list pre hook, the hook-program pre hook
 * (each only when configured) and the audit post and error observers
 * (when an audit log is configured). Policy's own pre hooks audit what
 * they block. Returns 0 or -ENOMEM. */
int policy_register(struct policy *p, struct run_hooks *global);

/* Audits a command blocked by a pre hook that is not policy's own. */
void policy_audit_blocked(struct policy *p, const struct run_ctx *ctx, const char *reason);
/* Appends event (stolen) as one audit line, adding "ts" when absent. A
 * no-op without an audit log. Any thread. */
void policy_audit_event(struct policy *p, json_t *event);

void policy_free(struct policy *p);

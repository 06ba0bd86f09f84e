/* computer_run: computer-use actions (computer.h) carried out on a live
 * session's screen: pointer and keys over the session's VNC client, text
 * the VM's US keyboard has no key for typed in the guest, and the whole
 * POST /v1/browser/sessions/{id}/computer step around them (scaling,
 * policy chain, audit, reply, screenshot).
 *
 *   struct computer_request cr = {.vnc = vnc, .vm = vm, .pointer = &m->pointer, ...};
 *   r = computer_request_run(&cr, &reply, &err);   // worker thread
 *
 * Worker thread; the caller runs one call at a time per session (the
 * session's media lock), so actions never interleave. */
#pragma once

#include <jansson.h>

#include "computer.h"
#include "error.h"

struct http_req;
struct policy;
struct run_hooks;
struct vm;
struct vnc_client;

/* What this API did to the pointer, kept by the session across actions. */
struct computer_pointer {
    int x, y;    /* screen: where the pointer was last sent */
    int buttons; /* VNC buttons held down (left_mouse_down until left_mouse_up) */
};

/* Carries out one parsed action. */
int computer_run(struct vnc_client *vnc, struct vm *vm, struct computer_pointer *pointer,
                 const struct computer_action *a, struct ph_error *err);

struct computer_request {
    struct vnc_client *vnc;           /* weak: connected */
    struct vm *vm;                    /* weak: held by the caller */
    struct computer_pointer *pointer; /* weak: the session's */
    struct run_hooks *global_hooks;   /* weak: the policy chain */
    struct run_hooks *vm_hooks;       /* weak, may be NULL */
    struct policy *policy;            /* weak: the audit log */
    const char *vm_id;                /* weak */
    const char *actor;                /* weak: who asked */
    /* weak: its query may set display_width, display_height, display=auto
     * and screenshot=true */
    struct http_req *req;
    json_t *body;     /* weak: the action */
    int max_w, max_h; /* bound of an unscaled screenshot (0: none) */
};

/* Parses the action against the screen (scaled as the query asks), passes
 * it through the policy chain, runs it, audits it and builds the reply:
 *   {"ok": true, "action", "cursor": {x, y}, "display": {width, height},
 *    "screen": {width, height}, "output"?: "X=..,Y=..",
 *    "screenshot_base64"?, "screenshot_mime_type"?}
 * with cursor and the screenshot in the display's (the model's) space. */
int computer_request_run(const struct computer_request *cr, json_t **reply, struct ph_error *err);

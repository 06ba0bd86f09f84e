/* Browser sessions: the browser instance kind (a guest with Chromium),
 * the /v1/browser/sessions API, persistent profiles, downloads and logs,
 * and what the proxies need to serve a session: capability lookups and
 * the policy on CDP commands. The CDP proxy, the live-view proxy and
 * media observe the sessions' lifecycle (instance.h) and call in here;
 * nothing here calls them.
 *
 * Usage (loop thread): browsers_new(gw, &gw->browsers) once gw->instances
 * and gw->pool exist; browsers_free() after instances_free(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "instance.h"

struct gateway;
struct browsers;
struct session_media;

/* Where Chromium saves downloads in the guest (its init's default). */
#define BROWSER_GUEST_DOWNLOAD_DIR "/root/porthole/downloads"

enum browser_cap {
    BROWSER_CAP_CDP,     /* cdp_url / cdp_ws_url token */
    BROWSER_CAP_VIEW,    /* live_url token: watch only */
    BROWSER_CAP_CONTROL, /* control_url token: watch and drive */
};

/* A browser session's kind data. */
struct browser_session {
    bool live, record_video, persistent, allow_downloads;
    int width, height;
    char profile_id[65];
    char cdp_token[65]; /* capability secrets inside the URLs */
    char live_token[65];
    char control_token[65];
    char cdp_base[160];          /* "http://host:port/cdp/ID/TOKEN", written by the CDP proxy */
    json_t *allowed_domains;     /* owned, NULL: any */
    bool from_pool;              /* served by a pre-booted VM */
    bool forked;                 /* a fork's: the guest runs the parent's settings */
    struct session_media *media; /* owned by media.c (made at setup, freed at destroy) */
};

int browsers_new(struct gateway *gw, struct browsers **out);
void browsers_free(struct browsers *bs);

/* The session data of a browser instance; NULL for any other kind. */
struct browser_session *browser_of(const struct instance *in);

/* The session whose id and token match (token compared in constant time),
 * when it is ready; NULL otherwise. For BROWSER_CAP_VIEW the control token
 * also matches (who may drive may watch); *control tells which matched. */
struct instance *browser_resolve(struct browsers *bs, const char *session_id, const char *token,
                                 enum browser_cap cap, bool *control);
/* A session of this gateway by id, ready or not; NULL when unknown. */
struct instance *browser_find(struct browsers *bs, const char *session_id);
/* The session named by req->params[0] (404/409 replied otherwise). */
struct instance *browser_for_req(struct browsers *bs, struct http_req *req, bool need_ready);

/* The longest navigation URL the policy reads (Chromium's own limit is
 * 2 MiB); a longer one is refused, never cut to fit. */
#define BROWSER_CDP_URL_MAX 65536

/* Policy for a CDP command a client sends (method plus its target URL when
 * it navigates): the session's allowed_domains and the global pre-run hooks,
 * which see the command "cdp METHOD URL". With allowed_domains set only
 * about:blank, about:srcdoc and URLs of a special scheme (http, https, ws,
 * wss, ftp) whose host (gateway/urlhost.h) is on the list pass.
 * 0 allows; -EPERM refuses with reason. Audited either way. */
int browser_check_cdp(struct browsers *bs, struct instance *in, const char *method, const char *url,
                      char *reason, size_t reason_len);
/* The allowed_domains part of that policy: 0 when url may be navigated to
 * (always when allowed_domains is NULL), -EPERM with reason otherwise. */
int browser_url_allowed(json_t *allowed_domains, const char *url, char *reason, size_t len);

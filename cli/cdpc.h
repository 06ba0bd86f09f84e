/* cdpc: one page of a browser session driven over the Chrome DevTools
 * Protocol, through the session's cdp_url (so the gateway's CDP proxy and
 * its policy see every command, as for any CDP client).
 *
 *   struct cdp_page *p;
 *   r = cdp_page_open(cdp_url, 30000, &p, &err);     // the first page target
 *   cdp_page_expect(p, "Page.loadEventFired");
 *   r = cdp_page_call(p, "Page.navigate", json_pack(...), 30000, &result, &err);
 *   r = cdp_page_wait(p, 60000, &err);               // the expected event came
 *   cdp_page_free(p);
 *
 * Blocking, one thread at a time per page. */
#pragma once

#include <jansson.h>

#include "cli.h"

struct cdp_page;

int cdp_page_open(const char *cdp_url, int timeout_ms, struct cdp_page **out,
                  struct cli_error *err);
void cdp_page_free(struct cdp_page *p);

/* Sends method with params (stolen, may be NULL) and waits for its answer:
 * *result a new reference, or err with CDP's own message (code "cdp_error"). */
int cdp_page_call(struct cdp_page *p, const char *method, json_t *params, int timeout_ms,
                  json_t **result, struct cli_error *err);
/* From now on, notes whether an event of this name arrives. */
void cdp_page_expect(struct cdp_page *p, const char *event);
/* Waits for the expected event (0, or a timeout error). */
int cdp_page_wait(struct cdp_page *p, int timeout_ms, struct cli_error *err);

/* network: every guest's one way out. An instance observer that gives
 * each sandbox and browser session an egress listener (egress.c) with the
 * instance's policy, while it lives, and shows its figures in the
 * instance's API object ("network": {mode, bytes_in, ...}).
 *
 * Guests run with QEMU's restrict=on network: they reach nothing of the
 * host or its networks. Their one exit is QEMU_EGRESS_ADDR, where QEMU
 * runs `porthole egress-relay SOCKET` per connection; the relay carries the
 * connection to the VM's socket under STATE/egress/, served here.
 *
 * Config (gateway JSON):
 *   "egress_allow_cidrs": ["10.1.0.0/16", ...]  private ranges let through
 *   "egress_dns": "IP[:PORT]"                   resolve names with this
 *                                               server, not the system's
 * Loop thread. */
#pragma once

#include <jansson.h>

#include "error.h"

struct gateway;
struct network;

int network_new(struct gateway *gw, json_t *config, struct network **out, struct ph_error *err);
/* After every instance ended. NULL is a no-op. */
void network_free(struct network *net);

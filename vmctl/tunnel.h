/* A Unix socket in a VM's run dir whose every connection is carried to a
 * TCP port on the guest's own loopback, over an SSH direct-tcpip channel of
 * a session the tunnel keeps for itself.
 *
 * This is how the gateway reaches Chromium's DevTools: the guest listens on
 * 127.0.0.1 only, the host end is a 0600 socket in a 0700 directory, so no
 * guest and no other local user can reach it; the SSH session is the VM's
 * pinned-key one, so nothing new is trusted.
 *
 *   vm_tunnel_start(ssh, "vms/ID/devtools.sock", 9222, &t, &err);
 *   ... connect(2) to the socket from any thread ...
 *   vm_tunnel_stop(t);   // closes every connection, removes the socket
 *
 * One thread per tunnel pumps every connection; it connects the session on
 * the first connection and again after the guest's sshd went away. */
#pragma once

#include "error.h"

struct vm_ssh;
struct vm_tunnel;

/* At most this many connections at once; more are accepted and closed. */
#define VM_TUNNEL_CONNS_MAX 64

/* ssh is weak: the tunnel copies nothing from it but uses it to open its
 * session, so it must outlive the tunnel. */
int vm_tunnel_start(struct vm_ssh *ssh, const char *socket_path, int guest_port,
                    struct vm_tunnel **out, struct ph_error *err);
void vm_tunnel_stop(struct vm_tunnel *t);

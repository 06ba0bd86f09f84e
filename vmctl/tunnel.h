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
 * The same carries a TCP port of the host to a guest port: a sandbox's
 * exposed ports (vm_port_open).
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
/* The same on a TCP socket at addr:port (port 0: any free one; see
 * vm_tunnel_port). A taken port is PH_ERR_CONFLICT. */
int vm_tunnel_start_tcp(struct vm_ssh *ssh, const char *addr, int port, int guest_port,
                        struct vm_tunnel **out, struct ph_error *err);
/* The TCP port a vm_tunnel_start_tcp tunnel listens on. */
int vm_tunnel_port(const struct vm_tunnel *t);
void vm_tunnel_stop(struct vm_tunnel *t);

/* One persistent libssh session to a guest's sshd, shared by every command
 * run in that guest: a channel per command, SFTP for files, reconnect once
 * on a broken session. The guest host key is pinned: a different key is a
 * transport error, never accepted.
 *
 * All calls on one vm_ssh are serialized by an internal mutex, so worker
 * threads may share it. Calls block; never use them on the event loop. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "run.h"

struct vm_ssh;

/* user@127.0.0.1:port with the client private key and the pinned host
 * public key (OpenSSH one-line format file). Copies its arguments. */
struct vm_ssh *vm_ssh_new(const char *host, int port, const char *user, const char *privkey_path,
                          const char *hostkey_pub_path);
void vm_ssh_free(struct vm_ssh *s);
/* The client key and the pinned host key of every later connection (the
 * session that is up stays). 0 or -ENOMEM. */
int vm_ssh_set_keys(struct vm_ssh *s, const char *privkey_path, const char *hostkey_pub_path);

/* One connect, at most timeout_ms. -ECONNREFUSED (PH_ERR_UNAVAILABLE) when
 * no SSH server answered: the port refused or reset the connection, or
 * closed it before a banner. Anything else (host key not the pinned one,
 * authentication refused, a handshake that failed) is another code. */
int vm_ssh_connect(struct vm_ssh *s, int timeout_ms, struct ph_error *err);
/* vm_ssh_connect again, with a pause of at most a second between tries,
 * while no SSH server answers and deadline_ms (now_ms clock) has not
 * passed; stops once abort_fd (-1 for none) turns readable. Returns at
 * once on any other failure. */
int vm_ssh_connect_until(struct vm_ssh *s, int64_t deadline_ms, int abort_fd, struct ph_error *err);

/* A new authenticated session of the caller's own (host key pinned as for
 * every other), for a thread that keeps channels open on it, such as a
 * tunnel. ssh_disconnect and ssh_free it. Blocks. */
struct ssh_session_struct;
int vm_ssh_open_session(struct vm_ssh *s, int timeout_ms, struct ssh_session_struct **out,
                        struct ph_error *err);

/* Runs command; waits at most req->timeout_s, then sends SIGKILL to the
 * remote process group, closes the channel and returns PH_ERR_TIMEOUT with
 * the session left usable. Matches run_transport.exec. */
int vm_ssh_exec(void *s, const char *command, const struct run_request *req, struct run_result *res,
                struct ph_error *err);

/* SFTP file transfer. get fails with PH_ERR_TOO_LARGE beyond max. */
int vm_ssh_put_file(struct vm_ssh *s, const char *path, const void *data, size_t len, int mode,
                    struct ph_error *err);
int vm_ssh_get_file(struct vm_ssh *s, const char *path, char **data, size_t *len, size_t max,
                    struct ph_error *err);

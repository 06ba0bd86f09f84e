/* egress-relay: the helper QEMU's guestfwd spawns for each guest connection
 * (`porthole egress-relay SOCKET_PATH`, hidden from the usage text). It
 * copies stdin to the gateway's egress socket and the socket to stdout until
 * both directions ended. Returns the process exit code. */
#pragma once

int egress_relay_main(const char *socket_path);

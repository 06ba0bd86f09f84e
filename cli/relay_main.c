/* porthole-egress-relay SOCKET_PATH: the same relay as `porthole
 * egress-relay`, as a binary that links nothing but libc. QEMU spawns one
 * per guest connection, and loading the porthole binary's libraries costs
 * tens of milliseconds each time. */
#include <stdio.h>

#include "relay.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: porthole-egress-relay SOCKET_PATH\n", stderr);
        return 2;
    }
    return egress_relay_main(argv[1]);
}

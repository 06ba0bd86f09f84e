/* chanpump: moves bytes between a local socket and an SSH channel without
 * ever waiting, for threads that poll many of them (tunnels, shells).
 *
 *   struct chan_pump c;
 *   chan_pump_init(&c, fd, ch);          // both taken
 *   for (;;) {
 *       ssize_t m = chan_pump_step(&c, scratch, sizeof(scratch));
 *       if (m < 0) break;                // one end is over
 *       struct pollfd p = {.fd = c.fd, .events = chan_pump_events(&c)};
 *       ... poll with the session's fd as well ...
 *   }
 *   chan_pump_close(&c);
 *
 * Guest-to-client bytes the socket has not taken stay in c.out, and
 * nothing more is read from the channel until they are gone: the guest's
 * window closes and a slow client holds back only its own connection.
 * Client-to-guest bytes are read only within the guest's window, so the
 * channel write never waits for the guest to read. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ssh_channel_struct;

#define CHAN_PUMP_BUF (64 * 1024)

struct chan_pump {
    int fd;                        /* owned, -1 when unused */
    struct ssh_channel_struct *ch; /* owned, NULL when unused */
    char *out;                     /* owned: CHAN_PUMP_BUF while in use */
    size_t out_off, out_len;
};

/* A free slot: fd -1, no channel. */
void chan_pump_reset(struct chan_pump *c);
/* Takes fd and ch (NULL allowed: the caller closes it at once). -ENOMEM
 * takes nothing. */
int chan_pump_init(struct chan_pump *c, int fd, struct ssh_channel_struct *ch);
/* Moves what can move. Returns bytes moved, or -1 once either end is over
 * (the guest's end when chan_pump_guest_done says so). */
ssize_t chan_pump_step(struct chan_pump *c, char *scratch, size_t scratch_len);
/* Writes what is pending to the client. False once the client is gone. */
bool chan_pump_flush(struct chan_pump *c);
/* The poll events to wait for on c->fd. */
short chan_pump_events(const struct chan_pump *c);
/* The guest's end is over: EOF or the channel closed. */
bool chan_pump_guest_done(const struct chan_pump *c);
/* Closes the channel (if its session is still there) and the socket. */
void chan_pump_close(struct chan_pump *c);

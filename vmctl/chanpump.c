#include "chanpump.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/libssh.h>

void chan_pump_reset(struct chan_pump *c)
{
    *c = (struct chan_pump){.fd = -1};
}

int chan_pump_init(struct chan_pump *c, int fd, ssh_channel ch)
{
    chan_pump_reset(c);
    if (!(c->out = malloc(CHAN_PUMP_BUF)))
        return -ENOMEM;
    c->fd = fd;
    c->ch = ch;
    return 0;
}

void chan_pump_close(struct chan_pump *c)
{
    if (c->ch) {
        /* The channel dies with its session if that went first. */
        ssh_channel_close(c->ch);
        ssh_channel_free(c->ch);
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    chan_pump_reset(c);
}

bool chan_pump_flush(struct chan_pump *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return true;
}

bool chan_pump_guest_done(const struct chan_pump *c)
{
    return !c->ch || ssh_channel_is_eof(c->ch) || ssh_channel_is_closed(c->ch);
}

short chan_pump_events(const struct chan_pump *c)
{
    short ev = c->out_len ? POLLOUT : 0;
    if (c->ch && ssh_channel_window_size(c->ch) > 0)
        ev |= POLLIN;
    return ev;
}

ssize_t chan_pump_step(struct chan_pump *c, char *scratch, size_t scratch_len)
{
    ssize_t moved = 0;

    if (!c->ch)
        return -1;
    /* Guest to client, as long as the client keeps up. */
    for (;;) {
        if (!chan_pump_flush(c))
            return -1;
        if (c->out_len)
            break;
        int n = ssh_channel_read_nonblocking(c->ch, c->out, CHAN_PUMP_BUF, 0);
        if (n == SSH_ERROR)
            return -1;
        if (n <= 0) {
            if (chan_pump_guest_done(c))
                return -1;
            break;
        }
        c->out_len = (size_t)n;
        moved += n;
    }
    /* Client to guest, within the guest's window. */
    uint32_t window = ssh_channel_window_size(c->ch);
    if (window == 0) {
        /* Nothing is read while the guest's window is shut, but a client
         * that left is noticed (poll reports its hang-up regardless). */
        char b;
        ssize_t peek = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        return peek == 0 || (peek < 0 && errno != EAGAIN && errno != EINTR) ? -1 : moved;
    }
    size_t want = window < scratch_len ? window : scratch_len;
    ssize_t n = recv(c->fd, scratch, want, 0);
    if (n == 0)
        return -1;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? moved : -1;
    if (ssh_channel_write(c->ch, scratch, (uint32_t)n) == SSH_ERROR)
        return -1;
    return moved + n;
}

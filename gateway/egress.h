/* egress: the one way out of a guest (DESIGN §6). An HTTP proxy on a Unix
 * socket per VM, reached by the guest through QEMU's guestfwd and the
 * `porthole egress-relay` helper. It runs on its own threads, never on the
 * libwebsockets loop: one accept thread per VM, one thread per connection.
 *
 * Usage:
 *   struct egress_config cfg = {.allow_cidrs = arr, .on_event = audit, ...};
 *   r = egress_cidrs_validate(arr, &err);          // when parsing the config
 *   r = egress_new(&cfg, &eg, &err);
 *   r = egress_vm_open(eg, "sb-1", "/run/.../egress.sock", EGRESS_ALLOWLIST,
 *                      domains, &vm, &err);
 *   egress_vm_stats(vm, &st); json = egress_stats_json(&st);
 *   egress_vm_close(vm);   // returns once none of its threads runs
 *   egress_free(eg);       // after every vm is closed
 *
 * Per connection: the request head (at most EGRESS_MAX_HEAD bytes, within
 * head_timeout_ms) is `CONNECT host:port HTTP/1.x` or an absolute-form
 * request (`GET http://host[:port]/path HTTP/1.1`), else 400. Absolute-form
 * requests go to the origin in origin-form, without Proxy-* and Connection
 * headers and with `Connection: close`, so one connection carries one
 * request to the host that was checked. Policy, in order:
 *   - EGRESS_NONE refuses everything (403);
 *   - EGRESS_ALLOWLIST: a name must pass domain_allowed(), an IP literal must
 *     be inside allow_cidrs; CONNECT tunnels whose first client bytes are a
 *     TLS ClientHello must carry an allowed SNI too (client bytes are held
 *     until that is decided), else the tunnel is closed;
 *   - every mode: the address actually connected to must not be internal
 *     (loopback, private, link-local, CGNAT, multicast, reserved, the host's
 *     own interface addresses, IPv4 embedded in IPv6) unless inside
 *     allow_cidrs.
 * Refusals answer a short HTTP response with a one-line reason and call
 * on_event. Names resolve through dns_server (A and AAAA over UDP) or
 * getaddrinfo (which cannot be interrupted: egress_vm_close may then wait for
 * the system resolver's own timeout). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "error.h"

#define EGRESS_MAX_HEAD 16384
#define EGRESS_MAX_HOST 255

enum egress_mode { EGRESS_INTERNET, EGRESS_NONE, EGRESS_ALLOWLIST };

struct egress_event {
    const char *vm_id;
    const char *host; /* as the guest named it */
    int port;         /* 0 when the request had none parseable */
    const char *reason;
};
/* Called from egress threads, concurrently for different connections. */
typedef void (*egress_event_fn)(void *data, const struct egress_event *ev);

struct egress_config {
    const char *dns_server; /* "IP" or "IP:port" (IPv6: "[IP]:port"); NULL: getaddrinfo */
    json_t *allow_cidrs;    /* borrowed, copied: array of "CIDR" let through the block */
    /* borrowed, copied: {"name": "IP"}, names that resolve to that address
     * without asking DNS (the address check still applies) */
    json_t *hosts;
    int max_conns_per_vm;   /* 0: 256 */
    int max_conns_total;    /* 0: 4096 */
    int connect_timeout_ms; /* 0: 10000; also bounds one DNS attempt */
    int idle_timeout_ms;    /* 0: 300000 */
    int head_timeout_ms;    /* 0: 10000; request head and the TLS ClientHello */
    egress_event_fn on_event;
    void *event_data; /* weak */
};

struct egress;
struct egress_vm;

/* bytes_out: guest bytes written to origins (tunnel payload and forwarded
 * request heads); bytes_in: origin bytes written to the guest. The proxy's
 * own answers (200 Connection established, 403...) are not counted. */
struct egress_stats {
    uint64_t bytes_in, bytes_out;
    uint64_t connections; /* accepted and let through to an origin */
    uint64_t refused;
};

int egress_new(const struct egress_config *cfg, struct egress **out, struct ph_error *err);
/* Aborts when a vm of eg is still open (its threads would use eg). */
void egress_free(struct egress *eg);

/* Listens on socket_path (mode 0600; a stale socket there is removed, any
 * other file is -EEXIST). allowed_domains is copied; it matters only in
 * EGRESS_ALLOWLIST. */
int egress_vm_open(struct egress *eg, const char *vm_id, const char *socket_path,
                   enum egress_mode mode, json_t *allowed_domains, struct egress_vm **out,
                   struct ph_error *err);
/* Stops listening, ends its connections, removes the socket; NULL is a no-op. */
void egress_vm_close(struct egress_vm *vm);
void egress_vm_stats(const struct egress_vm *vm, struct egress_stats *out);
json_t *egress_stats_json(const struct egress_stats *st);

int egress_cidrs_validate(json_t *arr, struct ph_error *err);
/* {"lowercase.name": "IPv4 or IPv6 literal"}, at most EGRESS_MAX_HOSTS. */
int egress_hosts_validate(json_t *obj, struct ph_error *err);
#define EGRESS_MAX_HOSTS 64

/* ---- pure parts, no I/O, exported for tests and fuzzing ---- */

struct egress_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
};
int egress_cidr_parse(const char *text, struct egress_cidr *out);
/* True when the address falls in the built-in internal ranges. */
bool egress_addr_internal(const struct sockaddr *sa);
bool egress_addr_in_cidrs(const struct sockaddr *sa, const struct egress_cidr *c, size_t n);

struct egress_request {
    bool connect;                   /* CONNECT, else absolute-form */
    char host[EGRESS_MAX_HOST + 1]; /* lowercase, IPv6 without brackets */
    int port;
    bool host_is_ip;
};
/* Parses a request head. Returns the head's length (through the blank line)
 * once complete, -EAGAIN when more bytes may complete it, -E2BIG past
 * EGRESS_MAX_HEAD, -EINVAL when malformed, -EPERM when the Host header names
 * another host than the URL. For absolute-form, fwd (cap >= len + 64)
 * receives the head to send to the origin and *fwd_len its length. */
int egress_parse_head(const char *buf, size_t len, struct egress_request *req, char *fwd,
                      size_t fwd_cap, size_t *fwd_len);

/* The SNI host name of a TLS ClientHello at the start of buf (records may
 * fragment it). 1: found, in out (lowercase); 0: a ClientHello without SNI;
 * -EAGAIN: need more bytes; -EINVAL: not TLS or malformed; -E2BIG: the
 * ClientHello is larger than the bound (16 KiB). */
int egress_tls_sni(const uint8_t *buf, size_t len, char *out, size_t out_cap);

/* DNS over UDP: a query for name (qtype 1 = A, 28 = AAAA) into out; returns
 * its length or -EINVAL/-ENOSPC. */
int egress_dns_query(uint16_t id, const char *name, uint16_t qtype, uint8_t *out, size_t cap);
/* Parses an answer to that query: addresses (of the name or of the CNAMEs
 * it leads to) into addrs (16 bytes each for AAAA, 4 for A). Returns the
 * number found (0 included), -ENOENT for NXDOMAIN, -EIO for another error
 * rcode, -EINVAL when malformed or not an answer to (id, name, qtype). */
int egress_dns_parse(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
                     uint8_t (*addrs)[16], size_t max_addrs);

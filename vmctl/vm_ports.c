/* A VM's exposed ports: one SSH tunnel each from a host TCP port to the
 * guest's loopback, saved in the run dir so a restarted gateway opens them
 * again. See vm.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel.h"
#include "util.h"
#include "vm.h"

#define PORTS_FILE_MAX 4096

static char *ports_path(const struct vm *vm)
{
    char *p = NULL;
    return asprintf(&p, "%s/ports", vm->run_dir) < 0 ? NULL : p;
}

/* Under ports_lock. What is saved is what the next vm_attach opens. */
static void ports_save(struct vm *vm)
{
    char buf[PORTS_FILE_MAX];
    size_t len = 0;
    _cleanup_free_ char *path = ports_path(vm);

    if (!path)
        return;
    for (size_t i = 0; i < vm->n_ports; i++) {
        const struct vm_port *p = &vm->ports[i];
        int n = snprintf(buf + len, sizeof(buf) - len, "%d %d %s %d\n", p->guest_port, p->host_port,
                         p->host_addr, p->guest_loopback ? 1 : 0);
        if (n < 0 || (size_t)n >= sizeof(buf) - len)
            break;
        len += (size_t)n;
    }
    int r = write_file_atomic(path, buf, len, 0600);
    if (r < 0)
        fprintf(stderr, "vm %s: cannot save its ports: %s\n", vm->id, strerror(-r));
}

static struct vm_port *port_find(struct vm *vm, int guest_port)
{
    for (size_t i = 0; i < vm->n_ports; i++)
        if (vm->ports[i].guest_port == guest_port)
            return &vm->ports[i];
    return NULL;
}

int vm_port_open(struct vm *vm, const struct vm_port *want, struct vm_port *got,
                 struct ph_error *err)
{
    struct vm_tunnel *t = NULL;
    struct vm_port *p;
    int r;

    if (want->guest_port < 1 || want->guest_port > 65535 || want->host_port < 0 ||
        want->host_port > 65535)
        return ph_error_set(err, PH_ERR_INVALID, -EINVAL, "ports are 1 to 65535");
    pthread_mutex_lock(&vm->ports_lock);
    if (!vm->ssh) {
        r = ph_error_set(err, PH_ERR_CONFLICT, -ENOTCONN, "VM %s is not ready", vm->id);
    } else if ((p = port_find(vm, want->guest_port))) {
        r = ph_error_set(err, PH_ERR_CONFLICT, -EEXIST,
                         "guest port %d is already exposed on host port %d; close it first",
                         want->guest_port, p->host_port);
    } else if (vm->n_ports >= VM_PORTS_MAX) {
        r = ph_error_set(err, PH_ERR_LIMIT, -ENOSPC, "at most %d ports per sandbox", VM_PORTS_MAX);
    } else if ((r = vm_tunnel_start_tcp(vm->ssh, want->host_addr, want->host_port, want->guest_port,
                                        &t, err)) == 0) {
        p = &vm->ports[vm->n_ports];
        *p = *want;
        p->host_port = vm_tunnel_port(t);
        p->error[0] = '\0';
        vm->port_tunnels[vm->n_ports++] = t;
        ports_save(vm);
        *got = *p;
    }
    pthread_mutex_unlock(&vm->ports_lock);
    return r;
}

int vm_port_close(struct vm *vm, int guest_port, struct ph_error *err)
{
    struct vm_tunnel *t = NULL;
    struct vm_port *p;

    pthread_mutex_lock(&vm->ports_lock);
    p = port_find(vm, guest_port);
    if (p) {
        size_t i = (size_t)(p - vm->ports);
        t = vm->port_tunnels[i];
        memmove(&vm->ports[i], &vm->ports[i + 1], (vm->n_ports - i - 1) * sizeof(vm->ports[0]));
        memmove(&vm->port_tunnels[i], &vm->port_tunnels[i + 1],
                (vm->n_ports - i - 1) * sizeof(vm->port_tunnels[0]));
        vm->n_ports--;
        ports_save(vm);
    }
    pthread_mutex_unlock(&vm->ports_lock);
    if (!p)
        return ph_error_set(err, PH_ERR_NOT_FOUND, -ENOENT, "guest port %d is not exposed",
                            guest_port);
    /* Outside the lock: listing never waits for a tunnel's thread. */
    vm_tunnel_stop(t);
    return 0;
}

size_t vm_ports(struct vm *vm, struct vm_port *out, size_t max)
{
    pthread_mutex_lock(&vm->ports_lock);
    size_t n = vm->n_ports < max ? vm->n_ports : max;
    memcpy(out, vm->ports, n * sizeof(*out));
    pthread_mutex_unlock(&vm->ports_lock);
    return n;
}

void vm_ports_close_all(struct vm *vm)
{
    struct vm_tunnel *t[VM_PORTS_MAX];
    size_t n;

    pthread_mutex_lock(&vm->ports_lock);
    n = vm->n_ports;
    memcpy(t, vm->port_tunnels, sizeof(t));
    memset(vm->port_tunnels, 0, sizeof(vm->port_tunnels));
    vm->n_ports = 0;
    pthread_mutex_unlock(&vm->ports_lock);
    for (size_t i = 0; i < n; i++)
        vm_tunnel_stop(t[i]);
}

void vm_ports_reopen(struct vm *vm)
{
    _cleanup_free_ char *path = ports_path(vm), *data = NULL;
    size_t len = 0;

    if (!path || read_file(path, &data, &len, PORTS_FILE_MAX) < 0)
        return;
    pthread_mutex_lock(&vm->ports_lock);
    for (char *line = data, *next; line && *line && vm->n_ports < VM_PORTS_MAX; line = next) {
        struct vm_port *p = &vm->ports[vm->n_ports];
        struct ph_error err = {0};
        int loopback = 0;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        memset(p, 0, sizeof(*p));
        if (sscanf(line, "%d %d %47s %d", &p->guest_port, &p->host_port, p->host_addr, &loopback) !=
                4 ||
            port_find(vm, p->guest_port)) /* p is not counted yet */
            continue;
        p->guest_loopback = loopback != 0;
        if (vm_tunnel_start_tcp(vm->ssh, p->host_addr, p->host_port, p->guest_port,
                                &vm->port_tunnels[vm->n_ports], &err) < 0) {
            /* Kept, with the reason: the API shows it, and it can be closed. */
            vm->port_tunnels[vm->n_ports] = NULL;
            snprintf(p->error, sizeof(p->error), "%s", err.message);
            fprintf(stderr, "vm %s: guest port %d: %s\n", vm->id, p->guest_port, err.message);
        }
        vm->n_ports++;
    }
    pthread_mutex_unlock(&vm->ports_lock);
}

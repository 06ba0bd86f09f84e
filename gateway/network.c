#include "network.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "egress.h"
#include "gateway.h"
#include "instance.h"
#include "policy.h"
#include "util.h"
#include "work.h"

/* One per instance with a listener. */
struct net_vm {
    const struct instance *in; /* weak: the key */
    struct egress_vm *evm;     /* owned */
    struct net_vm *next;
};

struct network {
    struct instance_observer observer;
    struct gateway *gw; /* weak */
    struct egress *egress;
    struct net_vm *vms;
};

static enum egress_mode egress_mode_of(enum net_mode m)
{
    switch (m) {
    case NET_NONE:
        return EGRESS_NONE;
    case NET_ALLOWLIST:
        return EGRESS_ALLOWLIST;
    default:
        return EGRESS_INTERNET;
    }
}

static struct net_vm **net_vm_slot(struct network *net, const struct instance *in)
{
    struct net_vm **p = &net->vms;
    while (*p && (*p)->in != in)
        p = &(*p)->next;
    return p;
}

/* Any egress thread: refusals go to the audit log, with host and port. */
static void on_egress_event(void *data, const struct egress_event *ev)
{
    struct network *net = data;
    policy_audit_event(net->gw->policy,
                       json_pack("{s:s, s:s, s:s, s:i, s:s}", "event", "egress_refused", "vm_id",
                                 ev->vm_id, "host", ev->host, "port", ev->port, "reason",
                                 ev->reason));
}

/* Loop: before the instance's VM is used (created or restored). */
static int net_setup(struct instance_observer *o, struct instance *in, struct ph_error *err)
{
    struct network *net = container_of(o, struct network, observer);
    _cleanup_free_ char *sock = instances_egress_socket(net->gw->instances, in->vm_id);
    struct net_vm *nv;

    if (!sock)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (!(nv = calloc(1, sizeof(*nv))))
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if (egress_vm_open(net->egress, in->vm_id, sock, egress_mode_of(in->net_mode),
                       in->allowed_domains, &nv->evm, err) < 0) {
        free(nv);
        return -EIO;
    }
    nv->in = in;
    nv->next = net->vms;
    net->vms = nv;
    return 0;
}

/* Worker: closing joins the VM's connection threads, and one may sit in
 * the system resolver for its own timeout. */
static void close_run(void *data)
{
    egress_vm_close(data);
}

/* Loop: the instance stops being served; its guest connections end. */
static void net_ending(struct instance_observer *o, struct instance *in)
{
    struct network *net = container_of(o, struct network, observer);
    struct net_vm **slot = net_vm_slot(net, in), *nv = *slot;

    if (!nv)
        return;
    *slot = nv->next;
    if (work_submit(net->gw->fast_work ? net->gw->fast_work : net->gw->work, close_run, NULL,
                    nv->evm) < 0)
        egress_vm_close(nv->evm); /* queue full: rare enough to wait here */
    free(nv);
}

static void net_describe(struct instance_observer *o, const struct instance *in, json_t *obj)
{
    struct network *net = container_of(o, struct network, observer);
    struct net_vm *nv = *net_vm_slot(net, in);
    json_t *n = json_object_get(obj, "network");
    struct egress_stats st;

    if (!nv || !json_is_object(n))
        return;
    egress_vm_stats(nv->evm, &st);
    json_object_update_missing_new(n, egress_stats_json(&st));
}

int network_new(struct gateway *gw, json_t *config, struct network **out, struct ph_error *err)
{
    struct network *net = calloc(1, sizeof(*net));
    json_t *cidrs = json_object_get(config, "egress_allow_cidrs");
    json_t *dns = json_object_get(config, "egress_dns");
    json_t *hosts = json_object_get(config, "egress_hosts");
    _cleanup_free_ char *dir = NULL;

    if (!net)
        return ph_error_set(err, PH_ERR_INTERNAL, -ENOMEM, "out of memory");
    if ((cidrs && egress_cidrs_validate(cidrs, err) < 0) ||
        (dns && !json_is_string(dns) &&
         ph_error_set(err, PH_ERR_INVALID, -EINVAL, "egress_dns must be \"IP\" or \"IP:PORT\"") <
             0)) {
        free(net);
        return -EINVAL;
    }
    /* The sockets' directory: only this user may connect (the guests'
     * relays run as this user, under QEMU). */
    if (asprintf(&dir, "%s/egress", gw->state_dir) < 0 ||
        (mkdir(dir, 0700) < 0 && errno != EEXIST) || chmod(dir, 0700) < 0) {
        free(net);
        return ph_error_set(err, PH_ERR_INTERNAL, -errno, "cannot make %s: %s",
                            dir ? dir : "the egress dir", strerror(errno));
    }
    struct egress_config ecfg = {
        .dns_server = json_string_value(dns),
        .allow_cidrs = cidrs,
        .hosts = hosts,
        .on_event = on_egress_event,
        .event_data = net,
    };
    if (egress_new(&ecfg, &net->egress, err) < 0) {
        free(net);
        return -EIO;
    }
    net->gw = gw;
    net->observer = (struct instance_observer){
        .setup = net_setup,
        .ending = net_ending,
        .describe = net_describe,
    };
    instances_observe(gw->instances, &net->observer);
    *out = net;
    return 0;
}

void network_free(struct network *net)
{
    if (!net)
        return;
    while (net->vms) {
        struct net_vm *nv = net->vms;
        net->vms = nv->next;
        egress_vm_close(nv->evm);
        free(nv);
    }
    egress_free(net->egress);
    free(net);
}

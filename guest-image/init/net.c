/* The guest's network (a static address on QEMU's user network), its host
 * name, and whether a TCP port is listening. */

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "init.h"

/* QEMU user-mode networking's fixed addresses. */
#define GUEST_ADDR "10.0.2.15"
#define GUEST_NETMASK "255.255.255.0"
#define GATEWAY_ADDR "10.0.2.2"
#define DNS_ADDR "10.0.2.3"

/* True when some socket is in LISTEN on the port; reading /proc/net/tcp
 * avoids the stray connections a connect() probe would leave in logs. */
bool tcp_listening(uint16_t port)
{
    const char *tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "re");
        if (!f)
            continue;
        char line[512];
        bool found = false;
        while (!found && fgets(line, sizeof(line), f)) {
            char *colon = strchr(line, ':');
            if (!colon)
                continue;
            /* "sl: LOCAL_ADDR:PORT REMOTE_ADDR:PORT ST ..." */
            char local[64], remote[64];
            unsigned st;
            if (sscanf(colon + 1, " %63s %63s %x", local, remote, &st) != 3)
                continue;
            char *p = strrchr(local, ':');
            if (p && strtoul(p + 1, NULL, 16) == port && st == 0x0A)
                found = true;
        }
        fclose(f);
        if (found)
            return true;
    }
    return false;
}

void hostname_apply(const struct config *cfg)
{
    if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
        logmsg("sethostname: %s", strerror(errno));
    char buf[512];
    snprintf(buf, sizeof(buf), "%s\n", cfg->hostname);
    write_string("/etc/hostname", buf, 0644);
    snprintf(buf, sizeof(buf),
             "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
             cfg->hostname);
    write_string("/etc/hosts", buf, 0644);
}

static int if_set_flags_up(int sock, const char *ifname)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
        return -errno;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
        return -errno;
    return 0;
}

static int if_set_addr(int sock, const char *ifname, unsigned long request, const char *addr)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, addr, &sin->sin_addr);
    if (ioctl(sock, request, &ifr) < 0)
        return -errno;
    return 0;
}

static int route_add_default(int sock, const char *gateway)
{
    struct rtentry rt;
    memset(&rt, 0, sizeof(rt));
    struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
    struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
    struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
    dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
    inet_pton(AF_INET, gateway, &gw->sin_addr);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    if (ioctl(sock, SIOCADDRT, &rt) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* A netlink socket that hears of every new network link, or -errno. */
static int link_watch(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* The legacy ioctls cover a static address and one route with no exec of
 * `ip`, which costs real time under TCG. */
void network_setup(void)
{
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        logmsg("network: socket: %s", strerror(errno));
        return;
    }
    int r = if_set_flags_up(sock, "lo");
    if (r < 0)
        logmsg("network: lo up: %s", strerror(-r));
    /* sysfs makes no inotify events; the kernel announces a new link on
     * rtnetlink (after its sysfs entry exists). */
    int links = link_watch();
    if (links < 0)
        logmsg("network: rtnetlink: %s", strerror(-links));
    bool up = wait_watched(links, cond_path_exists, (void *)"/sys/class/net/eth0", 5000, NULL);
    if (links >= 0)
        close(links);
    if (!up) {
        logmsg("network: no eth0");
        close(sock);
        return;
    }
    if ((r = if_set_addr(sock, "eth0", SIOCSIFADDR, GUEST_ADDR)) < 0 ||
        (r = if_set_addr(sock, "eth0", SIOCSIFNETMASK, GUEST_NETMASK)) < 0 ||
        (r = if_set_flags_up(sock, "eth0")) < 0 || (r = route_add_default(sock, GATEWAY_ADDR)) < 0)
        logmsg("network: eth0: %s", strerror(-r));
    else
        logmsg("network: eth0 " GUEST_ADDR "/24 via " GATEWAY_ADDR);
    close(sock);
    unlink("/etc/resolv.conf");
    write_string("/etc/resolv.conf", "nameserver " DNS_ADDR "\n", 0644);
}

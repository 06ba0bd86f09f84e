/* The API's input validation: every bad field gets a 400 that names it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_fail.h"
#include "check.h"
#include "params.h"
#include "utf8.h"
#include "util.h"

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL);
    if (!j) {
        fprintf(stderr, "bad test JSON: %s\n", text);
        exit(2);
    }
    return j;
}

/* Expects parse failure with a 400 whose message contains needle. */
static void bad_sandbox(const char *text, const char *needle)
{
    struct sandbox_params p;
    struct ph_error err = {0};
    json_t *j = J(text);
    int r = sandbox_params_parse(j, &p, &err);
    if (r >= 0 || err.kind != PH_ERR_INVALID || !strstr(err.message, needle)) {
        fprintf(stderr, "sandbox %s: r=%d msg=\"%s\", wanted \"%s\"\n", text, r, err.message,
                needle);
        check_failures++;
    }
    if (r >= 0)
        sandbox_params_done(&p);
    json_decref(j);
}

static void bad_exec(const char *text, const char *needle)
{
    struct exec_params p;
    struct ph_error err = {0};
    json_t *j = J(text);
    int r = exec_params_parse(j, &p, &err);
    if (r >= 0 || err.kind != PH_ERR_INVALID || !strstr(err.message, needle)) {
        fprintf(stderr, "exec %s: r=%d msg=\"%s\", wanted \"%s\"\n", text, r, err.message, needle);
        check_failures++;
    }
    json_decref(j);
}

static void bad_path(const char *path, const char *needle)
{
    struct ph_error err = {0};
    int r = guest_path_check(path, &err);
    if (r >= 0 || !strstr(err.message, needle)) {
        fprintf(stderr, "path \"%s\": r=%d msg=\"%s\", wanted \"%s\"\n", path ? path : "(null)", r,
                err.message, needle);
        check_failures++;
    }
}

/* Parses body with allocation n failing, for every n until none fails: a
 * parse that an allocation failure cut short says so, and none goes on
 * without what it could not allocate. */
static void out_of_memory(const char *text, bool browser)
{
    json_t *j = J(text);
    long n;

    for (n = 1; n < 1000; n++) {
        struct sandbox_params sp;
        struct browser_params bp;
        struct ph_error err = {0};
        alloc_fail_after(n);
        int r = browser ? browser_params_parse(j, &bp, &err) : sandbox_params_parse(j, &sp, &err);
        bool fired = alloc_fail_fired();
        alloc_fail_after(0);
        if (r == 0 && browser)
            browser_params_done(&bp);
        else if (r == 0)
            sandbox_params_done(&sp);
        if (!fired) {
            CHECK(r == 0);
            break;
        }
        if (r == 0 || err.kind != PH_ERR_INTERNAL || strcmp(err.message, "out of memory") != 0) {
            fprintf(stderr, "%s with allocation %ld failing: r=%d kind %d \"%s\"\n", text, n, r,
                    err.kind, err.message);
            check_failures++;
        }
    }
    CHECK(n > 1 && n < 1000);
    json_decref(j);
}

int main(void)
{
    struct sandbox_params sp;
    struct exec_params ep;
    struct ph_error err;
    json_t *j;

    /* Defaults. */
    j = J("{}");
    CHECK(sandbox_params_parse(j, &sp, &err) == 0);
    CHECK(sp.vcpus == 2 && sp.mem_mib == 1024 && sp.disk_mib == 0 && sp.timeout_minutes == 60);
    CHECK(sp.wait && json_object_size(sp.env_vars) == 0);
    sandbox_params_done(&sp);
    json_decref(j);

    j = J("{\"vcpus\": 4, \"mem_mib\": 2048, \"disk_mib\": 4096, \"timeout_minutes\": 5,"
          " \"env_vars\": {\"FOO\": \"bar baz\", \"_X1\": \"\"}, \"wait\": false}");
    CHECK(sandbox_params_parse(j, &sp, &err) == 0);
    CHECK(sp.vcpus == 4 && sp.mem_mib == 2048 && sp.disk_mib == 4096 && !sp.wait);
    CHECK_STR(json_string_value(json_object_get(sp.env_vars, "FOO")), "bar baz");
    sandbox_params_done(&sp);
    json_decref(j);

    /* A client-chosen id, SmolVM's VMConfig(vm_id=...). */
    j = J("{\"id\": \"agent-workspace_1\"}");
    CHECK(sandbox_params_parse(j, &sp, &err) == 0);
    CHECK_STR(sp.id, "agent-workspace_1");
    sandbox_params_done(&sp);
    json_decref(j);
    j = J("{}");
    CHECK(sandbox_params_parse(j, &sp, &err) == 0 && sp.id[0] == '\0');
    sandbox_params_done(&sp);
    json_decref(j);
    /* Images: "base" is the default; a custom name is kept. */
    j = J("{\"image\": \"base\"}");
    CHECK(sandbox_params_parse(j, &sp, &err) == 0 && sp.image[0] == '\0');
    sandbox_params_done(&sp);
    json_decref(j);
    j = J("{\"image\": \"py-data_2\"}");
    CHECK(sandbox_params_parse(j, &sp, &err) == 0);
    CHECK_STR(sp.image, "py-data_2");
    sandbox_params_done(&sp);
    json_decref(j);
    bad_sandbox("{\"image\": \"browser\"}", "image must name");
    bad_sandbox("{\"image\": \"../base\"}", "image must name");
    bad_sandbox("{\"image\": \"-x\"}", "image must name");
    bad_sandbox("{\"image\": \"\"}", "image must name");
    bad_sandbox("{\"image\": \"Base\"}", "image must name");
    bad_sandbox("{\"image\": \"abcdefghijklmnopqrstuvwxyz0123456\"}", "image");
    bad_sandbox("{\"image\": 3}", "image");
    /* Ports. */
    {
        struct port_params pp;
        j = J("{\"guest_port\": 8080}");
        CHECK(port_params_parse(j, &pp, &err) == 0 && pp.guest_port == 8080 && pp.host_port == 0 &&
              !pp.guest_loopback);
        json_decref(j);
        j = J("{\"guest_port\": 22, \"host_port\": 9000, \"guest_loopback\": true}");
        CHECK(port_params_parse(j, &pp, &err) == 0 && pp.host_port == 9000 && pp.guest_loopback);
        json_decref(j);
        static const char *const bad_ports[] = {
            "{}",
            "{\"guest_port\": 0}",
            "{\"guest_port\": 65536}",
            "{\"guest_port\": \"80\"}",
            "{\"guest_port\": 80, \"host_port\": 0}",
            "{\"guest_port\": 80, \"x\": 1}",
            "{\"guest_port\": 80, \"guest_loopback\": 1}",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad_ports); i++) {
            memset(&err, 0, sizeof(err));
            j = J(bad_ports[i]);
            CHECK(port_params_parse(j, &pp, &err) < 0 && err.kind == PH_ERR_INVALID);
            json_decref(j);
        }
    }
    /* Network policies: internet by default, none, or an allow-list. */
    j = J("{}");
    CHECK(sandbox_params_parse(j, &sp, &err) == 0 && sp.net_mode == NET_INTERNET &&
          !sp.allowed_domains);
    sandbox_params_done(&sp);
    json_decref(j);
    j = J("{\"network\": \"none\"}");
    CHECK(sandbox_params_parse(j, &sp, &err) == 0 && sp.net_mode == NET_NONE);
    sandbox_params_done(&sp);
    json_decref(j);
    j = J("{\"allowed_domains\": [\"Web.Test\", \"*.example.com\"]}");
    CHECK(sandbox_params_parse(j, &sp, &err) == 0 && sp.net_mode == NET_ALLOWLIST);
    CHECK(json_array_size(sp.allowed_domains) == 2);
    CHECK_STR(json_string_value(json_array_get(sp.allowed_domains, 0)), "web.test");
    CHECK_STR(net_mode_name(sp.net_mode), "allowlist");
    sandbox_params_done(&sp);
    json_decref(j);
    bad_sandbox("{\"network\": \"lan\"}", "network must be");
    bad_sandbox("{\"network\": 1}", "network");
    bad_sandbox("{\"network\": \"none\", \"allowed_domains\": [\"a.test\"]}",
                "allowed_domains needs network");
    /* A list that fails half-way frees what it had (ASan's leak check). */
    bad_sandbox("{\"allowed_domains\": [\"a.test\", \"bad domain\"]}", "allowed_domains[1]");
    bad_sandbox("{\"allowed_domains\": [\"a.test\"], \"env_vars\": {\"1X\": \"v\"}}", "env_vars");
    {
        /* 16 values of 4 KiB pass one by one but not together: the guest
         * would not take that config. */
        char *big = malloc(17 * 4200 + 64), *q = big;
        q += sprintf(q, "{\"env_vars\": {");
        for (int i = 0; i < 16; i++) {
            q += sprintf(q, "%s\"V%d\": \"", i ? ", " : "", i);
            memset(q, 'x', 4000);
            q += 4000;
            *q++ = '"';
        }
        sprintf(q, "}}");
        bad_sandbox(big, "the guest takes at most");
        free(big);
    }
    bad_sandbox("{\"id\": \"Agent\"}", "id must be 1 to 39");
    bad_sandbox("{\"id\": \"-x\"}", "id must be 1 to 39");
    bad_sandbox("{\"id\": \"x-\"}", "id must be 1 to 39");
    bad_sandbox("{\"id\": \"a/b\"}", "id must be 1 to 39");
    bad_sandbox("{\"id\": \"vm-123\"}", "not start with \"vm-\"");
    bad_sandbox("{\"id\": \"snap-123\"}", "\"snap-\"");
    bad_sandbox("{\"id\": \"fork-123\"}", "\"fork-\"");
    bad_sandbox("{\"from_snapshot\": 7}", "from_snapshot");
    bad_sandbox("{\"id\": \"\"}", "id must be 1 to 39");
    bad_sandbox("{\"id\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "id is longer than 39");
    bad_sandbox("{\"id\": 7}", "id must be a string");
    bad_sandbox("{\"vcpus\": \"2\"}", "vcpus must be an integer");
    bad_sandbox("{\"vcpus\": 0}", "vcpus must be between 1 and 8");
    bad_sandbox("{\"vcpus\": 2.5}", "vcpus must be an integer");
    bad_sandbox("{\"mem_mib\": 100}", "mem_mib must be between");
    bad_sandbox("{\"mem_mib\": 99999999999}", "mem_mib must be between");
    bad_sandbox("{\"disk_mib\": 10}", "disk_mib must be 0");
    bad_sandbox("{\"timeout_minutes\": 0}", "timeout_minutes");
    bad_sandbox("{\"timeout_minutes\": null, \"wait\": 1}", "wait must be true or false");
    bad_sandbox("{\"env_vars\": [\"A=b\"]}", "env_vars must be an object");
    bad_sandbox("{\"env_vars\": {\"1BAD\": \"x\"}}", "not a valid variable name");
    bad_sandbox("{\"env_vars\": {\"A-B\": \"x\"}}", "not a valid variable name");
    bad_sandbox("{\"env_vars\": {\"A\": 1}}", "env_vars.A must be a string");
    bad_sandbox("{\"env_vars\": {\"A\": \"x\\ny\"}}", "must not contain newlines");
    bad_sandbox("{\"env_vars\": {\"A\": \"x\\u0000y\"}}", "must not contain newlines or NUL");
    bad_sandbox("{\"vpcus\": 2}", "unknown field \"vpcus\"");

    /* Exec. */
    j = J("{\"command\": \"echo hi\"}");
    CHECK(exec_params_parse(j, &ep, &err) == 0);
    CHECK_STR(ep.command, "echo hi");
    CHECK(ep.shell == RUN_SHELL_LOGIN && ep.timeout_s == 30);
    json_decref(j);
    j = J("{\"command\": \"true\", \"shell\": \"raw\", \"timeout\": 5}");
    CHECK(exec_params_parse(j, &ep, &err) == 0 && ep.shell == RUN_SHELL_RAW && ep.timeout_s == 5);
    json_decref(j);
    bad_exec("{}", "command is required");
    bad_exec("{\"command\": \"\"}", "command is required");
    bad_exec("{\"command\": 42}", "command must be a string");
    bad_exec("{\"command\": \"a\\u0000b\"}", "must not contain NUL");
    bad_exec("{\"command\": \"ls\", \"shell\": \"zsh\"}", "shell must be");
    bad_exec("{\"command\": \"ls\", \"timeout\": -1}", "timeout must be between");
    bad_exec("{\"command\": \"ls\", \"timeout\": \"5\"}", "timeout must be an integer");
    bad_exec("{\"command\": \"ls\", \"cwd\": \"/\"}", "unknown field");
    {
        size_t n = RUN_MAX_COMMAND_LEN + 10;
        char *big = malloc(n + 1);
        memset(big, 'a', n);
        big[n] = 0;
        json_t *o = json_pack("{s:s}", "command", big);
        CHECK(exec_params_parse(o, &ep, &err) < 0 && strstr(err.message, "longer than"));
        json_decref(o);
        free(big);
    }

    /* Guest paths. */
    CHECK(guest_path_check("/root/file.txt", &err) == 0);
    CHECK(guest_path_check("/tmp/a..b/..c", &err) == 0);
    bad_path(NULL, "path is required");
    bad_path("", "path is required");
    bad_path("relative/x", "absolute");
    bad_path("/tmp/../etc/shadow", "\"..\"");
    bad_path("/..", "\"..\"");
    bad_path("/tmp/x/..", "\"..\"");
    bad_path("/tmp/a\nb", "control characters");
    bad_path("/tmp/", "directory");

    /* Browser sessions: SmolVM's limits, each error naming its field. */
    struct browser_params bp;
    j = J("{}");
    CHECK(browser_params_parse(j, &bp, &err) == 0);
    CHECK(!bp.live && bp.width == 1280 && bp.height == 720 && bp.timeout_minutes == 30);
    CHECK(bp.allow_downloads && !bp.persistent && bp.mem_mib == 2048 && !bp.allowed_domains);
    browser_params_done(&bp);
    json_decref(j);
    j = J("{\"mode\":\"live\",\"viewport\":{\"width\":1920,\"height\":1080},"
          "\"record_video\":true,\"profile_id\":\"work.1\",\"allowed_domains\":[\"Example.COM\"]}");
    CHECK(browser_params_parse(j, &bp, &err) == 0);
    CHECK(bp.live && bp.width == 1920 && bp.record_video && bp.persistent);
    CHECK_STR(bp.profile_id, "work.1");
    CHECK_STR(json_string_value(json_array_get(bp.allowed_domains, 0)), "example.com");
    CHECK(domain_allowed(bp.allowed_domains, "example.com"));
    /* A plain pattern is that host only; "*.example.com" is for subdomains. */
    CHECK(!domain_allowed(bp.allowed_domains, "www.example.com"));
    CHECK(!domain_allowed(bp.allowed_domains, "evil-example.com"));
    CHECK(!domain_allowed(bp.allowed_domains, "example.com.evil.org"));
    browser_params_done(&bp);
    json_decref(j);
    struct {
        const char *body, *needle;
    } bad_browser[] = {
        {"{\"mode\":\"kiosk\"}", "mode must be"},
        {"{\"viewport\":{\"width\":639,\"height\":480}}",
         "viewport.width must be between 640 and 7680"},
        {"{\"viewport\":{\"width\":800,\"height\":4321}}",
         "viewport.height must be between 480 and 4320"},
        {"{\"viewport\":[800,600]}", "viewport must be an object"},
        {"{\"viewport\":{\"w\":800}}", "viewport: unknown field"},
        {"{\"record_video\":true}", "record_video needs mode"},
        {"{\"mem_size_mib\":511}", "mem_size_mib must be between 512 and 16384"},
        {"{\"disk_size_mib\":1024}", "disk_size_mib must be between 2048 and 16384"},
        {"{\"timeout_minutes\":241}", "timeout_minutes must be between 1 and 240"},
        {"{\"profile_mode\":\"forever\"}", "profile_mode must be"},
        {"{\"profile_id\":\"../x\"}", "profile_id must be"},
        {"{\"profile_mode\":\"ephemeral\",\"profile_id\":\"a\"}", "profile_id needs"},
        {"{\"allow_downloads\":\"no\"}", "allow_downloads must be true or false"},
        {"{\"allowed_domains\":\"example.com\"}", "allowed_domains must be an array"},
        {"{\"allowed_domains\":[\"exa mple.com\"]}", "is not a host name"},
        {"{\"allowed_domains\":[\"a..example\"]}", "is not a host name"},
        {"{\"allowed_domains\":[\"*.\"]}", "is not a host name"},
        {"{\"allowed_domains\":[\"*.127.0.0.1\"]}", "is not a host name"},
        {"{\"allowed_domains\":[\"1.2.3.999\"]}", "is not a host name"},
        {"{\"allowed_domains\":[\"a%2eb\"]}", "is not a host name"},
        {"{\"env_vars\":{\"A B\":\"x\"}}", "not a valid variable name"},
    };
    for (size_t i = 0; i < sizeof(bad_browser) / sizeof(bad_browser[0]); i++) {
        j = J(bad_browser[i].body);
        memset(&err, 0, sizeof(err));
        int r = browser_params_parse(j, &bp, &err);
        if (r >= 0 || !strstr(err.message, bad_browser[i].needle)) {
            fprintf(stderr, "browser %s: \"%s\", wanted \"%s\"\n", bad_browser[i].body, err.message,
                    bad_browser[i].needle);
            check_failures++;
        }
        browser_params_done(&bp);
        json_decref(j);
    }

    /* Output with invalid UTF-8 still becomes a JSON string. */
    json_t *s = utf8_json_string("ok\xff\xc3(\xe2\x82\xac", 8);
    CHECK(s != NULL);
    CHECK_STR(json_string_value(s), "ok\xef\xbf\xbd\xef\xbf\xbd(\xe2\x82\xac");
    json_decref(s);
    s = utf8_json_string("a\0b", 3);
    CHECK(s && json_string_length(s) == 3);
    json_decref(s);
    /* A stream's read that ends inside a character keeps its start. */
    CHECK(utf8_unfinished("caf\xc3", 4) == 1);
    CHECK(utf8_unfinished("caf\xc3\xa9", 5) == 0);
    CHECK(utf8_unfinished("\xe2\x82", 2) == 2);
    CHECK(utf8_unfinished("x\xf0\x9f\x98", 4) == 3);
    CHECK(utf8_unfinished("\xf0\x9f\x98\x80", 4) == 0);
    CHECK(utf8_unfinished("ab", 2) == 0 && utf8_unfinished("", 0) == 0);
    CHECK(utf8_unfinished("\xff", 1) == 0); /* starts nothing: replaced, not kept */

    alloc_fail_hook_jansson();
    out_of_memory("{}", false);
    out_of_memory("{\"env_vars\": {\"A\": \"1\", \"B\": \"2\"}, "
                  "\"allowed_domains\": [\"a.test\", \"*.b.test\"]}",
                  false);
    out_of_memory("{\"mode\": \"live\", \"env_vars\": {\"A\": \"1\"}, "
                  "\"allowed_domains\": [\"c.test\"]}",
                  true);
    CHECK_DONE();
}

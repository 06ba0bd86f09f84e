/* Command sandboxes: the sandbox kind and the /v1/sandboxes API (exec,
 * files, env, exposed ports) over the instance lifecycle. */
#include "sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "params.h"
#include "snapshot.h"
#include "ssh.h"
#include "utf8.h"
#include "util.h"

#define SANDBOX_FILE_MAX (64 * 1024 * 1024)

struct sandboxes {
    struct instance_kind kind;
    struct gateway *gw; /* weak */
};

static struct instance *sandbox_for_req(struct gateway *gw, struct http_req *req, bool need_ready)
{
    return instance_for_req(gw->instances, &gw->sandboxes->kind, req, need_ready);
}

static void api_sandbox_create(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct ph_error err = {0};
    struct sandbox_params p;
    json_t *body = http_json_body(req, &err);
    struct instance *sb;

    if (!body || sandbox_params_parse(body, &p, &err) < 0) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    if (p.image[0]) {
        _cleanup_free_ char *dir = vm_image_dir(gw->cache_dir, p.image);
        if (!dir || !vm_image_present(dir)) {
            http_reply_errorf(req, PH_ERR_INVALID,
                              "no image \"%s\" on this gateway; build it with: porthole image "
                              "build %s --packages PKG,...",
                              p.image, p.image);
            sandbox_params_done(&p);
            return;
        }
    }
    struct vm_template snap;
    if (p.from_snapshot[0]) {
        /* The snapshot fixes the VM: its sizes, its image, its disk. */
        if (p.has_vcpus || p.has_mem || p.has_disk || p.has_image) {
            http_reply_errorf(req, PH_ERR_INVALID,
                              "from_snapshot fixes vcpus, mem_mib, disk_mib and image; give "
                              "none of them");
            sandbox_params_done(&p);
            return;
        }
        if (snapshots_lookup(gw->snapshots, p.from_snapshot, &gw->sandboxes->kind, &snap, p.image,
                             sizeof(p.image), &err) < 0) {
            http_reply_error(req, &err);
            sandbox_params_done(&p);
            return;
        }
        p.vcpus = snap.vcpus;
        p.mem_mib = snap.mem_mib;
    }
    struct instance_launch l = {
        .kind = &gw->sandboxes->kind,
        .id = p.id[0] ? p.id : NULL,
        .image = p.image,
        .vcpus = p.vcpus,
        .mem_mib = p.mem_mib,
        .disk_mib = p.disk_mib,
        .timeout_minutes = p.timeout_minutes,
        .env_vars = p.env_vars,
        .net_mode = p.net_mode,
        .allowed_domains = p.allowed_domains,
        .ready = p.wait ? instance_reply_ready : NULL,
        .ready_data = req,
        .from_dir = p.from_snapshot[0] ? snap.dir : NULL,
        .from_snapshot = p.from_snapshot[0] ? p.from_snapshot : NULL,
    };
    sb = instance_launch(gw->instances, &l, &err);
    sandbox_params_done(&p);
    if (!sb) {
        http_reply_error(req, &err);
        return;
    }
    lwsl_user("sandbox %s starting for %s\n", sb->id, req->actor);
    if (!p.wait)
        http_reply_json(req, 201, instance_to_json(sb));
}

static void api_sandbox_list(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    http_reply_json(
        req, 200,
        json_pack("{s:o}", "sandboxes", instances_list_json(gw->instances, &gw->sandboxes->kind)));
}

static void api_sandbox_get(struct http_req *req, void *data)
{
    struct instance *sb = sandbox_for_req(data, req, false);
    if (sb)
        http_reply_json(req, 200, instance_to_json(sb));
}

static void api_sandbox_delete(struct http_req *req, void *data)
{
    struct instance *sb = sandbox_for_req(data, req, false);
    if (sb && instance_delete(sb, instance_reply_deleted, req) < 0)
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
}

static void sandbox_power(struct http_req *req, struct gateway *gw, enum instance_power_op op)
{
    struct instance *sb = sandbox_for_req(gw, req, false);
    if (sb)
        instance_power_req(sb, req, op);
}

static void api_sandbox_stop(struct http_req *req, void *data)
{
    sandbox_power(req, data, INSTANCE_POWER_STOP);
}

static void api_sandbox_start(struct http_req *req, void *data)
{
    sandbox_power(req, data, INSTANCE_POWER_START);
}

static void api_sandbox_pause(struct http_req *req, void *data)
{
    sandbox_power(req, data, INSTANCE_POWER_PAUSE);
}

static void api_sandbox_resume(struct http_req *req, void *data)
{
    sandbox_power(req, data, INSTANCE_POWER_RESUME);
}

/* ---- exec ---------------------------------------------------------------- */

struct exec_job {
    struct gateway *gw;
    struct instance *sb;
    struct vm *vm; /* weak: held by sb->jobs */
    struct http_req *req;
    char *command; /* owned */
    struct run_request rr;
    struct run_result res;
    struct ph_error err;
    int r;
    /* "stream": true. began and gone are the worker's until done. */
    bool began, gone;
    /* Per stream, the start of a UTF-8 sequence that the next read ends. */
    char carry[2][4];
    size_t carry_len[2];
};

static void exec_job_run(void *data)
{
    struct exec_job *j = data;
    struct run_transport t = vm_transport(j->vm);
    j->r = run_command(&t, j->gw->hooks, j->sb->hooks, &j->rr, &j->res, &j->err);
}

/* One event of a streamed exec, as a line of JSON. */
static void stream_event(struct exec_job *j, json_t *ev)
{
    char *line = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!line) {
        j->gone = true; /* out of memory: the stream cannot be trusted */
        return;
    }
    size_t n = strlen(line);
    line[n] = '\n';
    if (!http_stream_write(j->req, line, n + 1))
        j->gone = true;
    free(line);
}

static void stream_output(struct exec_job *j, int which, const char *buf, size_t len)
{
    static const char *const names[2] = {"stdout", "stderr"};
    size_t have = j->carry_len[which];
    char *joined = malloc(have + len + 1);

    if (!joined) {
        j->gone = true;
        return;
    }
    memcpy(joined, j->carry[which], have);
    if (len)
        memcpy(joined + have, buf, len);
    size_t total = have + len, keep = buf ? utf8_unfinished(joined, total) : 0;
    memcpy(j->carry[which], joined + total - keep, keep);
    j->carry_len[which] = keep;
    if (total > keep)
        stream_event(j, json_pack("{s:s, s:o}", "type", names[which], "data",
                                  utf8_json_string(joined, total - keep)));
    free(joined);
}

/* Worker thread, from the transport. */
static void exec_on_output(void *data, enum run_stream stream, const char *buf, size_t len)
{
    struct exec_job *j = data;

    if (stream == RUN_STREAM_START) {
        /* Past the veto: from here the answer is a stream. */
        http_stream_begin(j->req, 200, "application/x-ndjson");
        j->began = true;
        return;
    }
    if (!j->gone)
        stream_output(j, stream == RUN_STREAM_STDERR, buf, len);
}

/* A streamed command whose client left is killed: closing the stream is
 * how a client cancels it. */
static bool exec_cancelled(void *data)
{
    struct exec_job *j = data;
    return j->began && http_stream_gone(j->req);
}

/* How a command ended: the blocking reply adds its output, a stream's
 * exit event its type. */
static json_t *exec_end_json(const struct run_result *res)
{
    return json_pack("{s:i, s:I, s:b, s:b}", "exit_code", res->exit_code, "duration_ms",
                     (json_int_t)res->duration_ms, "stdout_truncated", res->out_truncated,
                     "stderr_truncated", res->err_truncated);
}

/* The last events of a stream: what no read finished, then how it ended. */
static void exec_stream_end(struct exec_job *j)
{
    for (int which = 0; which < 2 && !j->gone; which++)
        if (j->carry_len[which])
            stream_output(j, which, NULL, 0);
    if (j->r < 0)
        stream_event(j, json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "code",
                                  ph_error_code(j->err.kind), "message", j->err.message));
    else {
        json_t *ev = exec_end_json(&j->res);
        if (ev)
            json_object_set_new(ev, "type", json_string("exit"));
        stream_event(j, ev);
    }
    http_stream_end(j->req);
}

static void exec_job_done(void *data)
{
    struct exec_job *j = data;

    if (j->began)
        exec_stream_end(j);
    else if (j->r < 0)
        http_reply_error(j->req, &j->err);
    else {
        json_t *o = exec_end_json(&j->res);
        if (o) {
            json_object_set_new(o, "stdout", utf8_json_string(j->res.out, j->res.out_len));
            json_object_set_new(o, "stderr", utf8_json_string(j->res.err, j->res.err_len));
        }
        http_reply_json(j->req, 200, o);
    }
    run_result_done(&j->res);
    instance_release(j->sb);
    free(j->command);
    free(j);
}

static void api_sandbox_exec(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct ph_error err = {0};
    struct exec_params p;
    struct instance *sb = sandbox_for_req(gw, req, true);
    json_t *body;
    struct exec_job *j;

    if (!sb)
        return;
    body = http_json_body(req, &err);
    if (!body || exec_params_parse(body, &p, &err) < 0) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j || !(j->command = strdup(p.command))) {
        free(j);
        json_decref(body);
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    json_decref(body);
    j->gw = gw;
    j->sb = sb;
    j->vm = sb->vm;
    j->req = req;
    j->rr = (struct run_request){
        .command = j->command, .shell = p.shell, .timeout_s = p.timeout_s, .actor = req->actor};
    if (p.stream) {
        j->rr.on_output = exec_on_output;
        j->rr.cancelled = exec_cancelled;
        j->rr.output_data = j;
    }
    if (instance_submit_exec_req(sb, req, exec_job_run, exec_job_done, j) < 0) {
        free(j->command);
        free(j);
    }
}

/* ---- files, env and ports ----------------------------------------------- */

static json_t *port_json(const struct vm_port *p);

enum file_op { FILE_PUT, FILE_GET, ENV_PUT, PORT_OPEN, PORT_CLOSE };

struct file_job {
    struct gateway *gw;
    struct instance *sb;
    struct vm *vm; /* weak: held */
    struct http_req *req;
    enum file_op op;
    char *path; /* owned */
    char *data; /* owned: file read back */
    size_t len;
    json_t *env;         /* owned: new env for ENV_PUT */
    struct vm_port port; /* PORT_OPEN: asked, then opened; PORT_CLOSE: guest_port */
    struct ph_error err;
    int r;
};

static void file_job_run(void *data)
{
    struct file_job *j = data;
    switch (j->op) {
    case FILE_PUT:
        j->r = vm_ssh_put_file(j->vm->ssh, j->path, j->req->body, j->req->body_len, 0644, &j->err);
        break;
    case FILE_GET:
        j->r = vm_ssh_get_file(j->vm->ssh, j->path, &j->data, &j->len, SANDBOX_FILE_MAX, &j->err);
        break;
    case ENV_PUT: {
        size_t n = json_object_size(j->env), i = 0;
        struct vm_env_var *env = calloc(n + 1, sizeof(*env));
        const char *key;
        json_t *val;
        if (!env) {
            j->r = -ENOMEM;
            break;
        }
        json_object_foreach(j->env, key, val) env[i++] =
            (struct vm_env_var){key, json_string_value(val)};
        j->r = vm_set_env(j->vm, env, n, &j->err);
        free(env);
        break;
    }
    case PORT_OPEN:
        j->r = vm_port_open(j->vm, &j->port, &j->port, &j->err);
        break;
    case PORT_CLOSE:
        j->r = vm_port_close(j->vm, j->port.guest_port, &j->err);
        break;
    }
    if (j->r < 0 && j->err.kind == PH_ERR_NONE)
        ph_error_set(&j->err, PH_ERR_INTERNAL, j->r, "%s", strerror(-j->r));
}

static void file_job_done(void *data)
{
    struct file_job *j = data;

    if (j->r < 0) {
        http_reply_error(j->req, &j->err);
    } else if (j->op == FILE_PUT) {
        http_reply_json(
            j->req, 200,
            json_pack("{s:s, s:I}", "path", j->path, "bytes", (json_int_t)j->req->body_len));
    } else if (j->op == FILE_GET) {
        http_reply_data(j->req, 200, "application/octet-stream", TAKE_PTR(j->data), j->len, NULL);
    } else if (j->op == PORT_OPEN) {
        lwsl_user("sandbox %s: guest port %d exposed on %s:%d for %s\n", j->sb->id,
                  j->port.guest_port, j->port.host_addr, j->port.host_port, j->req->actor);
        http_reply_json(j->req, 201, port_json(&j->port));
    } else if (j->op == PORT_CLOSE) {
        http_reply_json(
            j->req, 200,
            json_pack("{s:i, s:s}", "guest_port", j->port.guest_port, "status", "closed"));
    } else {
        json_decref(j->sb->env_vars);
        j->sb->env_vars = json_incref(j->env);
        instance_save(j->sb);
        http_reply_json(j->req, 200, json_pack("{s:O}", "env_vars", j->sb->env_vars));
    }
    instance_release(j->sb);
    free(j->path);
    free(j->data);
    json_decref(j->env);
    free(j);
}

static void file_job_submit(struct gateway *gw, struct instance *sb, struct http_req *req,
                            struct file_job *j)
{
    j->gw = gw;
    j->sb = sb;
    j->vm = sb->vm;
    j->req = req;
    if (instance_submit_req(sb, req, file_job_run, file_job_done, j) < 0) {
        free(j->path);
        json_decref(j->env);
        free(j);
    }
}

static void api_sandbox_file(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct ph_error err = {0};
    const char *path = http_query(req, "path");
    struct instance *sb;
    struct file_job *j;

    if (guest_path_check(path, &err) < 0) {
        http_reply_error(req, &err);
        return;
    }
    if (!(sb = sandbox_for_req(gw, req, true)))
        return;
    j = calloc(1, sizeof(*j));
    if (!j || !(j->path = strdup(path))) {
        free(j);
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    j->op = req->method == HTTP_PUT ? FILE_PUT : FILE_GET;
    file_job_submit(gw, sb, req, j);
}

static void api_sandbox_env_get(struct http_req *req, void *data)
{
    struct instance *sb = sandbox_for_req(data, req, false);
    if (sb)
        http_reply_json(req, 200, json_pack("{s:O}", "env_vars", sb->env_vars));
}

static void api_sandbox_env_put(struct http_req *req, void *data)
{
    static const char *const allowed[] = {"env_vars", NULL};
    struct gateway *gw = data;
    struct ph_error err = {0};
    json_t *body, *env = NULL;
    struct instance *sb;
    struct file_job *j;

    if (!(sb = sandbox_for_req(gw, req, true)))
        return;
    body = http_json_body(req, &err);
    if (!body || params_only(body, allowed, &err) < 0 ||
        env_vars_parse(json_object_get(body, "env_vars"), "env_vars", &env, &err) < 0) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    j = calloc(1, sizeof(*j));
    if (!j) {
        json_decref(env);
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    j->op = ENV_PUT;
    j->env = env;
    file_job_submit(gw, sb, req, j);
}

static json_t *port_json(const struct vm_port *p)
{
    json_t *o = json_pack("{s:i, s:i, s:s, s:b}", "guest_port", p->guest_port, "host_port",
                          p->host_port, "host", p->host_addr, "guest_loopback", p->guest_loopback);
    if (o && p->error[0])
        json_object_set_new(o, "error", json_string(p->error));
    return o;
}

/* Ports as the VM has them; none while it is not up. */
static json_t *ports_json(const struct instance *sb)
{
    struct vm_port ports[VM_PORTS_MAX];
    size_t n = sb->vm ? vm_ports(sb->vm, ports, VM_PORTS_MAX) : 0;
    json_t *a = json_array();

    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, port_json(&ports[i]));
    return a;
}

static json_t *sandbox_to_json(const struct instance *sb)
{
    json_t *o = instance_json_base(sb);
    if (o)
        json_object_set_new(o, "ports", ports_json(sb));
    return o;
}

static void api_sandbox_port_open(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct ph_error err = {0};
    struct port_params p;
    json_t *body = http_json_body(req, &err);
    struct instance *sb;
    struct file_job *j;

    if (!body || port_params_parse(body, &p, &err) < 0) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    if (!(sb = sandbox_for_req(gw, req, true)))
        return;
    if (!(j = calloc(1, sizeof(*j)))) {
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    j->op = PORT_OPEN;
    j->port.guest_port = p.guest_port;
    j->port.host_port = p.host_port;
    j->port.guest_loopback = p.guest_loopback;
    snprintf(j->port.host_addr, sizeof(j->port.host_addr), "%s", gw->port_bind);
    file_job_submit(gw, sb, req, j);
}

static void api_sandbox_port_list(struct http_req *req, void *data)
{
    struct instance *sb = sandbox_for_req(data, req, false);
    if (sb)
        http_reply_json(req, 200, json_pack("{s:o}", "ports", ports_json(sb)));
}

static void api_sandbox_port_close(struct http_req *req, void *data)
{
    struct gateway *gw = data;
    struct instance *sb;
    struct file_job *j;
    char *end;
    long port = strtol(req->params[1], &end, 10);

    if (*end || end == req->params[1] || port < 1 || port > 65535) {
        http_reply_errorf(req, PH_ERR_INVALID, "the port in the path must be 1 to 65535");
        return;
    }
    if (!(sb = sandbox_for_req(gw, req, true)))
        return;
    if (!(j = calloc(1, sizeof(*j)))) {
        http_reply_errorf(req, PH_ERR_INTERNAL, "out of memory");
        return;
    }
    j->op = PORT_CLOSE;
    j->port.guest_port = (int)port;
    file_job_submit(gw, sb, req, j);
}

static void sandbox_api_register(struct gateway *gw)
{
    http_route(gw->http, HTTP_POST, "/v1/sandboxes", 0, 0, api_sandbox_create, gw);
    http_route(gw->http, HTTP_GET, "/v1/sandboxes", 0, 0, api_sandbox_list, gw);
    http_route(gw->http, HTTP_GET, "/v1/sandboxes/{id}", 0, 0, api_sandbox_get, gw);
    http_route(gw->http, HTTP_DELETE, "/v1/sandboxes/{id}", 0, 0, api_sandbox_delete, gw);
    http_route(gw->http, HTTP_POST, "/v1/sandboxes/{id}/stop", 0, 0, api_sandbox_stop, gw);
    http_route(gw->http, HTTP_POST, "/v1/sandboxes/{id}/start", 0, 0, api_sandbox_start, gw);
    http_route(gw->http, HTTP_POST, "/v1/sandboxes/{id}/pause", 0, 0, api_sandbox_pause, gw);
    http_route(gw->http, HTTP_POST, "/v1/sandboxes/{id}/resume", 0, 0, api_sandbox_resume, gw);
    http_route(gw->http, HTTP_POST, "/v1/sandboxes/{id}/exec", 0, 0, api_sandbox_exec, gw);
    http_route(gw->http, HTTP_PUT, "/v1/sandboxes/{id}/files", HTTP_ROUTE_BIG_BODY,
               SANDBOX_FILE_MAX, api_sandbox_file, gw);
    http_route(gw->http, HTTP_GET, "/v1/sandboxes/{id}/files", 0, 0, api_sandbox_file, gw);
    http_route(gw->http, HTTP_GET, "/v1/sandboxes/{id}/env", 0, 0, api_sandbox_env_get, gw);
    http_route(gw->http, HTTP_PUT, "/v1/sandboxes/{id}/env", 0, 0, api_sandbox_env_put, gw);
    http_route(gw->http, HTTP_POST, "/v1/sandboxes/{id}/ports", 0, 0, api_sandbox_port_open, gw);
    http_route(gw->http, HTTP_GET, "/v1/sandboxes/{id}/ports", 0, 0, api_sandbox_port_list, gw);
    http_route(gw->http, HTTP_DELETE, "/v1/sandboxes/{id}/ports/{port}", 0, 0,
               api_sandbox_port_close, gw);
}

int sandboxes_new(struct gateway *gw, struct sandboxes **out)
{
    struct sandboxes *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->gw = gw;
    s->kind = (struct instance_kind){
        .name = "sandbox",
        .label = "sandbox",
        .id_prefix = "sb-",
        .ready_marker = "PORTHOLE_READY ssh",
        .vm_kind = VM_KIND_SANDBOX,
        .to_json = sandbox_to_json,
    };
    instances_add_kind(gw->instances, &s->kind);
    gw->sandboxes = s;
    sandbox_api_register(gw);
    *out = s;
    return 0;
}

void sandboxes_free(struct sandboxes *s)
{
    free(s);
}

const struct instance_kind *sandboxes_kind(const struct sandboxes *s)
{
    return &s->kind;
}

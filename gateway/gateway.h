/* The gateway daemon: `porthole gateway`. */
#pragma once

struct gateway_opts {
    const char *listen;      /* "127.0.0.1:8790" */
    const char *state_dir;   /* NULL: default_state_dir() */
    const char *config_path; /* JSON config, or NULL */
    const char *accel;       /* "auto" | "kvm" | "tcg", NULL = auto */
    int ready_fd;            /* -1 if unused: "ready URL\n" is written once listening */
};

#define GATEWAY_DEFAULT_LISTEN "127.0.0.1:8790"

/* Runs until SIGTERM/SIGINT; returns the process exit code. */
int gateway_main(const struct gateway_opts *o);

/* What a live session's screen offers over VNC: desktop screenshots,
 * computer-use actions and recordings. Each session gets one VNC client,
 * made on first use and shared by all three. */
#pragma once

#include "manager.h"

void media_api_register(struct gateway *gw);
/* Loop thread, when a live session is created: its media state. */
struct session_media *media_of(struct sandbox *sb);
/* Worker thread: starts the recording asked for at session start. */
int media_start_initial_recording(struct gateway *gw, struct sandbox *sb, struct vm *vm,
                                  struct ph_error *err);
/* Worker thread, before the VM stops: finalizes recordings, ends the VNC
 * client. Safe to call more than once. */
void media_session_stop(struct gateway *gw, struct sandbox *sb);
void media_free(struct session_media *m);
/* Deletes recordings older than the retention setting (loop thread). */
void media_sweep(struct gateway *gw);

/* media: what a live session's screen offers over VNC: desktop
 * screenshots, computer-use actions and recordings. Each session gets one
 * VNC client, made on first use and shared by all three.
 *
 * Usage (loop thread): media_new(gw, &gw->media) registers the routes and
 * an observer of the instance lifecycle: a live session gets its media
 * state at setup, starts recording before it is handed out when it asked
 * for record_video, has its recording finalized and its VNC client closed
 * before its VM stops (or is left running at shutdown), and loses its
 * media state when it is destroyed. media_sweep() every second deletes
 * recordings past the retention setting. media_free() at shutdown. */
#pragma once

struct gateway;
struct media;

int media_new(struct gateway *gw, struct media **out);
void media_free(struct media *md);
void media_sweep(struct media *md);

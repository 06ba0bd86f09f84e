/* Moving file contents between local paths and the API. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "cli.h"

/* GET path into local, atomically (temp file + rename). *bytes = size. */
int localfile_download(struct api *api, const char *path, const char *local, size_t *bytes,
                       struct cli_error *err);
/* PUT a regular local file (at most HTTPC_MAX_BODY_DEFAULT bytes) to path;
 * *out is the JSON answer, *bytes the size sent. */
int localfile_upload(struct api *api, const char *path, const char *local, json_t **out,
                     size_t *bytes, struct cli_error *err);

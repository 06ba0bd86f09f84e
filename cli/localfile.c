/* Local files on either side of a transfer: an upload is a regular file of
 * bounded size; a download lands in a temporary file beside its target and
 * is renamed only when complete, so an interrupted transfer never leaves a
 * truncated file under the name the user asked for. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "httpc.h"
#include "localfile.h"
#include "util.h"

int localfile_download(struct api *api, const char *path, const char *local, size_t *bytes,
                       struct cli_error *err)
{
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int fd = -1;
    const char *slash = strrchr(local, '/');
    mode_t mask;
    int r;

    if (strlen(local) >= PATH_MAX - 32)
        return cli_error_set(err, 2, "usage_error", NULL, -ENAMETOOLONG, "path too long: %s",
                             local);
    if (slash)
        r = asprintf(&tmp, "%.*s/.%s.porthole-XXXXXX", (int)(slash - local), local, slash + 1);
    else
        r = asprintf(&tmp, ".%s.porthole-XXXXXX", local);
    if (r < 0)
        return cli_error_set(err, 1, "internal", NULL, -ENOMEM, "out of memory");
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return cli_error_set(err, 1, "local_io", NULL, -errno, "cannot create a file beside %s: %m",
                             local);
    r = api_download(api, path, fd, bytes, err);
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    /* mkostemp makes 0600; a downloaded file gets the usual umask mode. */
    mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) < 0 || close(TAKE_FD(fd)) < 0 || rename(tmp, local) < 0) {
        r = -errno;
        unlink(tmp);
        return cli_error_set(err, 1, "local_io", NULL, r, "cannot write %s: %s", local,
                             strerror(-r));
    }
    return 0;
}

int localfile_upload(struct api *api, const char *path, const char *local, json_t **out,
                     size_t *bytes, struct cli_error *err)
{
    _cleanup_close_ int fd = -1;
    struct stat st;

    fd = open(local, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cli_error_set(err, 1, "local_io", NULL, -errno, "cannot open %s: %m", local);
    if (fstat(fd, &st) < 0)
        return cli_error_set(err, 1, "local_io", NULL, -errno, "cannot stat %s: %m", local);
    if (!S_ISREG(st.st_mode))
        return cli_error_set(err, 1, "local_io", NULL, -EINVAL, "%s is not a regular file", local);
    if ((unsigned long long)st.st_size > HTTPC_MAX_BODY_DEFAULT)
        return cli_error_set(err, 1, "too_large", NULL, -EFBIG,
                             "%s is larger than the %u MiB a transfer may carry", local,
                             HTTPC_MAX_BODY_DEFAULT >> 20);
    *bytes = (size_t)st.st_size;
    return api_upload(api, path, fd, (size_t)st.st_size, out, err);
}

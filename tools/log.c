/* The rate-limited, non-blocking log of the servers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "nbio/nbio.h"

void cli_log_init(cli_log *l, FILE *f, const char *prefix, int burst)
{
    memset(l, 0, sizeof *l);
    fflush(f != NULL ? f : stderr);
    l->fd = fileno(f != NULL ? f : stderr);
    l->prefix = prefix;
    l->burst = burst > 0 ? burst : 20;
    struct stat st;
    if (l->fd >= 0 && fstat(l->fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        int fl = fcntl(l->fd, F_GETFL);
        if (fl >= 0)
            (void)fcntl(l->fd, F_SETFL, fl | O_NONBLOCK);
    }
}

/* One write of the whole line, or none of it. */
static void emit(cli_log *l, const char *line, size_t len)
{
    ssize_t n;
    do {
        n = write(l->fd, line, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EPIPE)
        l->fd = -1; /* nobody reads any more */
    else if (n < 0)
        l->dropped++;
}

void cli_log_tick(cli_log *l, bool force)
{
    if (l->suppressed == 0 || l->fd < 0)
        return;
    int64_t now = nbio_now_ms();
    if (!force && now - l->window_start < 1000)
        return;
    char line[160];
    int n = snprintf(line, sizeof line, "%s%s%lu log lines suppressed\n",
                     l->prefix != NULL ? l->prefix : "", l->prefix != NULL ? ": " : "",
                     l->suppressed);
    l->suppressed = 0;
    l->window_start = now;
    l->in_window = 1;
    emit(l, line, (size_t)n);
}

void cli_log_line(cli_log *l, const char *fmt, ...)
{
    if (l->fd < 0)
        return;
    int64_t now = nbio_now_ms();
    if (now - l->window_start >= 1000) {
        l->window_start = now;
        l->in_window = 0;
    }
    if (l->in_window >= l->burst) {
        l->suppressed++;
        return;
    }
    l->in_window++;
    char line[512];
    int off = 0;
    if (l->suppressed > 0) {
        off = snprintf(line, sizeof line, "%s%s%lu log lines suppressed\n",
                       l->prefix != NULL ? l->prefix : "", l->prefix != NULL ? ": " : "",
                       l->suppressed);
        l->suppressed = 0;
    }
    if (l->prefix != NULL)
        off += snprintf(line + off, sizeof line - (size_t)off, "%s: ", l->prefix);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + off, sizeof line - (size_t)off - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)off + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    emit(l, line, len);
}

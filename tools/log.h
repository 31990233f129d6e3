/*
 * A log for one-threaded servers: a line never blocks the loop or kills the
 * process, and clients cannot make it flood.
 *
 * Lines go out with one write(2) each. A pipe or socket is switched to
 * non-blocking mode, so a reader that stops reading costs lines, not the
 * loop; a reader that is gone (EPIPE) silences the log (SIGPIPE is ignored
 * by the server). At most `burst` lines go out per second; the rest are
 * counted, and the next line that goes out is preceded by
 * "N log lines suppressed".
 */
#ifndef NBIO_TOOLS_LOG_H
#define NBIO_TOOLS_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cli_log {
    int fd;              /* -1: silenced */
    const char *prefix;  /* "nbio echo-server" */
    int burst;           /* lines per second */
    int64_t window_start;
    int in_window;
    unsigned long suppressed;
    unsigned long dropped; /* lost to a full pipe */
} cli_log;

/* Sets up a log on f (stderr when NULL). prefix NULL: lines go out as
 * given (an access log). */
void cli_log_init(cli_log *l, FILE *f, const char *prefix, int burst);

/* Says how many lines were suppressed, once their second is over (or at
 * once with force). Cheap: call it every loop step, and with force at exit. */
void cli_log_tick(cli_log *l, bool force);

/* Logs "PREFIX: MESSAGE\n" (or "MESSAGE\n") unless over the rate; never
 * blocks. */
void cli_log_line(cli_log *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

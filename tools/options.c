/* Option parsing shared by the nbio subcommands. */
#define _GNU_SOURCE
#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool cli_option(cli_args *a, const char *name, const char **value)
{
    if (a->i >= a->argc)
        return false;
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return false;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        a->i++;
        return true;
    }
    if (arg[n] != '\0')
        return false;
    if (a->i + 1 >= a->argc) {
        cli_usage_error(a->cmd, "option %s needs a value", name);
        *value = NULL;
        a->i++;
        return true;
    }
    *value = a->argv[a->i + 1];
    a->i += 2;
    return true;
}

bool cli_flag(cli_args *a, const char *flag)
{
    if (a->i < a->argc && strcmp(a->argv[a->i], flag) == 0) {
        a->i++;
        return true;
    }
    return false;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "nbio %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'nbio %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

bool cli_framing(const char *cmd, const char *value, const nbio_frame_strategy **out)
{
    if (strcmp(value, "none") == 0) {
        *out = NULL;
        return true;
    }
    *out = nbio_frame_strategy_named(value);
    if (*out == NULL) {
        cli_usage_error(cmd, "unknown framing '%s' (use none, u64, u32, u16 or line)", value);
        return false;
    }
    return true;
}

bool cli_size(const char *cmd, const char *option, const char *value, size_t *out)
{
    const char *p = value;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p))
        goto bad;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (UINT64_MAX - 9) / 10)
            goto bad;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    unsigned shift = 0;
    switch (*p) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        goto bad;
    }
    if (*p != '\0' && p[1] != '\0')
        goto bad;
    if (v == 0 || v > (SIZE_MAX >> shift))
        goto bad;
    *out = (size_t)(v << shift);
    return true;
bad:
    cli_usage_error(cmd, "%s wants a positive byte count (e.g. 4096, 64K, 1M), not '%s'",
                    option, value);
    return false;
}

bool cli_is_unix_path(const char *addr)
{
    return strchr(addr, '/') != NULL;
}

static volatile sig_atomic_t stop_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void cli_install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: poll() returns EINTR at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool cli_stop_requested(void)
{
    return stop_flag != 0;
}

bool cli_count(const char *cmd, const char *option, const char *value, size_t min, size_t max,
               size_t *out)
{
    const char *p = value;
    size_t v = 0;
    if (!isdigit((unsigned char)*p))
        goto bad;
    for (; isdigit((unsigned char)*p); p++) {
        v = v * 10 + (size_t)(*p - '0');
        if (v > max)
            goto bad;
    }
    if (*p != '\0' || v < min)
        goto bad;
    *out = v;
    return true;
bad:
    cli_usage_error(cmd, "%s wants a whole number from %zu to %zu, not '%s'", option, min, max,
                    value);
    return false;
}

/*
 * The `nbio` command-line program: shared declarations.
 *
 * main.c dispatches to one function per subcommand; options.c holds the
 * option parsing every subcommand shares. Exit codes: 0 success, 1 a runtime
 * failure (network error, peer misbehaved), 2 a usage error.
 */
#ifndef NBIO_TOOLS_CLI_H
#define NBIO_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "nbio/frame.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Subcommands: argv[0] is the subcommand's name. */
int cli_echo_server(int argc, char **argv);
int cli_cat(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_get(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_ws(int argc, char **argv);

/* Walks argv one option at a time. */
typedef struct cli_args {
    int argc;
    char **argv;
    int i;            /* index of the next argument */
    const char *cmd;  /* "echo-server", for messages */
} cli_args;

/* True when argv[i] is the option --name, given as "--name VALUE" or
 * "--name=VALUE". On a match *value is set and the cursor moves past the
 * option; a missing value prints a usage error and sets *value to NULL. */
bool cli_option(cli_args *a, const char *name, const char **value);

/* True when argv[i] is exactly flag (e.g. "--help" or "-h"); advances. */
bool cli_flag(cli_args *a, const char *flag);

/* Prints "nbio CMD: MESSAGE" and a hint to try --help; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a --framing value: "none" gives *out = NULL. Returns false (after a
 * usage message) for an unknown name. */
bool cli_framing(const char *cmd, const char *value, const nbio_frame_strategy **out);

/* Parses a byte count: digits with an optional K, M or G suffix (binary
 * multiples). Returns false (after a usage message) when malformed or 0. */
bool cli_size(const char *cmd, const char *option, const char *value, size_t *out);

/* Parses a plain whole number within [min, max]. Returns false (after a
 * usage message) when malformed or out of range. */
bool cli_count(const char *cmd, const char *option, const char *value, size_t min, size_t max,
               size_t *out);

/* True when an address names a Unix socket (it contains a '/'). */
bool cli_is_unix_path(const char *addr);

/* Installs SIGINT/SIGTERM handlers that set the flag cli_stop_requested()
 * reports. No SA_RESTART, so a blocking poll() returns early. */
void cli_install_stop_handlers(void);
bool cli_stop_requested(void);

#endif

/* The `nbio` command-line program: subcommand dispatch. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"echo-server", cli_echo_server, "echo bytes or frames back to many clients"},
    {"cat", cli_cat, "send standard input to a peer, print what comes back"},
    {"get", cli_get, "HTTP requests: print the response bodies (like curl)"},
    {"serve", cli_serve, "serve a directory over HTTP/1.1 (and HTTPS), echo POST /echo"},
    {"ws", cli_ws, "a WebSocket client: lines of standard input out, messages in"},
    {"demo", cli_demo, "run the examples against an in-process echo server"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: nbio COMMAND [options]\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-12s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\n"
               "Run 'nbio COMMAND --help' for a command's options.\n"
               "Options: -h, --help (this text), --version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("nbio %s\n", nbio_version());
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(cmd, subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "nbio: unknown %s '%s'\n", cmd[0] == '-' ? "option" : "command", cmd);
    usage(stderr);
    return CLI_EXIT_USAGE;
}

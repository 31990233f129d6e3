/*
 * Shared parts of bench_echo and bench_scale: the servers under test run in
 * child processes, either the `nbio echo-server` program or a baseline
 * written here (a raw epoll echo loop, or a plain OpenSSL echo loop), and
 * the client talks to them over 127.0.0.1 with raw non-blocking sockets (or
 * OpenSSL on them), speaking u64 little-endian length-prefixed frames.
 */
#ifndef NBIO_BENCH_ECHO_COMMON_H
#define NBIO_BENCH_ECHO_COMMON_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "bench_common.h"

#define ECHO_HDR 8

/* ---- command line ------------------------------------------------------ */

/* Options of these two programs beyond bench_parse_args(): removed from
 * argv (argc updated) before it is handed to bench_parse_args. */
typedef struct echo_extra_opts {
    const char *nbio_path; /* --nbio PATH */
    bool syscalls;         /* --syscalls (bench_echo) */
    long conns;            /* --conns N (bench_scale); 0: default */
    bool repeats_given;    /* --repeats was on the command line */
} echo_extra_opts;

void echo_take_extra_args(int *argc, char **argv, echo_extra_opts *x);

/* The nbio program: --nbio PATH, else <dir of this executable>/../tools/nbio.
 * Exits with a message when it is not executable. */
const char *echo_find_nbio(const char *given);

/* Raises RLIMIT_NOFILE's soft limit to the hard limit (inherited by the
 * servers). Returns the new soft limit. */
long echo_raise_nofile(void);

/* ---- TLS material ---------------------------------------------------------- */

/* Makes a throwaway self-signed certificate (nbio_tls_make_cert, in memory),
 * writes it to a private temporary directory for the nbio server (removed
 * at exit), and builds the OpenSSL contexts: the baseline server's and the
 * client's (which trusts exactly that certificate). */
void echo_tls_setup(void);
SSL_CTX *echo_tls_client_ctx(void);

/* ---- servers ------------------------------------------------------------- */

typedef enum echo_server_kind {
    ECHO_SRV_NBIO, /* nbio echo-server --framing u64 */
    ECHO_SRV_RAW   /* the baseline loop in a forked child: raw or OpenSSL */
} echo_server_kind;

typedef struct echo_server_opts {
    echo_server_kind kind;
    bool tls;               /* TLS (needs echo_tls_setup) */
    bool wait;              /* nbio: --idle wait; raw: epoll_wait blocks when idle */
    bool pin;               /* server on CPU 1 */
    const char *nbio_path;  /* for ECHO_SRV_NBIO */
} echo_server_opts;

typedef struct echo_server_proc {
    pid_t pid;
    char addr[128];         /* as printed by the server */
    struct sockaddr_in sa;  /* where to connect */
} echo_server_proc;

/* Starts a server and reads its `listening on ADDR` line (at most
 * timeout_ms). Returns 0, or -1 with a message on stderr. */
int echo_server_start(echo_server_proc *p, const echo_server_opts *o, int timeout_ms);

/* How long a server may take to exit after SIGTERM before it is killed.
 * The nbio echo-server drains for at most 5 s (it echoes what clients sent,
 * closes gracefully and waits for each client's end of stream): clients
 * should close their connections once it was signalled. */
#define ECHO_STOP_MS 10000

/* SIGTERM (echo_server_signal), then waits up to timeout_ms, then SIGKILL
 * (echo_server_wait). Returns the wait status, or -1 when it had to be
 * killed. echo_server_stop does both with ECHO_STOP_MS. */
void echo_server_signal(echo_server_proc *p);
int echo_server_wait(echo_server_proc *p, int timeout_ms);
int echo_server_stop(echo_server_proc *p);

/* VmRSS of a process in KiB, or -1. */
long echo_rss_kib(pid_t pid);

/* Binds the calling process (all its threads) to CPU `which` (modulo the
 * CPUs online). */
void echo_pin_process(int which);

/* ---- client connections ----------------------------------------------------- */

/* A blocking connect to the server, then non-blocking with TCP_NODELAY.
 * Returns the fd or -1 (message printed). */
int echo_connect(const echo_server_proc *p);

typedef struct echo_conn {
    int fd;
    SSL *ssl;              /* NULL: plaintext */
    size_t retry_len;      /* TLS: length of a write that must be retried */
} echo_conn;

/* Connects (and for TLS completes the handshake, verifying the server's
 * certificate for 127.0.0.1) within timeout_ms. Returns 0 or -1. */
int echo_conn_open(echo_conn *c, const echo_server_proc *p, bool tls, int timeout_ms);
void echo_conn_close(echo_conn *c);

/* > 0 bytes moved, 0 would-block, -1 error or closed by the peer (message
 * in *why). A TLS write that would block must be retried with the same
 * bytes (at least as many): echo_conn_send takes care of the length. */
long echo_conn_send(echo_conn *c, const void *buf, size_t len, const char **why);
long echo_conn_recv(echo_conn *c, void *buf, size_t len, const char **why);

/* ---- frame verification ------------------------------------------------- */

/*
 * The client's frames: frame k has payload length plen, its first 8 bytes
 * are k ^ salt (little-endian) and the rest is a fixed pseudo-random pattern.
 * The receiver checks every byte of every echoed frame, in order, as it
 * arrives (a 1 MiB frame is checked piece by piece).
 */
typedef struct echo_rx {
    const unsigned char *base; /* expected pattern, plen bytes */
    size_t plen;
    uint64_t salt;
    uint64_t seq;              /* frame being received */
    unsigned char hdr[ECHO_HDR];
    size_t hdr_have;
    size_t off;                /* payload bytes of frame `seq` checked */
    bool in_payload;
    bool bad;
    char why[160];
} echo_rx;

void echo_rx_init(echo_rx *r, const unsigned char *base, size_t plen, uint64_t salt);
/* Checks n more received bytes. Returns 0, or -1 once something differed
 * (r->why says what). r->seq counts the complete frames. */
int echo_rx_feed(echo_rx *r, const unsigned char *p, size_t n);

/* Writes frame `seq` (header and payload, ECHO_HDR + plen bytes) to out. */
void echo_frame_build(unsigned char *out, const unsigned char *base, size_t plen, uint64_t seq,
                      uint64_t salt);

#endif

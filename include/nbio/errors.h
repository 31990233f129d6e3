/*
 * libnbio error codes.
 *
 * Every error is a negative int: -errno for system failures, and library
 * codes below -4000 for protocol-level failures. One table (NBIO_ERRNO_MAP
 * and NBIO_LIB_ERRORS) generates the constants, nbio_strerror() and
 * nbio_errname().
 */
#ifndef NBIO_ERRORS_H
#define NBIO_ERRORS_H

#include <errno.h>

#include "nbio/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* System errors the library reports by name: XX(NAME, message). */
#define NBIO_ERRNO_MAP(XX)                                              \
    XX(EPERM, "operation not permitted")                                \
    XX(ENOENT, "no such file or directory")                             \
    XX(EINTR, "interrupted system call")                                \
    XX(EIO, "i/o error")                                                \
    XX(EBADF, "bad file descriptor")                                    \
    XX(ENOMEM, "out of memory")                                         \
    XX(EACCES, "permission denied")                                     \
    XX(EINVAL, "invalid argument")                                      \
    XX(EMFILE, "too many open files")                                   \
    XX(ENFILE, "file table overflow")                                   \
    XX(ENOSPC, "no space left on device")                               \
    XX(EPIPE, "broken pipe")                                            \
    XX(ENAMETOOLONG, "name too long")                                   \
    XX(ENOTSUP, "operation not supported")                              \
    XX(EAFNOSUPPORT, "address family not supported")                    \
    XX(EADDRINUSE, "address already in use")                            \
    XX(EADDRNOTAVAIL, "address not available")                          \
    XX(ENETDOWN, "network is down")                                     \
    XX(ENETUNREACH, "network is unreachable")                           \
    XX(ECONNABORTED, "connection aborted")                              \
    XX(ECONNRESET, "connection reset by peer")                          \
    XX(ENOTCONN, "socket is not connected")                             \
    XX(ETIMEDOUT, "timed out")                                          \
    XX(ECONNREFUSED, "connection refused")                              \
    XX(EHOSTDOWN, "host is down")                                       \
    XX(EHOSTUNREACH, "host is unreachable")

/* Library errors: XX(NAME, value, message). */
#define NBIO_LIB_ERRORS(XX)                                                  \
    XX(EPEERCLOSED, -4001, "closed by peer")                                 \
    XX(ECLOSED, -4002, "session closed")                                     \
    XX(ETRUNCATED, -4003, "connection closed in the middle of a message")    \
    XX(EPROTOCOL, -4004, "protocol violation")                               \
    XX(ETOOLARGE, -4005, "message too large")                                \
    XX(ERESOLVE, -4006, "name resolution failed")                            \
    XX(ETLS, -4007, "TLS failure")                                           \
    XX(ECERTVERIFY, -4008, "certificate verification failed")                \
    XX(ETLSTRUNCATED, -4009, "TLS connection closed without close_notify")   \
    XX(EUNSUPPORTED, -4010, "not supported by this session")                 \
    XX(EUSAGE, -4011, "invalid use of the API")

enum nbio_error_code {
#define NBIO__ERRNO_ENUM(name, msg) NBIO_##name = -(name),
    NBIO_ERRNO_MAP(NBIO__ERRNO_ENUM)
#undef NBIO__ERRNO_ENUM
#define NBIO__LIB_ENUM(name, value, msg) NBIO_##name = (value),
    NBIO_LIB_ERRORS(NBIO__LIB_ENUM)
#undef NBIO__LIB_ENUM
    NBIO__ERROR_END = -4999
};

/** Returns a short lowercase description of err ("closed by peer",
 *  "connection refused"); static storage. Works for any -errno. */
NBIO_API const char *nbio_strerror(int err);

/** Returns the symbolic name of err ("NBIO_EPEERCLOSED", "NBIO_ECONNREFUSED",
 *  "NBIO_E?" for an unknown code); static storage. */
NBIO_API const char *nbio_errname(int err);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_ERRORS_H */

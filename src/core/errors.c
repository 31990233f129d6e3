/* Error names and messages, generated from the table in nbio/errors.h. */
#define _GNU_SOURCE
#include <string.h>

#include "nbio/errors.h"

/* glibc 2.32 has thread-safe errno descriptions and names; elsewhere
 * (musl, older glibc) strerror() gives the description (musl's strings are
 * static) and errnos outside the table have no name. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#define errno_desc(e) strerrordesc_np(e)
#define errno_name(e) strerrorname_np(e)
#else
#define errno_desc(e) strerror(e)
#define errno_name(e) ((const char *)NULL)
#endif

const char *nbio_strerror(int err)
{
    switch (err) {
#define NBIO__ERRNO_MSG(name, msg) \
    case -(name):                  \
        return msg;
        NBIO_ERRNO_MAP(NBIO__ERRNO_MSG)
#undef NBIO__ERRNO_MSG
#define NBIO__LIB_MSG(name, value, msg) \
    case (value):                       \
        return msg;
        NBIO_LIB_ERRORS(NBIO__LIB_MSG)
#undef NBIO__LIB_MSG
    case 0:
        return "success";
    default:
        break;
    }
    if (err < 0 && err > -4000) {
        const char *d = errno_desc(-err);
        if (d != NULL)
            return d;
    }
    return "unknown error";
}

const char *nbio_errname(int err)
{
    switch (err) {
#define NBIO__ERRNO_NAME(name, msg) \
    case -(name):                   \
        return "NBIO_" #name;
        NBIO_ERRNO_MAP(NBIO__ERRNO_NAME)
#undef NBIO__ERRNO_NAME
#define NBIO__LIB_NAME(name, value, msg) \
    case (value):                        \
        return "NBIO_" #name;
        NBIO_LIB_ERRORS(NBIO__LIB_NAME)
#undef NBIO__LIB_NAME
    case 0:
        return "NBIO_OK";
    default:
        break;
    }
    if (err < 0 && err > -4000) {
        const char *n = errno_name(-err);
        if (n != NULL)
            return n;
    }
    return "NBIO_E?";
}

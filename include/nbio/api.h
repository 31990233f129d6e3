/* libnbio: the export marker of public functions and data. */
#ifndef NBIO_API_H
#define NBIO_API_H

#if defined(__GNUC__) && !defined(NBIO_STATIC_ONLY)
#define NBIO_API __attribute__((visibility("default")))
#else
#define NBIO_API
#endif

#endif /* NBIO_API_H */

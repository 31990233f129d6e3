/* A program outside the project, built against an installed libnbio. */
#include <stdio.h>
#include <string.h>

#include <nbio/frame.h>
#include <nbio/mock.h>
#include <nbio/nbio.h>
#include <nbio/tcp.h>

#ifndef EXPECTED_VERSION
#error "build with -DEXPECTED_VERSION=\"x.y.z\""
#endif

static int check(int ok, const char *what)
{
    printf("%s: %s\n", ok ? "ok" : "FAILED", what);
    return ok ? 0 : 1;
}

int main(void)
{
    int bad = 0;
    printf("nbio_version() = %s\n", nbio_version());
    printf("nbio_strerror(NBIO_EPEERCLOSED) = %s\n", nbio_strerror(NBIO_EPEERCLOSED));
    bad += check(strcmp(nbio_version(), EXPECTED_VERSION) == 0, "version matches");
    bad += check(strcmp(nbio_version(), NBIO_VERSION_STRING) == 0, "header and library agree");
    bad += check(strcmp(nbio_strerror(NBIO_EPEERCLOSED), "closed by peer") == 0,
                 "nbio_strerror(NBIO_EPEERCLOSED)");
    bad += check(strcmp(nbio_errname(NBIO_EPEERCLOSED), "NBIO_EPEERCLOSED") == 0,
                 "nbio_errname(NBIO_EPEERCLOSED)");

    /* One u64-framed message through a mock transport. */
    nbio_session *s = nbio_frame_new(nbio_mock_new(NULL), &nbio_frame_u64le, NULL);
    nbio_buf msg = {"hello", 5};
    int r = s != NULL ? nbio_write(s, &msg) : -1;
    if (r == NBIO_DONE)
        r = nbio_flush(s, 0);
    size_t len = 0;
    const unsigned char *out = s != NULL ? nbio_mock_output(nbio_frame_inner(s), &len) : NULL;
    bad += check(r == NBIO_DONE && len == 13 && out[0] == 5 && memcmp(out + 8, "hello", 5) == 0,
                 "u64 frame over a mock session");
    nbio_free(s);

    /* A TCP client (links the resolver, hence c-ares, into a static build);
     * creating it never blocks. */
    nbio_session *c = nbio_tcp_connect("127.0.0.1:9", NULL);
    bad += check(c != NULL, "nbio_tcp_connect");
    nbio_free(c);
    return bad == 0 ? 0 : 1;
}

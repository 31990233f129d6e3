/* Many connections at once: 200 framed TCP clients and their 200 accepted
 * server sessions in one thread, sleeping in nbio_wait between rounds; one
 * misbehaving client does not disturb the others. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "nbio/frame.h"
#include "nbio/tcp.h"
#include "testutil.h"

enum { CLIENTS = 200, FRAMES = 20 };

typedef struct client {
    nbio_session *s;
    int sent, got; /* frames written / echoed back and checked */
} client;

typedef struct server {
    nbio_session *s;     /* an accepted session, NULL once dropped */
    unsigned char *held; /* copy of an echo that went pending */
    nbio_buf rest;
} server;

static size_t frame_len(int id, int i)
{
    return (size_t)((id * 131 + i * 977) % 3000);
}

static void fill(unsigned char *p, size_t len, int id, int i)
{
    for (size_t k = 0; k < len; k++)
        p[k] = (unsigned char)(id + i * 7 + k);
}

/* Echoes every frame, keeping the rest of a pending one. Returns 0 or the
 * error that ended the session. */
static int serve(server *v)
{
    int r;
    if (v->held != NULL) {
        if ((r = nbio_write(v->s, &v->rest)) != NBIO_DONE)
            return r < 0 ? r : 0;
        free(v->held);
        v->held = NULL;
    }
    nbio_buf in;
    while ((r = nbio_read(v->s, &in)) == NBIO_DATA) {
        nbio_buf echo = in;
        if ((r = nbio_write(v->s, &echo)) == NBIO_PENDING) {
            v->held = malloc(echo.len + 1);
            memcpy(v->held, echo.data, echo.len);
            v->rest.data = v->held;
            v->rest.len = echo.len;
            return 0;
        }
        if (r < 0)
            return r;
    }
    if (r < 0)
        return r;
    r = nbio_drive(v->s);
    return r < 0 ? r : 0;
}

/* Writes the client's next frame and checks what came back. */
static void client_step(client *c, int id)
{
    static unsigned char buf[4096];
    if (c->sent < FRAMES) {
        size_t len = frame_len(id, c->sent);
        fill(buf, len, id, c->sent);
        nbio_buf b = {buf, len};
        int r = nbio_write(c->s, &b);
        assert_ok_outcome(r);
        c->sent += r == NBIO_DONE;
    }
    nbio_buf in;
    int r;
    while ((r = nbio_read(c->s, &in)) == NBIO_DATA) {
        size_t len = frame_len(id, c->got);
        assert_int_equal(in.len, len);
        fill(buf, len, id, c->got);
        assert_memory_equal(in.data, buf, len);
        c->got++;
    }
    if (r < 0)
        fail_msg("client %d: %s (%s)", id, nbio_errname(r), nbio_detail(c->s));
}

static void test_two_hundred_connections(void **state)
{
    (void)state;
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    assert_int_equal(nbio_error(l), 0);
    char addr[64];
    nbio_local_address(l, addr, sizeof addr);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.read_buffer_size = 4096;
    fo.write_buffer_size = 4096;
    client *cl = calloc(CLIENTS, sizeof *cl);
    server *sv = calloc(CLIENTS + 1, sizeof *sv);
    nbio_session **all = calloc(2 * CLIENTS + 3, sizeof *all);
    for (int i = 0; i < CLIENTS; i++)
        cl[i].s = nbio_frame_new(nbio_tcp_connect(addr, NULL), &nbio_frame_u32be, &fo);
    /* a misbehaving client: a length header far over the limit, then EOF */
    nbio_session *bad = nbio_tcp_connect(addr, NULL);
    int bad_sent = 0, nserv = 0, dropped = 0, done = 0;
    int64_t deadline = nbio_now_ms() + 60000;
    while (done < CLIENTS) {
        nbio_session *in;
        int r;
        while ((r = nbio_accept(l, &in)) == NBIO_DATA) {
            assert_true(nserv < CLIENTS + 1);
            sv[nserv++].s = nbio_frame_new(in, &nbio_frame_u32be, &fo);
        }
        assert_ok_outcome(r);
        if (!bad_sent && nbio_status(bad) == NBIO_ESTABLISHED) {
            static const unsigned char huge[4] = {0x7f, 0xff, 0xff, 0xff};
            assert_int_equal(nbio_write_some(bad, huge, sizeof huge), 4);
            assert_int_equal(nbio_shutdown(bad), NBIO_DONE);
            bad_sent = 1;
        } else if (!bad_sent) {
            assert_ok_outcome(nbio_drive(bad));
        }
        size_t n = 0;
        done = 0;
        for (int i = 0; i < CLIENTS; i++) {
            client_step(&cl[i], i);
            done += cl[i].got == FRAMES;
            all[n++] = cl[i].s;
        }
        for (int i = 0; i < nserv; i++) {
            if (sv[i].s == NULL)
                continue;
            r = serve(&sv[i]);
            if (r < 0) { /* only the bad client may be dropped, for the right reason */
                assert_int_equal(r, NBIO_ETOOLARGE);
                nbio_free(sv[i].s);
                sv[i].s = NULL;
                dropped++;
                continue;
            }
            all[n++] = sv[i].s;
        }
        all[n++] = l;
        assert_true(nbio_wait(all, n, 5) >= 0);
        assert_true(nbio_now_ms() < deadline);
    }
    assert_int_equal(nserv, CLIENTS + 1);
    /* the bad one is dropped once its header is read */
    while (dropped == 0 && nbio_now_ms() < deadline) {
        for (int i = 0; i < nserv; i++)
            if (sv[i].s != NULL && serve(&sv[i]) == NBIO_ETOOLARGE) {
                nbio_free(sv[i].s);
                sv[i].s = NULL;
                dropped++;
            }
    }
    assert_int_equal(dropped, 1);
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(cl[i].got, FRAMES);
        nbio_free(cl[i].s);
    }
    for (int i = 0; i < nserv; i++) {
        nbio_free(sv[i].s);
        free(sv[i].held);
    }
    nbio_free(bad);
    nbio_free(l);
    free(all);
    free(cl);
    free(sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_hundred_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The mock and memory-pair byte sessions, and the contract the core verbs
 * enforce on every session. */
#define _GNU_SOURCE
#include <string.h>

#include "nbio/mock.h"
#include "testutil.h"

static void test_mock_scripted_reads(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    assert_string_equal(nbio_kind(m), "mock");
    assert_int_equal(nbio_fd(m), -1);
    nbio_mock_feed(m, "abcdefgh", 8);
    nbio_mock_step steps[] = {
        {NBIO_MOCK_BYTES, 1, 0},
        {NBIO_MOCK_WOULDBLOCK, 0, 0},
        {NBIO_MOCK_BYTES, 3, 0},
    };
    nbio_mock_script_read(m, steps, 3);
    nbio_buf out;
    assert_int_equal(nbio_read(m, &out), NBIO_DATA);
    assert_int_equal(out.len, 1);
    assert_memory_equal(out.data, "a", 1);
    assert_int_equal(nbio_read(m, &out), NBIO_IDLE);
    assert_int_equal(nbio_read(m, &out), NBIO_DATA);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "bcd", 3);
    /* unscripted: everything left */
    assert_int_equal(nbio_read(m, &out), NBIO_DATA);
    assert_int_equal(out.len, 4);
    assert_int_equal(nbio_read(m, &out), NBIO_IDLE);
    assert_true(nbio_interest(m) & NBIO_WANT_READ);
    nbio_mock_feed_eof(m);
    assert_true(nbio_interest(m) & NBIO_READY);
    assert_int_equal(nbio_read(m, &out), NBIO_EPEERCLOSED);
    assert_int_equal(nbio_status(m), NBIO_TERMINATED);
    nbio_free(m);
}

static void test_mock_read_chunk_and_errors(void **state)
{
    (void)state;
    nbio_mock_options o = {.read_chunk = 2};
    nbio_session *m = nbio_mock_new(&o);
    nbio_mock_feed(m, "xyz", 3);
    nbio_mock_step st[] = {{NBIO_MOCK_BYTES, 5, 0}, {NBIO_MOCK_ERROR, 0, NBIO_ECONNRESET}};
    nbio_buf out;
    assert_int_equal(nbio_read(m, &out), NBIO_DATA);
    assert_int_equal(out.len, 2);
    nbio_mock_script_read(m, st, 2);
    assert_int_equal(nbio_read(m, &out), NBIO_DATA);
    assert_int_equal(out.len, 1);
    assert_int_equal(nbio_read(m, &out), NBIO_ECONNRESET);
    assert_string_equal(nbio_errname(nbio_error(m)), "NBIO_ECONNRESET");
    assert_int_equal(nbio_read(m, &out), NBIO_ECONNRESET);
    assert_int_equal(nbio_write_some(m, "a", 1), NBIO_ECONNRESET);
    assert_int_equal(nbio_drive(m), NBIO_ECONNRESET);
    nbio_free(m);
}

static void test_mock_scripted_writes(void **state)
{
    (void)state;
    nbio_mock_options o = {.write_chunk = 4};
    nbio_session *m = nbio_mock_new(&o);
    nbio_mock_step st[] = {{NBIO_MOCK_BYTES, 1, 0}, {NBIO_MOCK_WOULDBLOCK, 0, 0}};
    nbio_mock_script_write(m, st, 2);
    const char *msg = "0123456789";
    nbio_buf b = {msg, 10};
    assert_int_equal(nbio_write(m, &b), NBIO_PENDING);
    assert_int_equal(b.len, 9);
    assert_ptr_equal(b.data, msg + 1);
    assert_int_equal(nbio_write(m, &b), NBIO_PENDING);
    assert_int_equal(b.len, 9);
    assert_int_equal(nbio_write(m, &b), NBIO_PENDING);
    assert_int_equal(b.len, 5);
    assert_int_equal(nbio_write(m, &b), NBIO_PENDING);
    assert_int_equal(nbio_write(m, &b), NBIO_DONE);
    assert_int_equal(b.len, 0);
    size_t len;
    const void *out = nbio_mock_output(m, &len);
    assert_int_equal(len, 10);
    assert_memory_equal(out, msg, 10);
    nbio_mock_consume_output(m, 4);
    out = nbio_mock_output(m, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(out, "456789", 6);
    nbio_mock_step eof = {NBIO_MOCK_EOF, 0, 0};
    nbio_mock_script_write(m, &eof, 1);
    assert_int_equal(nbio_write_some(m, "x", 1), NBIO_EPIPE);
    nbio_free(m);
}

static void test_mock_establishing(void **state)
{
    (void)state;
    nbio_mock_options o = {.establish_after = 2};
    nbio_session *m = nbio_mock_new(&o);
    assert_int_equal(nbio_status(m), NBIO_ESTABLISHING);
    nbio_buf b = {"hi", 2};
    assert_int_equal(nbio_write(m, &b), NBIO_PENDING);
    assert_int_equal(b.len, 2);
    assert_int_equal(nbio_drive(m), NBIO_ACTIVE);
    assert_int_equal(nbio_status(m), NBIO_ESTABLISHED);
    assert_int_equal(nbio_write(m, &b), NBIO_DONE);
    assert_int_equal(nbio_drive(m), NBIO_IDLE);
    nbio_free(m);
}

static void test_close_and_shutdown_contract(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    assert_int_equal(nbio_shutdown(m), NBIO_DONE);
    assert_int_equal(nbio_mock_goodbyes(m), 1);
    assert_int_equal(nbio_status(m), NBIO_ESTABLISHED);
    assert_int_equal(nbio_write_some(m, "x", 1), NBIO_ECLOSED);
    assert_int_equal(nbio_shutdown(m), NBIO_DONE);
    assert_int_equal(nbio_mock_goodbyes(m), 1); /* sent once */
    nbio_mock_feed(m, "late", 4);
    nbio_buf out;
    assert_int_equal(nbio_read(m, &out), NBIO_DATA); /* reading goes on */
    assert_int_equal(nbio_close(m), NBIO_DONE);
    assert_int_equal(nbio_mock_goodbyes(m), 1);
    assert_int_equal(nbio_status(m), NBIO_TERMINATED);
    assert_int_equal(nbio_error(m), NBIO_ECLOSED);
    assert_string_equal(nbio_detail(m), "closed locally");
    assert_int_equal(nbio_read(m, &out), NBIO_ECLOSED);
    nbio_free(m);
    /* NULL sessions are refused, never crash */
    assert_int_equal(nbio_status(NULL), NBIO_TERMINATED);
    assert_int_equal(nbio_drive(NULL), NBIO_EINVAL);
    assert_int_equal(nbio_read(NULL, &out), NBIO_EINVAL);
    assert_int_equal(nbio_fd(NULL), -1);
    nbio_free(NULL);
}

static void test_pair_transfer_and_backpressure(void **state)
{
    (void)state;
    nbio_session *a, *b;
    nbio_pair_options o = {.capacity = 8};
    assert_int_equal(nbio_pair_new(&a, &b, &o), 0);
    assert_string_equal(nbio_kind(a), "pair");
    nbio_buf w = {"0123456789", 10};
    assert_int_equal(nbio_write(a, &w), NBIO_PENDING);
    assert_int_equal(w.len, 2);
    nbio_buf out;
    assert_int_equal(nbio_read(b, &out), NBIO_DATA);
    assert_int_equal(out.len, 8);
    assert_memory_equal(out.data, "01234567", 8);
    assert_int_equal(nbio_write(a, &w), NBIO_DONE);
    assert_int_equal(nbio_read(b, &out), NBIO_DATA);
    assert_memory_equal(out.data, "89", 2);
    assert_int_equal(nbio_read(b, &out), NBIO_IDLE);
    /* the other direction */
    assert_int_equal(nbio_write_some(b, "pong", 4), 4);
    assert_int_equal(nbio_read(a, &out), NBIO_DATA);
    assert_memory_equal(out.data, "pong", 4);
    /* shutdown: clean close after the last byte */
    assert_int_equal(nbio_write_some(a, "end", 3), 3);
    assert_int_equal(nbio_shutdown(a), NBIO_DONE);
    assert_int_equal(nbio_read(b, &out), NBIO_DATA);
    assert_int_equal(nbio_read(b, &out), NBIO_EPEERCLOSED);
    /* b may still answer */
    assert_int_equal(nbio_write_some(b, "ok", 2), 2);
    assert_int_equal(nbio_read(a, &out), NBIO_DATA);
    nbio_free(a);
    assert_int_equal(nbio_write_some(b, "x", 1), NBIO_EPIPE);
    nbio_free(b);
}

static void test_pair_free_resets_peer(void **state)
{
    (void)state;
    nbio_session *a, *b;
    nbio_pair_options o = {.max_read = 1, .max_write = 1};
    assert_int_equal(nbio_pair_new(&a, &b, &o), 0);
    assert_int_equal(nbio_write_some(a, "ab", 2), 1);
    nbio_free(a);
    nbio_buf out;
    assert_int_equal(nbio_read(b, &out), NBIO_DATA); /* what was sent still arrives */
    assert_int_equal(out.len, 1);
    assert_int_equal(nbio_read(b, &out), NBIO_ECONNRESET);
    nbio_free(b);
}

static void test_error_table(void **state)
{
    (void)state;
    assert_string_equal(nbio_strerror(NBIO_EPEERCLOSED), "closed by peer");
    assert_string_equal(nbio_errname(NBIO_EPEERCLOSED), "NBIO_EPEERCLOSED");
    assert_string_equal(nbio_strerror(NBIO_ECONNREFUSED), "connection refused");
    assert_string_equal(nbio_errname(NBIO_ETIMEDOUT), "NBIO_ETIMEDOUT");
    assert_int_equal(NBIO_ETIMEDOUT, -ETIMEDOUT);
    assert_string_equal(nbio_strerror(NBIO_ETOOLARGE), "message too large");
    assert_string_equal(nbio_strerror(NBIO_ERESOLVE), "name resolution failed");
    assert_string_equal(nbio_errname(-4999), "NBIO_E?");
    assert_string_equal(nbio_strerror(-4999), "unknown error");
    /* an errno outside the table still has a description */
    assert_string_not_equal(nbio_strerror(-EDOM), "unknown error");
    /* every library code has a distinct name */
    int codes[] = {NBIO_EPEERCLOSED, NBIO_ECLOSED, NBIO_ETRUNCATED, NBIO_EPROTOCOL,
                   NBIO_ETOOLARGE, NBIO_ERESOLVE, NBIO_ETLS, NBIO_ECERTVERIFY,
                   NBIO_ETLSTRUNCATED, NBIO_EUNSUPPORTED, NBIO_EUSAGE};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i] < 0);
        for (size_t j = i + 1; j < sizeof codes / sizeof codes[0]; j++)
            assert_string_not_equal(nbio_errname(codes[i]), nbio_errname(codes[j]));
    }
    assert_string_equal(nbio_version(), NBIO_VERSION_STRING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mock_scripted_reads),
        cmocka_unit_test(test_mock_read_chunk_and_errors),
        cmocka_unit_test(test_mock_scripted_writes),
        cmocka_unit_test(test_mock_establishing),
        cmocka_unit_test(test_close_and_shutdown_contract),
        cmocka_unit_test(test_pair_transfer_and_backpressure),
        cmocka_unit_test(test_pair_free_resets_peer),
        cmocka_unit_test(test_error_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

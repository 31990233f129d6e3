/* http(s) URLs: a table of inputs, expected parts or rejections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/url.h"
#include "nbio/errors.h"

typedef struct url_case {
    const char *url;
    int ok;               /* 1: parses, 0: rejected */
    bool tls;
    const char *host;
    int port;
    const char *target;   /* the request target as sent */
    const char *authority;/* the Host header */
    const char *comment;  /* or the expected reason when rejected */
} url_case;

static const url_case cases[] = {
    {"http://example.com", 1, false, "example.com", 80, "/", "example.com", "no path"},
    {"http://example.com/", 1, false, "example.com", 80, "/", "example.com", "root"},
    {"HTTPS://Example.com/a/b?x=1&y=2", 1, true, "Example.com", 443, "/a/b?x=1&y=2",
     "Example.com", "scheme case, query kept"},
    {"http://h:8080/p", 1, false, "h", 8080, "/p", "h:8080", "explicit port"},
    {"http://h:80/p", 1, false, "h", 80, "/p", "h", "default port written"},
    {"https://h:443", 1, true, "h", 443, "/", "h", "https default port"},
    {"http://[::1]:8080/x", 1, false, "::1", 8080, "/x", "[::1]:8080", "IPv6 literal"},
    {"http://[::1]/", 1, false, "::1", 80, "/", "[::1]", "IPv6, default port"},
    {"http://127.0.0.1:9/", 1, false, "127.0.0.1", 9, "/", "127.0.0.1:9", "IPv4"},
    {"http://h?q=1", 1, false, "h", 80, "/?q=1", "h", "query without a path"},
    {"http://h/p#frag", 1, false, "h", 80, "/p", "h", "the fragment is not sent"},
    {"ftp://h/", 0, false, NULL, 0, NULL, NULL, "must start with http:// or https://"},
    {"h/p", 0, false, NULL, 0, NULL, NULL, "must start with http:// or https://"},
    {"http://", 0, false, NULL, 0, NULL, NULL, "no host"},
    {"http://:80/", 0, false, NULL, 0, NULL, NULL, "no host"},
    {"http://h:/", 0, false, NULL, 0, NULL, NULL, "empty port"},
    {"http://h:0/", 0, false, NULL, 0, NULL, NULL, "from 1 to 65535"},
    {"http://h:65536/", 0, false, NULL, 0, NULL, NULL, "from 1 to 65535"},
    {"http://h:8x/", 0, false, NULL, 0, NULL, NULL, "from 1 to 65535"},
    {"http://u:p@h/", 0, false, NULL, 0, NULL, NULL, "credentials"},
    {"http://[::1/", 0, false, NULL, 0, NULL, NULL, "unterminated"},
    {"http://[::1]x/", 0, false, NULL, 0, NULL, NULL, "after the [IPv6]"},
    {"http://[zz]/", 0, false, NULL, 0, NULL, NULL, "bad [IPv6]"},
    {"http://h/a b", 0, false, NULL, 0, NULL, NULL, "space or control character in the path"},
    {"http://h\r\n/", 0, false, NULL, 0, NULL, NULL, "control character in the host"},
};

static void test_url_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const url_case *c = &cases[i];
        nbio__url u;
        const char *why = NULL;
        int r = nbio__url_parse(c->url, &u, &why);
        if (!c->ok) {
            if (r != NBIO_EINVAL || strstr(why, c->comment) == NULL)
                fail_msg("%s: expected a rejection with \"%s\", got %d \"%s\"", c->url,
                         c->comment, r, why);
            continue;
        }
        if (r != 0)
            fail_msg("%s (%s): rejected: %s", c->url, c->comment, why);
        char target[256], auth[300];
        snprintf(target, sizeof target, "%s%.*s", u.slash ? "/" : "", (int)u.target_len,
                 u.target);
        assert_int_equal(nbio__url_authority(&u, auth, sizeof auth) > 0, 1);
        if (u.tls != c->tls || strcmp(u.host, c->host) != 0 || u.port != c->port ||
            strcmp(target, c->target) != 0 || strcmp(auth, c->authority) != 0)
            fail_msg("%s (%s): got tls=%d host=%s port=%d target=%s host header=%s", c->url,
                     c->comment, u.tls, u.host, u.port, target, auth);
    }
}

static void test_connect_addr(void **state)
{
    (void)state;
    nbio__url u;
    const char *why;
    char buf[64];
    assert_int_equal(nbio__url_parse("https://[2001:db8::1]/", &u, &why), 0);
    assert_int_equal(nbio__url_connect_addr(&u, buf, sizeof buf), (int)strlen("[2001:db8::1]:443"));
    assert_string_equal(buf, "[2001:db8::1]:443");
    assert_int_equal(nbio__url_connect_addr(&u, buf, 5), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_table),
        cmocka_unit_test(test_connect_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

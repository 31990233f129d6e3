/* http:// and https:// URLs. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/url.h"
#include "nbio/errors.h"

static int bad(const char **why, const char *reason)
{
    *why = reason;
    return NBIO_EINVAL;
}

static bool is_ctl_or_space(char c)
{
    return (unsigned char)c <= ' ' || c == 0x7f;
}

/* The host part [p, end): a name, IPv4 or [IPv6], then an optional port. */
static int parse_authority(const char *p, const char *end, nbio__url *u, const char **why)
{
    const char *hend, *port = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close == NULL)
            return bad(why, "unterminated [IPv6] address");
        if (close == p + 1 || (size_t)(close - p - 1) >= sizeof u->host)
            return bad(why, "bad [IPv6] address");
        for (const char *q = p + 1; q < close; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
                return bad(why, "bad [IPv6] address");
        memcpy(u->host, p + 1, (size_t)(close - p - 1));
        u->ipv6 = true;
        hend = close + 1;
        if (hend < end && *hend != ':')
            return bad(why, "unexpected characters after the [IPv6] address");
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon != NULL ? colon : end;
        if (hend == p)
            return bad(why, "no host in the URL");
        if ((size_t)(hend - p) >= sizeof u->host)
            return bad(why, "host name too long");
        memcpy(u->host, p, (size_t)(hend - p));
    }
    if (hend < end)
        port = hend + 1;
    u->default_port = true;
    if (port == NULL)
        return 0;
    long v = 0;
    if (port == end)
        return bad(why, "empty port");
    for (const char *q = port; q < end; q++)
        if (!isdigit((unsigned char)*q) || (v = v * 10 + (*q - '0')) > 65535)
            return bad(why, "the port must be a number from 1 to 65535");
    if (v == 0)
        return bad(why, "the port must be a number from 1 to 65535");
    u->default_port = v == (u->tls ? 443 : 80);
    u->port = (int)v;
    return 0;
}

int nbio__url_parse(const char *url, nbio__url *u, const char **why)
{
    memset(u, 0, sizeof *u);
    *why = "";
    if (url == NULL)
        return bad(why, "no URL");
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        u->port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        u->tls = true;
        u->port = 443;
    } else {
        return bad(why, "the URL must start with http:// or https://");
    }
    const char *end = p + strcspn(p, "/?#");
    for (const char *q = p; q < end; q++) {
        if (*q == '@')
            return bad(why, "credentials in the URL are not supported");
        if (is_ctl_or_space(*q))
            return bad(why, "space or control character in the host");
    }
    int r = parse_authority(p, end, u, why);
    if (r < 0)
        return r;
    size_t tlen = strcspn(end, "#");
    for (size_t i = 0; i < tlen; i++)
        if (is_ctl_or_space(end[i]))
            return bad(why, "space or control character in the path");
    u->target = end;
    u->target_len = tlen;
    u->slash = tlen == 0 || end[0] == '?'; /* "http://h" and "http://h?q" */
    return 0;
}

int nbio__url_authority(const nbio__url *u, char *buf, size_t cap)
{
    int n;
    if (u->default_port)
        n = snprintf(buf, cap, u->ipv6 ? "[%s]" : "%s", u->host);
    else
        n = snprintf(buf, cap, u->ipv6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
    return n >= 0 && (size_t)n < cap ? n : -1;
}

int nbio__url_connect_addr(const nbio__url *u, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, u->ipv6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
    return n >= 0 && (size_t)n < cap ? n : -1;
}

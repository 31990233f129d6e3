/*
 * The opening handshake's keys (RFC 6455 §4): Sec-WebSocket-Key and
 * Sec-WebSocket-Accept. See codec.h.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "ws/codec.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void nbio__ws_accept_key(const char *key, size_t key_len, char out[29])
{
    enum { GUID_LEN = sizeof ws_guid - 1 };
    unsigned char stack[128];
    unsigned char *cat = stack;
    unsigned char md[SHA_DIGEST_LENGTH];
    out[0] = '\0';
    if (key_len > SIZE_MAX - GUID_LEN)
        return;
    if (key_len + GUID_LEN > sizeof stack) {
        cat = malloc(key_len + GUID_LEN);
        if (cat == NULL)
            return;
    }
    if (key_len > 0)
        memcpy(cat, key, key_len);
    memcpy(cat + key_len, ws_guid, GUID_LEN);
    unsigned char *r = SHA1(cat, key_len + GUID_LEN, md);
    if (cat != stack)
        free(cat);
    if (r == NULL)
        return;
    /* 20 bytes: 28 characters with one '=', and a NUL. */
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

int nbio__ws_new_key(char out[25])
{
    unsigned char raw[16];
    out[0] = '\0';
    if (RAND_bytes(raw, sizeof raw) != 1)
        return NBIO_EIO;
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw); /* 24 characters and a NUL */
    return 0;
}

static bool b64char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

bool nbio__ws_key_ok(const char *key, size_t len)
{
    if (key == NULL || len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!b64char(key[i]))
            return false;
    return true;
}

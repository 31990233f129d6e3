#!/usr/bin/env python3
"""Writes the seed corpora corpus/fuzz_ws_{frame,handshake}/ (committed;
rerun after changing the input layout described in fuzz_ws_frame.c and
fuzz_ws_handshake.c)."""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# fuzz_ws_frame: byte 0's low 2 bits pick the mode, byte 1 seeds the splits.
FRAMES, FIELDS, UTF8, PMD = 0, 1, 2, 3


def seed(mode, data, params=0, split=0):
    return bytes([mode | (params << 2), split]) + data


def deflate_msg(data, wbits=15):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


MASKED_HELLO = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
KOSME = "κόσμε".encode()

FRAME_SEEDS = {
    # RFC 6455 §5.7
    "hello": seed(FRAMES, bytes([0x81, 0x05]) + b"Hello"),
    "hello-masked": seed(FRAMES, MASKED_HELLO, split=3),
    "fragment-first": seed(FRAMES, bytes([0x01, 0x03]) + b"Hel"),
    "fragment-last": seed(FRAMES, bytes([0x80, 0x02]) + b"lo"),
    "ping": seed(FRAMES, bytes([0x89, 0x05]) + b"Hello"),
    "pong-masked": seed(FRAMES, bytes([0x8A]) + MASKED_HELLO[1:]),
    "binary-256": seed(FRAMES, bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(range(256))),
    "binary-64k-header": seed(FRAMES, bytes([0x82, 0x7F]) + struct.pack(">Q", 65536) + b"abc"),
    "masked-16bit": seed(FRAMES, bytes([0x82, 0xFE, 0x00, 0x80, 1, 2, 3, 4]) + bytes(128), split=9),
    "close-1000": seed(FRAMES, bytes([0x88, 0x82, 9, 8, 7, 6, 0x03 ^ 9, 0xE8 ^ 8])),
    "non-minimal-16": seed(FRAMES, bytes([0x82, 0x7E, 0x00, 0x05]) + b"hello"),
    "non-minimal-64": seed(FRAMES, bytes([0x82, 0x7F]) + struct.pack(">Q", 5) + b"hello"),
    "rsv-bits": seed(FRAMES, bytes([0xF1, 0x00])),
    "compressed-hello": seed(FRAMES, bytes([0xC1, 0x07, 0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])),
    # rejections
    "opcode-3": seed(FRAMES, bytes([0x83, 0x00])),
    "opcode-15": seed(FRAMES, bytes([0x8F, 0x00])),
    "fragmented-close": seed(FRAMES, bytes([0x08, 0x00])),
    "ping-126": seed(FRAMES, bytes([0x89, 0x7E, 0x00, 0x7E])),
    "length-top-bit": seed(FRAMES, bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0])),
    "truncated-64": seed(FRAMES, bytes([0x82, 0xFF, 0, 0, 0])),
    # header from fields (mode 1): byte 0 of the data is op|flags
    "fields-text": seed(FIELDS, bytes([0x81]) + struct.pack(">Q", 5) + b"\x01\x02\x03\x04", 0),
    "fields-masked-16": seed(FIELDS, bytes([0xA2]) + struct.pack(">Q", 300) + b"abcd", 1),
    "fields-64": seed(FIELDS, bytes([0x02]) + struct.pack(">Q", 1 << 40) + b"abcd", 3),
    "fields-bad-control": seed(FIELDS, bytes([0x09]) + struct.pack(">Q", 200) + b"abcd", 1),
    "fields-top-bit": seed(FIELDS, bytes([0x82]) + struct.pack(">Q", 1 << 63) + b"abcd", 3),
    # UTF-8 (mode 2)
    "utf8-kosme": seed(UTF8, KOSME, split=1),
    "utf8-mixed": seed(UTF8, b"abcdefghijklm" + "é€😀".encode() + b"nopqrstuvwxyz" * 3, split=2),
    "utf8-max": seed(UTF8, "\uffff\U0010ffff".encode(), split=3),
    "utf8-overlong": seed(UTF8, b"\xc0\xaf\xe0\x80\xaf\xf0\x80\x80\xaf"),
    "utf8-surrogate": seed(UTF8, KOSME + b"\xed\xa0\x80edited"),
    "utf8-too-big": seed(UTF8, b"\xf4\x90\x80\x80"),
    "utf8-truncated": seed(UTF8, KOSME[:-1]),
    "utf8-lone-continuation": seed(UTF8, b"ab\x80cd"),
    # permessage-deflate (mode 3)
    "pmd-hello": seed(PMD, bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]), params=63),
    "pmd-final-block": seed(PMD, bytes([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00]), params=63),
    "pmd-stored": seed(PMD, bytes([0x00, 0x05, 0x00, 0xFA, 0xFF]) + b"Hello" + b"\x00", params=20),
    "pmd-bomb": seed(PMD, deflate_msg(bytes(200000)), params=10),
    "pmd-text": seed(PMD, deflate_msg(b"the quick brown fox jumps over the lazy dog " * 40), params=61),
    "pmd-plain-text": seed(PMD, b"not compressed at all, plain text " * 8, params=33),
    "pmd-empty": seed(PMD, b"\x00", params=1),
    "pmd-window-9": seed(PMD, deflate_msg(bytes(range(256)) * 8, wbits=9), params=0x17),
}

# fuzz_ws_handshake: byte 0 picks the client's offer, byte 1 is 0.


def request(ext_lines, key=b"dGhlIHNhbXBsZSBub25jZQ==", extra=b""):
    lines = [b"GET /chat HTTP/1.1", b"Host: server.example.com", b"Upgrade: websocket",
             b"Connection: Upgrade", b"Sec-WebSocket-Key: " + key,
             b"Origin: http://example.com", b"Sec-WebSocket-Version: 13"]
    lines += [b"Sec-WebSocket-Extensions: " + e for e in ext_lines]
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


def hs(sel, data):
    return bytes([sel, 0]) + data


HANDSHAKE_SEEDS = {
    "rfc-sample": hs(0, request([])),
    "chrome": hs(4, request([b"permessage-deflate; client_max_window_bits"])),
    "firefox": hs(0, request([b"permessage-deflate"])),
    "everything": hs(0xFF, request([b"permessage-deflate; server_no_context_takeover; "
                                    b"client_no_context_takeover; server_max_window_bits=10; "
                                    b"client_max_window_bits=9"])),
    "answer-like": hs(0x0D, request([b"permessage-deflate; server_max_window_bits=9; "
                                     b"client_max_window_bits=12"])),
    "quoted": hs(4, request([b'permessage-deflate; client_max_window_bits="1\\2"'])),
    "several-offers": hs(0, request([b"permessage-deflate; server_max_window_bits=7, "
                                     b"permessage-deflate; client_max_window_bits, x-foo"])),
    "two-lines": hs(2, request([b"x-webkit-deflate-frame", b"permessage-deflate; mode=x",
                                b"permessage-deflate"])),
    "duplicate": hs(0, request([b"permessage-deflate; client_max_window_bits; client_max_window_bits"])),
    "empty-elements": hs(0, request([b", ,permessage-deflate ,,", b""])),
    "malformed": hs(0, request([b"permessage-deflate; =1", b'permessage-deflate; x="a b"'])),
    "unterminated": hs(0, request([b'permessage-deflate; server_max_window_bits="1'])),
    "bad-key": hs(0, request([], key=b"dGhlIHNhbXBsZSBub25jZQ=")),
    "base64url-key": hs(0, request([], key=b"dGhlIHNhbXBsZSBub25jZ-==")),
    "long-key": hs(0, request([], key=b"A" * 200)),
    "two-keys": hs(0, request([], extra=b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n")),
}


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for s, data in seeds.items():
        with open(os.path.join(d, s), "wb") as f:
            f.write(data)


def main():
    write("fuzz_ws_frame", FRAME_SEEDS)
    write("fuzz_ws_handshake", HANDSHAKE_SEEDS)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed corpora corpus/fuzz_frame_<name>/ (committed; rerun after
changing the input layout described in fuzz_frame_common.c)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def config(max_frame=4096, rbuf=0, wbuf=0, rchunk=0, wchunk=0, rsteps=(), wsteps=()):
    """The input's leading bytes: options and mock scripts."""
    m = (max_frame - 1) % 4096
    out = bytes([m >> 8, m & 0xFF, rbuf, wbuf, rchunk, wchunk, len(rsteps)])
    out += bytes(rsteps) + bytes([len(wsteps)]) + bytes(wsteps)
    return out


def encode(name, payload):
    if name == "u64":
        return struct.pack("<Q", len(payload)) + payload
    if name == "u32":
        return struct.pack(">I", len(payload)) + payload
    if name == "u16":
        return struct.pack(">H", len(payload)) + payload
    return payload + b"\n"


def stream(name, payloads):
    return b"".join(encode(name, p) for p in payloads)


WOULDBLOCK, ERROR = 0xF0, 0xFF


def seeds(name):
    hello = stream(name, [b"hello", b"world"])
    big = b"".join(bytes([i % 251 if i % 251 != 10 else 11]) for i in range(1500))
    hdr = {"u64": 8, "u32": 4, "u16": 2, "line": 0}[name]
    yield "hello", config() + hello
    yield "one-byte-reads", config(rchunk=1, wchunk=1) + hello
    yield "empty-frames", config() + stream(name, [b"", b"", b"x", b""])
    yield "large-frame-small-buffers", config(rbuf=0, wbuf=0, rchunk=7, wchunk=13) + \
        stream(name, [big, b"tail"])
    yield "would-blocks", config(rsteps=[0, WOULDBLOCK, 2, WOULDBLOCK, 0x30],
                                 wsteps=[WOULDBLOCK, 1, WOULDBLOCK, 3]) + hello
    yield "read-error", config(rsteps=[3, ERROR]) + hello
    if hdr:
        yield "truncated-header", config() + encode(name, b"abc")[: hdr - 1]
        yield "too-large", config(max_frame=16) + encode(name, b"y" * 17)
    else:
        yield "too-long-line", config(max_frame=16) + b"z" * 40 + b"\n"
        yield "crlf", config() + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    yield "truncated-payload", config() + encode(name, b"abcdef")[:-2]
    yield "max-frame-1", config(max_frame=1) + stream(name, [b"a", b"", b"b"])


def main():
    for name in ("u64", "u32", "u16", "line"):
        d = os.path.join(HERE, "corpus", "fuzz_frame_" + name)
        os.makedirs(d, exist_ok=True)
        for seed, data in seeds(name):
            with open(os.path.join(d, seed), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()

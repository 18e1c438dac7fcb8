#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ (reproducible:
fixed masks, fixed token, no randomness). Each input's format is described at the top of its
target in fuzz_targets/. Run from anywhere: python3 tests/fuzz/make_corpus.py
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
JWT_SECRET = b"fuzz-secret-0123456789abcdef"  # common/mod.rs JWT_SECRET
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])
DEPTH = 5000  # nesting of the deep-JSON seeds (the known stack overflow)

# ---------------------------------------------------------------- HTTP

CHROME_UPGRADE = (
    b"GET /ws HTTP/1.1\r\n"
    b"Host: localhost:8080\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/131.0.0.0 Safari/537.36\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: http://localhost:3000\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"\r\n"
)

PYTHON_UPGRADE = (
    b"GET /ws?client=py&x=1 HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8080\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"User-Agent: Python/3.11 websockets/13.1\r\n"
    b"\r\n"
)

ECHO_UPGRADE = (
    b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\r\n"
)


def jwt(claims):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(JWT_SECRET, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


TOKEN = jwt({"sub": "alice", "exp": 4102444800, "channels": ["priv:*", "auth:*"],
             "publish": ["priv:*"]})
EXPIRED = jwt({"sub": "bob", "exp": 1000})

BEARER_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
)
TOKEN_UPGRADE = PYTHON_UPGRADE.replace(b"client=py", b"token=" + TOKEN.encode())
BAD_TOKEN_UPGRADE = PYTHON_UPGRADE.replace(b"client=py", b"token=abc")


def http_req(method, path, body=b"", headers=(), version=b"1.1"):
    h = b"%s %s HTTP/%s\r\nHost: localhost:8080\r\n" % (method, path, version)
    for k, v in headers:
        h += k + b": " + v + b"\r\n"
    if body or method == b"POST":
        h += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return h + b"\r\n" + body


BROADCAST_BODY = b'{"channel":"metrics","event_type":"cpu","data":{"pct":41.5}}'
BROADCAST = http_req(b"POST", b"/api/v1/broadcast", BROADCAST_BODY,
                     [(b"User-Agent", b"curl/8.5.0"), (b"Accept", b"*/*")])
HEALTHZ = http_req(b"GET", b"/healthz", headers=[(b"User-Agent", b"curl/8.5.0")])
PIPELINED = (HEALTHZ + http_req(b"GET", b"/api/v1/status") + BROADCAST
             + http_req(b"GET", b"/api/v1/channels/metrics") + http_req(b"GET", b"/metrics")
             + http_req(b"GET", b"/healthz", headers=[(b"Connection", b"close")]))

HTTP_SEEDS = {
    "upgrade_chrome": CHROME_UPGRADE,
    "upgrade_python_websockets": PYTHON_UPGRADE,
    "upgrade_echo": ECHO_UPGRADE,
    "upgrade_bearer": BEARER_UPGRADE,
    "upgrade_version_8": CHROME_UPGRADE.replace(b"Version: 13", b"Version: 8"),
    "upgrade_post": CHROME_UPGRADE.replace(b"GET /ws", b"POST /ws"),
    "upgrade_no_key": PYTHON_UPGRADE.replace(b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n", b""),
    "get_ws_plain": b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
    "healthz": HEALTHZ,
    "broadcast": BROADCAST,
    "pipelined": PIPELINED,
    "http10": b"GET /healthz HTTP/1.0\r\n\r\n",
    "http10_keepalive": b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n",
    "chunked": b"POST /api/v1/broadcast HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "bad_content_length": b"POST /api/v1/broadcast HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
    "partial_body": b"POST /api/v1/broadcast HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"chan",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "upgrade_then_frame": CHROME_UPGRADE + bytes([0x81, 0x85]) + MASK + bytes(
        b ^ MASK[i % 4] for i, b in enumerate(b"hello")),
}

# ---------------------------------------------------------------- WebSocket frames


def frame(first, payload, mask=MASK, length=None, masked=True):
    n = len(payload) if length is None else length
    out = bytearray([first])
    mbit = 0x80 if masked else 0
    if n <= 125:
        out.append(mbit | n)
    elif n <= 0xFFFF:
        out.append(mbit | 126)
        out += struct.pack(">H", n)
    else:
        out.append(mbit | 127)
        out += struct.pack(">Q", n)
    if masked:
        out += mask
        out += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return bytes(out)


def text(s, fin=True):
    return frame((0x80 if fin else 0) | 0x1, s if isinstance(s, bytes) else s.encode())


def binary(b, fin=True):
    return frame((0x80 if fin else 0) | 0x2, b)


def cont(b, fin=True):
    return frame((0x80 if fin else 0) | 0x0, b)


def ping(b=b""):
    return frame(0x89, b)


def pong(b=b""):
    return frame(0x8A, b)


def close(code=None, reason=b""):
    return frame(0x88, b"" if code is None else struct.pack(">H", code) + reason)


DEEP = b"[" * DEPTH + b"]" * DEPTH
DEEP_OBJ = b'{"type":"publish","channel":"a","data":' + b'{"a":' * DEPTH + b"1" + b"}" * DEPTH + b"}"
CRAFTED = bytes.fromhex("01 81 80 ff ff ff 32 00 ff ff ff ff ff ff ff ff ff 88 8a 8a 7b")

SUBSCRIBE = b'{"type":"subscribe","channels":["a"]}'
COMMANDS = {
    "subscribe": SUBSCRIBE,
    "subscribe_many": b'{"type":"subscribe","channels":["chat:42","pos:w1","priv:x","user:alice","auth:1"],"id":1}',
    "subscribe_since": b'{"type":"subscribe","channels":["chat:42"],"since":{"chat:42":{"seq":120,"epoch":"0dfd8268bfbe"}},"max_hz":15,"id":"s1"}',
    "subscribe_seed_form": b'{"type":"subscribe","data":{"events":["a","b"]}}',
    "subscribe_one": b'{"type":"subscribe","channel":"a"}',
    "unsubscribe": b'{"type":"unsubscribe","channels":["a"],"id":[1,{"x":null}]}',
    "publish": b'{"type":"publish","channel":"a","event_type":"cpu","data":{"pct":41.5}}',
    "publish_key_id": b'{"type":"publish","channel":"pos:w1","event_type":"move","key":"avatar-7","data":[1,2.5e3,-0,true,null,"\\u00e9\\ud83d\\ude00"],"id":42}',
    "publish_numbers": b'{"type":"publish","channel":"a","data":[1e400,-1e400,123456789012345678901234567890,0.1,1E-7]}',
    "publish_rate": b'{"type":"publish","channel":"rate:x","data":1}',
    "publish_readonly": b'{"type":"publish","channel":"ro:x","data":"s"}',
    "ping": b'{"type":"ping"}',
    "ping_id": b'{"type":"ping","ping_id":{"t":1796133509850},"id":"p"}',
    "get_subscriptions": b'{"type":"get_subscriptions","id":null}',
    "auth": ('{"type":"auth","token":"%s"}' % TOKEN).encode(),
    "auth_expired": ('{"type":"auth","token":"%s"}' % EXPIRED).encode(),
    "auth_garbage": b'{"type":"auth","token":"a.b.c"}',
    "unknown_type": b'{"type":"dance","id":7}',
    "duplicate_field": b'{"type":"ping","type":"subscribe","channels":["a"]}',
    "not_object": b'["type","ping"]',
    "escapes": b'{"type":"publish","channel":"a","event_type":"\\"quoted\\"\\n","data":"\\u0000\\/"}',
    "whitespace": b' \t\r\n{ "type" : "ping" }\n',
    "nested_5000_array": DEEP,
    "nested_5000_publish": DEEP_OBJ,
}

WS_SEEDS = {
    "text": text('{"type":"ping"}'),
    "binary": binary(bytes(range(256))),
    "ping_pong": ping(b"hi") + pong(b"") + ping(),
    "close": close(1000, b"bye"),
    "close_empty": close(),
    "close_bad_code": close(1005),
    "fragmented": text(b'{"type":', fin=False) + ping(b"x") + cont(b'"pi', fin=False) + cont(b'ng"}'),
    "fragmented_binary": binary(b"\x00\x01", fin=False) + cont(b"\x02") ,
    "len16": binary(b"a" * 300),
    "len64": frame(0x82, b"b" * 65536),
    "too_big": frame(0x82, b"", length=65537)[:14] + b"c" * 100,
    "utf8_split": text("héllo €".encode()[:3], fin=False) + cont("héllo €".encode()[3:]),
    "utf8_bad": text(b"\xc3\x28"),
    "unmasked": frame(0x81, b"hi", masked=False),
    "reserved_opcode": frame(0x83, b""),
    "rsv_bit": frame(0xC1, b"x"),
    "ping_fragmented": frame(0x09, b""),
    "continuation_alone": cont(b"x"),
    "crafted_wrap": CRAFTED,
    "crafted_wrap_tail": CRAFTED + b"A" * 4000,
    "deep_text": text(DEEP),
}

# ---------------------------------------------------------------- conn operations
# common: u8 flags, then ops (u8 tag, little-endian args); see fuzz_targets/conn.rs.


def op_read(b):
    return bytes([0]) + struct.pack("<H", len(b)) + b


def op_reads(b, chunk):
    return bytes([1]) + struct.pack("<HH", len(b), chunk) + b


def op_ms(ms):
    return bytes([2]) + struct.pack("<H", ms)


def op_secs(s):
    return bytes([3, s])


SWEEP = bytes([4])


def op_send(n=0xFFFF):
    return bytes([5]) + struct.pack("<H", n)


def op_tick(n):
    return bytes([6]) + struct.pack("<H", n)


JOIN = bytes([7])
SEND_START = bytes([10])
JOIN_REFUSED = bytes([12])


def op_send_done(n=0xFFFF):
    return bytes([11]) + struct.pack("<H", n)


PEER_GONE = bytes([8])
SHUTDOWN = bytes([9])


def conn(flags, *ops):
    return bytes([flags]) + b"".join(ops)


CONN_SEEDS = {
    "chrome_subscribe_publish": conn(
        0, op_read(CHROME_UPGRADE), op_send(), op_read(text(SUBSCRIBE)), JOIN, op_send(),
        op_read(text(COMMANDS["publish"]) + text(COMMANDS["ping_id"])), op_tick(20), op_send(),
        op_read(close(1000)), op_send()),
    "python_split_reads": conn(
        0, op_reads(PYTHON_UPGRADE + text(COMMANDS["subscribe_many"]), 7), op_send(100),
        op_send(), JOIN, op_tick(5), op_send(), op_read(text(COMMANDS["get_subscriptions"]))),
    "held_replies": conn(
        0, op_read(PYTHON_UPGRADE), op_read(text(SUBSCRIBE) + text(COMMANDS["ping"])
                                           + text(COMMANDS["subscribe_since"]) + text(COMMANDS["ping"])),
        op_send(), JOIN, op_send(), JOIN, op_tick(100), op_send()),
    "auth_required": conn(
        2, op_read(PYTHON_UPGRADE), op_read(text(COMMANDS["publish"])),
        op_read(text(COMMANDS["auth"])), op_read(text(b'{"type":"subscribe","channels":["priv:a"]}')),
        JOIN, op_tick(3), op_send()),
    "auth_timeout": conn(2, op_read(PYTHON_UPGRADE), op_secs(6), SWEEP, op_send(), op_secs(3), SWEEP),
    "bearer_token": conn(2, op_read(BEARER_UPGRADE), op_send(), op_read(text(b'{"type":"subscribe","channels":["auth:1"]}')), JOIN, op_send()),
    "query_token": conn(0, op_read(TOKEN_UPGRADE), op_send()),
    "bad_token": conn(0, op_read(BAD_TOKEN_UPGRADE), op_send(), op_secs(3), SWEEP),
    "ping_timeout": conn(0, op_read(CHROME_UPGRADE), op_secs(31), SWEEP, op_send(), op_secs(11), SWEEP,
                         op_send(), op_secs(3), SWEEP),
    "pong_answers": conn(0, op_read(CHROME_UPGRADE), op_secs(31), SWEEP, op_send(), op_read(pong()),
                         op_secs(11), SWEEP, op_read(ping(b"p")), op_send()),
    "handshake_timeout": conn(0, op_read(CHROME_UPGRADE[:50]), op_secs(11), SWEEP),
    "http_pipelined": conn(0, op_read(PIPELINED), op_send(), op_ms(10), SWEEP),
    "http_keepalive_idle": conn(0, op_read(HEALTHZ), op_send(), op_secs(11), SWEEP),
    "http_close_linger": conn(0, op_read(http_req(b"GET", b"/healthz", headers=[(b"Connection", b"close")])),
                              op_send(), op_read(b"ignored"), op_secs(3), SWEEP),
    "server_full": conn(1, op_read(CHROME_UPGRADE), op_send()),
    "echo": conn(0, op_read(ECHO_UPGRADE + text("héllo") + binary(b"\x00\xff") + text(b"a", fin=False)
                            + cont(b"b")), op_send(), op_read(close(1001, b"gone")), op_send()),
    "slow_consumer": conn(4, op_read(CHROME_UPGRADE), op_send(), op_read(text(SUBSCRIBE)), JOIN,
                          op_send(), op_tick(3000), op_tick(3000), op_send()),
    "uring_in_flight": conn(0, op_read(CHROME_UPGRADE), SEND_START, op_read(text(SUBSCRIBE)),
                            op_send_done(100), JOIN, SEND_START, op_tick(50), op_send_done(),
                            SEND_START, op_send_done()),
    "fragmented_command": conn(0, op_read(CHROME_UPGRADE), op_reads(
        text(b'{"type":"subscribe",', fin=False) + ping(b"z") + cont(b'"channels":["a"]}'), 3),
        op_send(), JOIN, op_send()),
    "protocol_error": conn(0, op_read(CHROME_UPGRADE), op_read(frame(0x81, b"x", masked=False)),
                           op_send(), op_secs(3), SWEEP),
    "shutdown": conn(0, op_read(CHROME_UPGRADE), op_read(text(SUBSCRIBE)), SHUTDOWN, op_send(),
                     op_read(close(1001)), op_send()),
    "join_refused": conn(0, op_read(CHROME_UPGRADE), op_read(text(COMMANDS["subscribe_many"]) + text(COMMANDS["ping"])),
                         JOIN_REFUSED, op_send(), op_read(text(SUBSCRIBE)), JOIN, op_tick(10), op_send()),
    "peer_gone": conn(0, op_read(CHROME_UPGRADE), op_read(text(SUBSCRIBE)), JOIN, PEER_GONE),
    "crafted_wrap": conn(0, op_read(CHROME_UPGRADE), op_send(), op_read(CRAFTED),
                         op_read(b"A" * 20000), op_read(b"A" * 20000), op_send()),
    "nested_json_5000": conn(0, op_read(CHROME_UPGRADE), op_send(), op_read(text(DEEP)), op_send()),
    "nested_json_5000_split": conn(0, op_read(CHROME_UPGRADE + text(DEEP[:3000], fin=False)),
                                   op_reads(cont(DEEP[3000:]), 1500), op_send()),
}


def api(mode, rest):
    return bytes([mode]) + rest


API_SEEDS = {
    "broadcast": api(0, BROADCAST_BODY),
    "broadcast_channels": api(0, b'{"channels":["a","b","a"],"event_type":"x","key":"k1","data":[1,{"b":null}]}'),
    "broadcast_exact_data": api(0, b'{"channel":"a","data":{"big":123456789012345678901234567890,"f":1.10,"s":"\\u00e9"}}'),
    "broadcast_both": api(0, b'{"channel":"a","channels":["b"],"data":1}'),
    "broadcast_no_data": api(0, b'{"channel":"a"}'),
    "broadcast_bad_channel": api(0, b'{"channel":"a b","data":1}'),
    "broadcast_bad_key": api(0, b'{"channel":"a","key":"","data":1}'),
    "broadcast_not_object": api(0, b'[1,2,3]'),
    "broadcast_deep": api(0, b'{"channel":"a","data":' + DEEP + b"}"),
    "broadcast_legacy_path": api(1, BROADCAST_BODY),
    "channel_plain": api(2, b"metrics"),
    "channel_percent": api(2, b"chat%3A42%2Fx"),
    "channel_bad_percent": api(2, b"a%zz%"),
    "raw_pipelined": api(3, PIPELINED),
    "raw_broadcast": api(3, BROADCAST),
    "percent_decode": api(4, b"%e2%82%ac%41%"),
}


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    write("http_request", HTTP_SEEDS)
    # ws_frames: byte 0 is the chunking (0 = one read, 0x01..0x7f small reads, 0x80.. big ones).
    ws = {}
    for name, data in WS_SEEDS.items():
        ws[name] = b"\x00" + data
        ws[name + "_split"] = b"\x2a" + data
    ws["crafted_wrap_bigreads"] = b"\x81" + CRAFTED + b"A" * 4000
    write("ws_frames", ws)
    write("json_command", COMMANDS)
    write("http_api_body", API_SEEDS)
    write("conn", CONN_SEEDS)
    total = sum(len(files) for _, _, files in os.walk(CORPUS))
    print(f"wrote {total} seed inputs under {os.path.relpath(CORPUS)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Hostile clients against one framecast server, while probe subscribers (one per shard, found
through the built-in `connections` channel) receive a publish every 100 ms and check that the
server keeps serving everyone else.

Attacks (--attacks, comma-separated; default all, in this order):
  slowloris          hundreds of connections trickling header bytes (and some a POST body), 1 B/s
  big_headers        1 MiB header value / request target / endless line, many headers
  nested_json        deeply nested JSON text messages ([[[... 1000/4000/100k deep, {"a": 40k deep,
                     unbalanced, inside a publish, inside an HTTP broadcast)
  ping_flood         --ping-rate (5000) WebSocket pings/s from one connection that reads its pongs
  ping_flood_max     pings as fast as loopback takes them (millions/s), pongs read
  ping_flood_noread  the same from a connection that never reads
  slow_consumers     never-reading subscribers on a busy channel: must be closed 1008, memory back
  pipelined          10k pipelined HTTP requests on one connection (read live / read late / POSTs)
  content_length     declared > sent, declared < sent, duplicate CL, +5, -1, overflow, hex, CL+TE
  bad_ws_key         invalid Sec-WebSocket-Key values
  http10_upgrade     HTTP/1.0 upgrade (and missing Host, version 8, POST upgrade)

For each: server up after it (process alive and /healthz 200), probe latency and losses during
it, RSS before / max during / after, fds before / after, what the attacker received (status
line / close code / error message), server log lines written during it, and a verdict
(PASS / WARN / FAIL with reasons). A crashed server is reported as a FAIL for that attack and a
new one is started on the same port for the next attack.

The server is started with max_message_bytes = 256KiB (so the 100k-deep message, ~200 KB, is
parsed instead of refused with 1009) and otherwise the defaults (handshake_timeout 10s,
max_queued_bytes 4MiB). Loopback only; each attack is bounded (--attack-budget, 20 s).
Run it under `flock /tmp/framecast-heavy.lock`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import re
import socket
import struct
import sys
import time

import common

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
except ImportError:  # pragma: no cover
    sys.exit("websockets is not installed: run benches/reliability/setup.sh and use .venv/bin/python")

UPGRADE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
SRC = common.source_ips(8)


# ------------------------------------------------------------------------------ raw helpers

async def raw_conn(port, src=None, rcvbuf=None, limit=1 << 20):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if src:
        s.bind((common.check_loopback(src), 0))
    try:
        await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port))
    except BaseException:
        s.close()
        raise
    return await asyncio.open_connection(sock=s, limit=limit)


def upgrade_request(path="/ws", version="HTTP/1.1", key=UPGRADE_KEY, extra="", host=True, method="GET",
                    ws_version="13"):
    lines = [f"{method} {path} {version}"]
    if host:
        lines.append("Host: 127.0.0.1")
    lines += ["Upgrade: websocket", "Connection: Upgrade"]
    if ws_version is not None:
        lines.append(f"Sec-WebSocket-Version: {ws_version}")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def mask_bytes(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return data
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def ws_frame(opcode: int, payload: bytes, fin=True, key=b"\x37\xfa\x21\x3d") -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = bytes([b0, 0x80 | n])
    elif n < 65536:
        hdr = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    return hdr + key + mask_bytes(payload, key)


async def read_frame(reader):
    h = await reader.readexactly(2)
    op, n = h[0] & 0x0F, h[1] & 0x7F
    if h[1] & 0x80:
        raise ValueError("server sent a masked frame")
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return op, await reader.readexactly(n)


def describe_close(payload: bytes) -> str:
    if len(payload) >= 2:
        code = struct.unpack("!H", payload[:2])[0]
        return f"close {code} {payload[2:].decode(errors='replace')!r}"
    return "close (no code)"


async def ws_open(port, src=None, rcvbuf=None, limit=1 << 22):
    """Raw WebSocket client: returns (reader, writer, connected-message) after the upgrade."""
    reader, writer = await raw_conn(port, src, rcvbuf, limit)
    writer.write(upgrade_request())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise RuntimeError(f"upgrade refused: {head.splitlines()[0]!r}")
    op, payload = await asyncio.wait_for(read_frame(reader), 5)
    return reader, writer, payload


async def read_until_close(reader, timeout, max_frames=10 ** 7):
    """Reads frames until a close frame / EOF / timeout; returns a short description."""
    texts = []
    frames = 0
    deadline = time.monotonic() + timeout
    try:
        while frames < max_frames:
            op, payload = await asyncio.wait_for(read_frame(reader), max(0.01, deadline - time.monotonic()))
            frames += 1
            if op == 8:
                return dict(result=describe_close(payload), frames=frames, texts=texts[-3:])
            if op == 1 and len(texts) < 50:
                texts.append(payload[:300].decode(errors="replace"))
    except asyncio.TimeoutError:
        return dict(result="no close within %.1fs (connection open)" % timeout, frames=frames, texts=texts[-3:])
    except asyncio.IncompleteReadError as e:
        return dict(result="EOF without close frame" + (f" (mid-frame, {len(e.partial)} B)" if e.partial else ""),
                    frames=frames, texts=texts[-3:])
    except (ConnectionResetError, BrokenPipeError) as e:
        return dict(result=f"{type(e).__name__}", frames=frames, texts=texts[-3:])
    except ValueError as e:
        return dict(result=f"protocol violation by server: {e}", frames=frames, texts=texts[-3:])
    return dict(result=f"still open after {frames} frames", frames=frames, texts=texts[-3:])


async def read_http(reader, timeout, max_responses=1, on_response=None):
    """Reads HTTP responses (by Content-Length) until max_responses, EOF or timeout."""
    out = dict(responses=[], statuses=collections.Counter(), end="timeout")
    deadline = time.monotonic() + timeout
    try:
        while len(out["responses"]) < max_responses:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), max(0.01, deadline - time.monotonic()))
            status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            body = await asyncio.wait_for(reader.readexactly(int(m.group(1))), max(0.01, deadline - time.monotonic())) \
                if m else b""
            code = status_line.split(" ")[1] if " " in status_line else status_line
            out["statuses"][code] += 1
            if len(out["responses"]) < 5:
                out["responses"].append(dict(status=status_line, body=body[:200].decode(errors="replace"),
                                             headers=[h.decode(errors="replace") for h in head.split(b"\r\n")[1:]
                                                      if h.lower().startswith((b"sec-websocket", b"connection",
                                                                               b"allow"))]))
            else:
                out["responses"].append(None)
            if on_response:
                on_response()
        out["end"] = "got all"
    except asyncio.TimeoutError:
        out["end"] = "timeout (connection still open)"
    except asyncio.IncompleteReadError as e:
        out["end"] = "EOF" + (f" after {len(e.partial)} unparsed bytes" if e.partial else "")
    except asyncio.LimitOverrunError:
        out["end"] = "response head too large"
    except (ConnectionResetError, BrokenPipeError):
        out["end"] = "connection reset"
    out["count"] = len(out["responses"])
    out["responses"] = [r for r in out["responses"] if r]
    out["statuses"] = dict(out["statuses"])
    return out


async def send_all(writer, data: bytes, chunk=65536):
    """Writes data in chunks; returns (bytes written, error or None)."""
    sent = 0
    try:
        for i in range(0, len(data), chunk):
            writer.write(data[i:i + chunk])
            await asyncio.wait_for(writer.drain(), 5)
            sent += len(data[i:i + chunk])
    except (ConnectionResetError, BrokenPipeError) as e:
        return sent, type(e).__name__
    except asyncio.TimeoutError:
        return sent, "write stalled 5s (server not reading)"
    return sent, None


async def http_exchange(port, data: bytes, timeout=5.0, max_responses=1, src=None):
    t0 = time.monotonic()
    try:
        reader, writer = await raw_conn(port, src)
    except OSError as e:
        return dict(error=f"connect: {e}")
    sent, err = await send_all(writer, data)
    res = await read_http(reader, timeout, max_responses)
    res.update(sent_bytes=sent, send_error=err, seconds=round(time.monotonic() - t0, 2))
    writer.close()
    return res


def first_status(res) -> int | None:
    try:
        return int(res["responses"][0]["status"].split(" ")[1])
    except (KeyError, IndexError, ValueError, TypeError):
        return None


# ------------------------------------------------------------------------------ harness

class Probe:
    def __init__(self, h, idx):
        self.h, self.idx = h, idx
        self.recv = {}
        self.client_id = None
        self.shard = None
        self.connected = asyncio.Event()
        self.disconnects = []

    async def run(self):
        while not self.h.stopping:
            try:
                async with connect(self.h.uri, local_addr=(SRC[self.idx % len(SRC)], 0), compression=None,
                                   proxy=None, ping_interval=None, open_timeout=5, close_timeout=2) as ws:
                    hello = json.loads(await ws.recv())
                    self.client_id = hello.get("client_id")
                    await ws.send(json.dumps({"type": "subscribe", "channels": ["probe:lat"]}))
                    self.connected.set()
                    async for raw in ws:
                        msg = json.loads(raw)
                        if msg.get("type") == "event" and msg.get("channel") == "probe:lat":
                            self.recv[msg["data"]["n"]] = time.monotonic()
            except (OSError, ConnectionClosed, asyncio.TimeoutError, Exception) as e:  # noqa: BLE001
                if not self.h.stopping:
                    self.disconnects.append((round(time.monotonic() - self.h.t_start, 2), f"{type(e).__name__}: {e}"[:120]))
            self.connected.clear()
            await asyncio.sleep(0.2)


class Harness:
    def __init__(self, a):
        self.a = a
        self.outd = common.out_dir("hostile")
        self.port = common.free_port()
        self.uri = f"ws://127.0.0.1:{self.port}/ws"
        self.toml = "max_message_bytes = \"256KiB\"\n"
        self.server = None
        self.server_gen = 0
        self.stopping = False
        self.sent = {}
        self.n = 0
        self.samples = []  # (t, rss, fds)
        self.probes = []
        self.tasks = []
        self.t_start = time.monotonic()
        self.restarts = []

    def start_server(self):
        self.server_gen += 1
        self.server = common.Server(self.a.server_bin, self.port, self.outd / f"server-{self.server_gen}.log",
                                    args=["--shards", str(self.a.shards)] if self.a.shards else [],
                                    config_toml=self.toml, config_path=self.outd / "framecast.toml")
        self.server.start()

    async def publisher(self):
        while not self.stopping:
            try:
                async with connect(self.uri, local_addr=(SRC[7], 0), compression=None, proxy=None,
                                   ping_interval=None, open_timeout=5, close_timeout=2) as ws:
                    await ws.recv()
                    drain = asyncio.ensure_future(self._discard(ws))
                    nxt = time.monotonic()
                    while not self.stopping:
                        n = self.n
                        self.n += 1
                        self.sent[n] = time.monotonic()
                        await asyncio.wait_for(ws.send(json.dumps({"type": "publish", "channel": "probe:lat",
                                                                   "event_type": "probe", "data": {"n": n}})), 5)
                        nxt += 0.1
                        await asyncio.sleep(max(0.0, nxt - time.monotonic()))
                    drain.cancel()
            except (OSError, ConnectionClosed, asyncio.TimeoutError, Exception):  # noqa: BLE001
                await asyncio.sleep(0.2)

    @staticmethod
    async def _discard(ws):
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass

    async def sampler(self):
        while not self.stopping:
            srv = self.server
            self.samples.append((time.monotonic(), srv.rss_kb(), srv.fds()))
            await asyncio.sleep(0.1)

    async def start_probes(self):
        """Opens probes until every shard has one (max 8), using the `connections` channel."""
        shards_total = None
        st, body = await asyncio.to_thread(common.http_get, self.port, "/api/v1/status")
        try:
            js = json.loads(body)
            per = js.get("connections", {}).get("per_shard") if isinstance(js.get("connections"), dict) else None
            shards_total = len(per) if per else None
        except ValueError:
            pass
        want = shards_total or self.a.shards or os.cpu_count() or 2
        async with connect(self.uri, compression=None, proxy=None, ping_interval=None) as watcher:
            await watcher.recv()
            await watcher.send(json.dumps({"type": "subscribe", "channels": ["connections"]}))
            shard_of = {}
            covered = set()
            idx = len(self.probes)
            while len(covered) < want and idx < 8:
                p = Probe(self, idx)
                self.probes.append(p)
                self.tasks.append(asyncio.ensure_future(p.run()))
                await asyncio.wait_for(p.connected.wait(), 10)
                p.shard = await common.shard_of_client(watcher, p.client_id, shard_of)
                covered.add(p.shard)
                idx += 1
        return want

    async def start(self):
        self.start_server()
        self.tasks += [asyncio.ensure_future(self.publisher()), asyncio.ensure_future(self.sampler())]
        shards = await self.start_probes()
        await asyncio.sleep(1.0)
        self.first_rss = self.rss_now()
        return shards

    async def restart(self, why):
        self.restarts.append(dict(at_s=round(time.monotonic() - self.t_start, 1), why=why))
        if self.server.alive():
            self.server.stop(5)
        self.start_server()
        deadline = time.monotonic() + 10
        while not all(p.connected.is_set() for p in self.probes) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)

    async def alive(self) -> bool:
        if not self.server.alive():
            return False
        return await asyncio.to_thread(common.healthz, self.port, 2.0) == 200

    def probe_stats(self, t0, t1):
        ns = [n for n, t in self.sent.items() if t0 <= t <= t1]
        per = []
        all_lat = []
        missed_total = 0
        for p in self.probes:
            lat = [(p.recv[n] - self.sent[n]) * 1000 for n in ns if n in p.recv]
            missed = len(ns) - len(lat)
            missed_total += missed
            all_lat += lat
            per.append(dict(probe=p.idx, shard=p.shard, received=len(lat), missed=missed,
                            p50_ms=None if not lat else round(common.pct(lat, 50), 1),
                            p99_ms=None if not lat else round(common.pct(lat, 99), 1),
                            max_ms=None if not lat else round(max(lat), 1),
                            disconnects=sum(1 for d in p.disconnects if t0 - self.t_start <= d[0] <= t1 - self.t_start + 2)))
        expected = int((t1 - t0) / 0.1)
        return dict(published=len(ns), expected_publishes=expected, missed=missed_total,
                    p50_ms=None if not all_lat else round(common.pct(all_lat, 50), 1),
                    p99_ms=None if not all_lat else round(common.pct(all_lat, 99), 1),
                    max_ms=None if not all_lat else round(max(all_lat), 1), per_probe=per)

    def rss_window(self, t0, t1):
        vals = [r for t, r, _ in self.samples if t0 <= t <= t1 and r]
        return max(vals) if vals else None

    def rss_now(self):
        return self.server.rss_kb()

    async def stop(self):
        self.stopping = True
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return self.server.stop(20)


# ------------------------------------------------------------------------------ attacks
# Each returns dict(attacker=..., fail=[...], warn=[...]); the harness adds the common checks.

async def attack_slowloris(h, a):
    n_hdr, n_body = a.slowloris_conns, max(10, a.slowloris_conns // 6)
    hs_timeout = 10.0
    t_attack = min(a.attack_budget - 2, hs_timeout + 5)
    trickle = b"X-Slowloris-Header-With-A-Long-Name: " + b"v" * 200 + b"\r\n"
    results = []

    async def one(i, body_mode):
        t0 = time.monotonic()
        try:
            reader, writer = await raw_conn(h.port, SRC[i % 6])
        except OSError as e:
            results.append(dict(kind="connect_error", err=str(e)))
            return
        if body_mode:
            writer.write(b"POST /api/v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{")
        else:
            writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        rd = asyncio.ensure_future(reader.read(4096))
        k = 0
        got, end = b"", "open at end of attack"
        while time.monotonic() - t0 < t_attack:
            done, _ = await asyncio.wait({rd}, timeout=1.0)
            if rd in done:
                try:
                    got = rd.result()
                    end = "EOF" if not got else "data"
                except (ConnectionResetError, OSError) as e:
                    end = type(e).__name__
                break
            try:
                writer.write(trickle[k % len(trickle):k % len(trickle) + 1] if not body_mode else b"a")
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError) as e:
                end = f"write: {type(e).__name__}"
                break
            k += 1
        else:
            rd.cancel()
        results.append(dict(kind="body" if body_mode else "header", closed_after_s=round(time.monotonic() - t0, 2)
                            if end != "open at end of attack" else None, end=end,
                            got=got[:80].decode(errors="replace"), bytes_trickled=k))
        writer.close()

    await asyncio.gather(*[one(i, False) for i in range(n_hdr)], *[one(i, True) for i in range(n_body)])
    by_kind = {}
    fail, warn = [], []
    for kind in ("header", "body"):
        rs = [r for r in results if r.get("kind") == kind]
        closed = [r["closed_after_s"] for r in rs if r["closed_after_s"] is not None]
        ends = collections.Counter(r["end"] + (f" [{r['got'][:40]}]" if r["got"] else "") for r in rs)
        by_kind[kind] = dict(conns=len(rs), closed_by_server=len(closed), still_open=len(rs) - len(closed),
                             closed_after_s=common.summary_stats(closed, digits=2), ends=dict(ends))
        if len(closed) < len(rs):
            fail.append(f"{len(rs) - len(closed)}/{len(rs)} {kind}-trickling connections still open after {t_attack:.0f}s "
                        f"(handshake_timeout {hs_timeout:.0f}s)")
        elif closed and max(closed) > hs_timeout + 3:
            warn.append(f"{kind} tricklers closed late (max {max(closed)}s)")
    errs = [r for r in results if r.get("kind") == "connect_error"]
    if errs:
        warn.append(f"{len(errs)} attacker connects failed: {errs[0]['err']}")
    return dict(attacker=by_kind, fail=fail, warn=warn)


async def attack_big_headers(h, a):
    mib = 1 << 20
    cases = {
        "upgrade_1MiB_header_value": upgrade_request(extra="X-Big: " + "a" * mib + "\r\n"),
        "healthz_1MiB_header_value": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * mib + b"\r\n\r\n",
        "1MiB_request_target": b"GET /" + b"a" * mib + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "1MiB_line_no_newline": b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: " + b"a" * mib,
        "40_small_headers_upgrade": upgrade_request(extra="".join(f"X-H{i}: v\r\n" for i in range(40))),
        "20000_small_headers": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(20000)) + b"\r\n",
    }
    out, fail, warn = {}, [], []
    for name, data in cases.items():
        res = await http_exchange(h.port, data, timeout=3)
        out[name] = dict(status=res["responses"][0]["status"] if res.get("responses") else None,
                         body=res["responses"][0]["body"] if res.get("responses") else None,
                         end=res.get("end"), sent_bytes=res.get("sent_bytes"), send_error=res.get("send_error"),
                         seconds=res.get("seconds"))
        st = first_status(res)
        if name == "40_small_headers_upgrade":
            if st != 101:
                warn.append(f"{name}: a legitimate upgrade with 40 headers gets {out[name]['status'] or out[name]['end']}"
                            " (server caps headers at 32)")
            continue
        if st is None:
            warn.append(f"{name}: no HTTP status, just {res.get('end')} (unclear error for the client)")
        elif st < 400:
            fail.append(f"{name}: accepted with {st}")
        if res.get("end", "").startswith("timeout"):
            fail.append(f"{name}: connection left open after the error")
    return dict(attacker=out, fail=fail, warn=warn)


async def attack_nested_json(h, a):
    def arr(d):
        return "[" * d + "]" * d

    cases = [
        ("ws_array_depth_1000", "ws", arr(1000)),
        ("ws_array_depth_4000", "ws", arr(4000)),
        ("ws_array_depth_100000", "ws", arr(100000)),
        ("ws_object_depth_40000", "ws", '{"a":' * 40000 + "1" + "}" * 40000),
        ("ws_unbalanced_100000_open", "ws", "[" * 100000),
        ("ws_publish_data_depth_4000", "ws", '{"type":"publish","channel":"nest:1","data":' + arr(4000) + "}"),
        ("ws_subscribe_channels_depth_4000", "ws", '{"type":"subscribe","channels":' + arr(4000) + "}"),
        ("http_broadcast_data_depth_100000", "http", '{"channel":"nest:1","data":' + arr(100000) + "}"),
    ]
    out, fail, warn = {}, [], []
    for name, kind, text in cases:
        rec = dict(bytes=len(text))
        if kind == "ws":
            try:
                reader, writer, _ = await ws_open(h.port)
                writer.write(ws_frame(1, text.encode()))
                await writer.drain()
                # a reply (error) or a close; then ping to see the connection still works
                reply = None
                try:
                    op, payload = await asyncio.wait_for(read_frame(reader), 3)
                    reply = describe_close(payload) if op == 8 else payload[:200].decode(errors="replace")
                except asyncio.TimeoutError:
                    reply = "no answer within 3s"
                except asyncio.IncompleteReadError:
                    reply = "EOF without close frame"
                except ConnectionResetError:
                    reply = "connection reset"
                rec["attacker_received"] = reply
                writer.close()
            except (OSError, RuntimeError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                rec["attacker_received"] = f"could not connect/upgrade: {type(e).__name__}: {e}"
        else:
            body = text.encode()
            res = await http_exchange(h.port, b"POST /api/v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                      b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body, timeout=3)
            rec["attacker_received"] = (res["responses"][0]["status"] + " " + res["responses"][0]["body"]) \
                if res.get("responses") else res.get("end") or res.get("error")
        await asyncio.sleep(0.3)
        up = await h.alive()
        rec["server_up_after"] = up
        if not up:
            desc = h.server.exit_description() or "not answering /healthz"
            rec["server_exit"] = desc
            rec["log_tail"] = h.server.log_tail(3)
            fail.append(f"{name}: SERVER DOWN ({desc})")
            await h.restart(f"nested_json/{name}: {desc}")
        out[name] = rec
    return dict(attacker=out, fail=fail, warn=warn)


async def attack_ping_flood(h, a, read_pongs=True, rate=None):
    """rate=None: as fast as the socket takes them; else pings/s, paced every 10 ms."""
    secs = min(8.0, a.attack_budget - 4)
    payload = b"p" * (16 if read_pongs else 125)
    per_batch = 500 if rate is None else max(1, int(rate / 100))
    batch = b"".join(ws_frame(9, payload) for _ in range(per_batch))
    reader, writer, _ = await ws_open(h.port, rcvbuf=None if read_pongs else 4096)
    counts = collections.Counter()
    end = {"result": None}

    async def rd():
        try:
            while True:
                op, pl = await read_frame(reader)
                counts[{10: "pong", 8: "close", 1: "text", 9: "ping"}.get(op, f"op{op}")] += 1
                if op == 8:
                    end["result"] = describe_close(pl)
                    return
        except asyncio.IncompleteReadError:
            end["result"] = end["result"] or "EOF"
        except (ConnectionResetError, OSError) as e:
            end["result"] = end["result"] or type(e).__name__

    reader_task = asyncio.ensure_future(rd()) if read_pongs else None
    sent, stall, err = 0, 0.0, None
    t0 = time.monotonic()
    nxt = t0
    while time.monotonic() - t0 < secs:
        try:
            writer.write(batch)
            t_d = time.monotonic()
            await asyncio.wait_for(writer.drain(), max(0.05, secs - (time.monotonic() - t0)))
            stall += time.monotonic() - t_d
            sent += per_batch
            if rate is not None:
                nxt += 0.01
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
        except asyncio.TimeoutError:
            err = "write stalled (server stopped reading: TCP backpressure)"
            break
        except (ConnectionResetError, BrokenPipeError) as e:
            err = type(e).__name__
            break
        if reader_task and reader_task.done():
            break
        await asyncio.sleep(0)
    dur = time.monotonic() - t0
    rss_at_end = h.rss_now()
    if not read_pongs:
        # now read what the server queued for us and how it ended
        res = await read_until_close(reader, 4)
        end["result"] = res["result"]
        counts["frames_after_reading"] = res["frames"]
    else:
        await asyncio.sleep(1.0)
        if not reader_task.done():
            reader_task.cancel()
            end["result"] = end["result"] or "connection still open"
    writer.close()
    att = dict(target_rate=rate or "max", pings_sent=sent, seconds=round(dur, 2), pings_per_s=round(sent / dur) if dur else None,
               write_error=err, frames_received=dict(counts), end=end["result"], rss_kb_at_end_of_flood=rss_at_end)
    fail, warn = [], []
    if read_pongs and rate is not None:
        # a paced flood that reads its pongs is a client keeping up: every ping answered, no close
        if counts["pong"] < sent:
            fail.append(f"{counts['pong']} pongs for {sent} pings at {rate}/s (end: {end['result']})")
        if (end["result"] or "").startswith("close"):
            warn.append(f"closed while reading every pong at {rate}/s: {end['result']}")
    elif read_pongs and counts["pong"] < sent * 0.99 and not (end["result"] or "").startswith("close"):
        warn.append(f"only {counts['pong']} pongs for {sent} pings without a close")
    if not read_pongs and not (end["result"] or "").startswith("close"):
        warn.append(f"never-reading ping flooder dropped without a visible close frame: {end['result']}")
    return dict(attacker=att, fail=fail, warn=warn)


async def attack_slow_consumers(h, a):
    M = a.slow_consumers
    base_m = await asyncio.to_thread(common.metrics, h.port)
    base_closes = common.metric_sum(base_m, "framecast_slow_consumer_closes_total")
    conns = []
    for i in range(M):
        reader, writer, _ = await ws_open(h.port, src=SRC[i % 6], rcvbuf=4096)
        writer.write(ws_frame(1, json.dumps({"type": "subscribe", "channels": ["busy:1"]}).encode()))
        await writer.drain()
        conns.append((reader, writer))
    # a healthy subscriber on the same busy channel must get every event, in order
    healthy = dict(events=0, gaps=0, last=None, closed=None)

    async def healthy_sub():
        try:
            async with connect(h.uri, compression=None, proxy=None, ping_interval=None, max_size=2 ** 24,
                               max_queue=None) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "subscribe", "channels": ["busy:1"]}))
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("type") == "event":
                        if healthy["last"] is not None and msg["seq"] != healthy["last"] + 1:
                            healthy["gaps"] += 1
                        healthy["last"] = msg["seq"]
                        healthy["events"] += 1
        except ConnectionClosed as e:
            healthy["closed"] = f"close {e.rcvd.code if e.rcvd else None}"
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            healthy["closed"] = f"{type(e).__name__}: {e}"

    hs = asyncio.ensure_future(healthy_sub())
    await asyncio.sleep(0.5)
    pad = "x" * a.slow_event_bytes
    published, closes = 0, 0
    t0 = time.monotonic()
    limit = min(15.0, a.attack_budget - 5)
    last_poll = t0
    async with connect(h.uri, compression=None, proxy=None, ping_interval=None) as pub:
        await pub.recv()
        drain = asyncio.ensure_future(Harness._discard(pub))
        nxt = time.monotonic()
        while time.monotonic() - t0 < limit:
            for _ in range(10):
                await pub.send(json.dumps({"type": "publish", "channel": "busy:1", "event_type": "bulk",
                                           "data": {"pad": pad}}))
                published += 1
            nxt += 10 / a.slow_rate
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            if time.monotonic() - last_poll > 1.0:
                last_poll = time.monotonic()
                m = await asyncio.to_thread(common.metrics, h.port)
                closes = common.metric_sum(m, "framecast_slow_consumer_closes_total") - base_closes
                if closes >= M:
                    break
        drain.cancel()
    pub_s = time.monotonic() - t0
    rss_peak_pub = h.rss_window(t0, time.monotonic())
    await asyncio.sleep(1.0)
    healthy_events_expected = published
    await asyncio.sleep(0.5)
    hs.cancel()
    await asyncio.gather(hs, return_exceptions=True)
    ends = collections.Counter()
    frames = []
    results = await asyncio.gather(*[read_until_close(r, 8) for r, _ in conns])
    for res in results:
        ends[res["result"]] += 1
        frames.append(res["frames"])
    for _, w in conns:
        w.close()
    m = await asyncio.to_thread(common.metrics, h.port)
    closes = common.metric_sum(m, "framecast_slow_consumer_closes_total") - base_closes
    att = dict(slow_subscribers=M, event_bytes=a.slow_event_bytes, target_rate=a.slow_rate, published=published,
               publish_seconds=round(pub_s, 2), server_slow_consumer_closes=closes, attacker_close=dict(ends),
               frames_read_after=common.summary_stats(frames, digits=0), rss_peak_while_publishing_kb=rss_peak_pub,
               healthy_subscriber=dict(healthy, expected=healthy_events_expected))
    fail, warn = [], []
    n1008 = sum(v for k, v in ends.items() if k.startswith("close 1008"))
    if closes < M:
        fail.append(f"server closed only {closes:.0f}/{M} never-reading subscribers as slow consumers")
    if n1008 < M:
        mid = sum(v for k, v in ends.items() if "mid-frame" in k)
        warn.append(f"only {n1008}/{M} never-reading subscribers saw close 1008 (docs: 'close 1008'); "
                    f"{mid} saw the stream cut mid-frame: {dict(ends)}")
    if healthy["closed"]:
        fail.append(f"healthy subscriber was closed: {healthy['closed']}")
    if healthy["gaps"]:
        fail.append(f"healthy subscriber saw {healthy['gaps']} seq gaps")
    if healthy["events"] < healthy_events_expected:
        warn.append(f"healthy subscriber got {healthy['events']}/{healthy_events_expected} events")
    return dict(attacker=att, fail=fail, warn=warn, rss_return_check=True)


async def pipelined(h, payload, n, read_timeout, unread_for=None):
    """Sends `payload` (n pipelined requests) on one connection and reads up to n responses:
    while sending, or, with `unread_for` seconds, only after reading nothing that long through a
    4 KiB receive buffer (the record then has the server's RSS meanwhile)."""
    reader, writer = await raw_conn(h.port, rcvbuf=4096 if unread_for else None)
    t0 = time.monotonic()
    if unread_for:
        wr = asyncio.ensure_future(send_all(writer, payload))
        await asyncio.sleep(unread_for)
        rss_mid = h.rss_now()
        res = await read_http(reader, read_timeout, n)
        sent, err = await wr
    else:
        rd = asyncio.ensure_future(read_http(reader, read_timeout, n))
        sent, err = await send_all(writer, payload)
        res = await rd
    writer.close()
    record = dict(requests=n, sent_bytes=sent, send_error=err, responses=res["count"],
                  statuses=res["statuses"], end=res["end"])
    if unread_for:
        record["rss_kb_while_unread"] = rss_mid
    record["seconds"] = round(time.monotonic() - t0, 2)
    return record


async def attack_pipelined(h, a):
    n = a.pipeline
    get = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    out, fail, warn = {}, [], []
    # a. write all at once, read concurrently
    out["healthz_read_live"] = await pipelined(h, get * n, n, 8)
    # b. write all, read nothing for 4 s, then read
    out["healthz_read_late"] = await pipelined(h, get * n, n, 6, unread_for=4)
    # c. 10k POST /api/v1/broadcast
    body = b'{"channel":"pipe:1","event_type":"p","data":1}'
    post = (b"POST /api/v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body
    out["broadcast_read_live"] = await pipelined(h, post * n, n, 8)
    for k, v in out.items():
        bad = {s: c for s, c in v["statuses"].items() if s not in ("200", "202", "503")}
        if bad:
            fail.append(f"{k}: unexpected statuses {bad}")
        if v["responses"] < n:
            warn.append(f"{k}: {v['responses']}/{n} responses ({v['end']})")
    return dict(attacker=out, fail=fail, warn=warn)


async def attack_content_length(h, a):
    body = b'{"channel":"cl:1","event_type":"c","data":{"v":1}}'
    L = len(body)

    def req(headers: str, payload: bytes = body):
        return (f"POST /api/v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}\r\n"
                .encode() + payload)

    cases = {
        # name: (request bytes, expectation: 'closed_no_2xx' | '4xx' | 'record')
        "declared_gt_sent": (req("Content-Length: 100\r\n", body[:20]), "closed_no_2xx"),
        "declared_lt_sent": (req("Content-Length: 5\r\n"), "no_2xx"),
        "duplicate_differing": (req(f"Content-Length: 5\r\nContent-Length: {L}\r\n"), "4xx"),
        "duplicate_differing_rev": (req(f"Content-Length: {L}\r\nContent-Length: 5\r\n"), "4xx"),
        "duplicate_identical": (req(f"Content-Length: {L}\r\nContent-Length: {L}\r\n"), "record"),
        "plus_sign": (req(f"Content-Length: +{L}\r\n"), "4xx"),
        "minus_one": (req("Content-Length: -1\r\n"), "4xx"),
        "overflow_2^64": (req("Content-Length: 18446744073709551616\r\n"), "4xx"),
        "hex": (req("Content-Length: 0x10\r\n"), "4xx"),
        "comma_list_same": (req(f"Content-Length: {L}, {L}\r\n"), "record"),
        "cl_and_chunked": (req(f"Content-Length: {L}\r\nTransfer-Encoding: chunked\r\n"), "4xx"),
        "over_max_body_2MiB": (req("Content-Length: 2097152\r\n", b""), "4xx"),
    }
    wait = min(a.attack_budget - 3, 14)

    async def run(name, data):
        return name, await http_exchange(h.port, data, timeout=wait, max_responses=3)

    res = dict(await asyncio.gather(*[run(k, v[0]) for k, v in cases.items()]))
    out, fail, warn = {}, [], []
    for name, (_, exp) in cases.items():
        r = res[name]
        statuses = [x["status"] for x in r.get("responses", [])]
        out[name] = dict(responses=statuses, bodies=[x["body"][:100] for x in r.get("responses", [])],
                         end=r.get("end"), seconds=r.get("seconds"))
        codes = [int(s.split(" ")[1]) for s in statuses if len(s.split(" ")) > 1 and s.split(" ")[1].isdigit()]
        if exp in ("4xx",):
            if not codes or not 400 <= codes[0] < 500:
                fail.append(f"{name}: expected 4xx, got {statuses or r.get('end')}")
            if any(200 <= c < 300 for c in codes):
                fail.append(f"{name}: a request with a bad Content-Length was accepted ({statuses})")
        if exp in ("no_2xx", "closed_no_2xx") and any(200 <= c < 300 for c in codes):
            fail.append(f"{name}: got {statuses}")
        if exp == "closed_no_2xx" and (r.get("end") or "").startswith("timeout"):
            fail.append(f"{name}: connection still open after {wait}s")
        if exp == "closed_no_2xx" and not codes:
            warn.append(f"{name}: closed after {r.get('seconds')}s without any status (client gets no error)")
    return dict(attacker=out, fail=fail, warn=warn)


async def attack_bad_ws_key(h, a):
    cases = {
        "short_abc": "abc",
        "missing": None,
        "empty": "",
        "24_chars_not_base64": "!!!!!!!!!!!!!!!!!!!!!!==",
        "base64_of_15_bytes": base64.b64encode(b"x" * 15).decode(),
        "base64_of_17_bytes": base64.b64encode(b"x" * 17).decode(),
        "base64_of_64_bytes": base64.b64encode(b"x" * 64).decode(),
    }
    out, fail, warn = {}, [], []
    for name, key in cases.items():
        r = await http_exchange(h.port, upgrade_request(key=key), timeout=3)
        st = first_status(r)
        out[name] = dict(status=r["responses"][0]["status"] if r.get("responses") else None,
                         body=r["responses"][0]["body"] if r.get("responses") else None, end=r.get("end"))
        if st == 101:
            warn.append(f"{name}: invalid key accepted (101)")
        elif st is None:
            fail.append(f"{name}: no status ({r.get('end')})")
        elif st != 400:
            warn.append(f"{name}: {st} (RFC 6455 4.2.2: 400)")
    # two keys
    r = await http_exchange(h.port, upgrade_request(extra=f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"),
                            timeout=3)
    out["two_keys"] = dict(status=r["responses"][0]["status"] if r.get("responses") else None, end=r.get("end"))
    return dict(attacker=out, fail=fail, warn=warn)


async def attack_http10_upgrade(h, a):
    cases = {
        "http_1.0_upgrade": (upgrade_request(version="HTTP/1.0"), "no_101"),
        "http_1.1_no_host": (upgrade_request(host=False), "400"),
        "ws_version_8": (upgrade_request(ws_version="8"), "426"),
        "no_ws_version": (upgrade_request(ws_version=None), "4xx"),
        "post_upgrade": (upgrade_request(method="POST"), "no_101"),
        "http_1.0_healthz": (b"GET /healthz HTTP/1.0\r\n\r\n", "record"),
    }
    out, fail, warn = {}, [], []
    for name, (data, exp) in cases.items():
        r = await http_exchange(h.port, data, timeout=3)
        st = first_status(r)
        resp = r["responses"][0] if r.get("responses") else {}
        out[name] = dict(status=resp.get("status"), headers=resp.get("headers"), body=resp.get("body"), end=r.get("end"))
        if st is None:
            fail.append(f"{name}: no status ({r.get('end')})")
        elif exp == "no_101" and st == 101:
            warn.append(f"{name}: upgraded (101) — RFC 6455 4.1 requires HTTP/1.1+ and GET")
        elif exp == "400" and st != 400:
            warn.append(f"{name}: {st} (RFC 9112 3.2: 400 for a missing Host)")
        elif exp == "426" and (st != 426 or not any("13" in x for x in resp.get("headers", []))):
            warn.append(f"{name}: {st} {resp.get('headers')} (RFC 6455 4.4: 426 + Sec-WebSocket-Version: 13)")
        elif exp == "4xx" and not 400 <= st < 500:
            warn.append(f"{name}: {st}")
    return dict(attacker=out, fail=fail, warn=warn)


ATTACKS = {
    "slowloris": attack_slowloris,
    "big_headers": attack_big_headers,
    "nested_json": attack_nested_json,
    "ping_flood": lambda h, a: attack_ping_flood(h, a, True, a.ping_rate),
    "ping_flood_max": lambda h, a: attack_ping_flood(h, a, True, None),
    "ping_flood_noread": lambda h, a: attack_ping_flood(h, a, False, None),
    "slow_consumers": attack_slow_consumers,
    "pipelined": attack_pipelined,
    "content_length": attack_content_length,
    "bad_ws_key": attack_bad_ws_key,
    "http10_upgrade": attack_http10_upgrade,
}


async def run_attack(h: Harness, a, name):
    fn = ATTACKS[name]
    if not await h.alive():
        await h.restart(f"down before {name}")
    await asyncio.sleep(0.5)
    gen0 = h.server_gen
    log0 = common.line_count(h.server.log_path)
    rss_before, fds_before = h.rss_now(), h.server.fds()
    m0 = await asyncio.to_thread(common.metrics, h.port)
    t0 = time.monotonic()
    try:
        res = await asyncio.wait_for(fn(h, a), a.attack_budget)
    except asyncio.TimeoutError:
        res = dict(attacker="attack did not finish within its budget", fail=[f"exceeded {a.attack_budget}s budget"], warn=[])
    except Exception as e:  # noqa: BLE001
        res = dict(attacker=f"attack error: {type(e).__name__}: {e}", fail=[], warn=[f"attack raised {type(e).__name__}: {e}"])
    if time.monotonic() - t0 < a.min_window:  # short attacks: keep measuring the probes a while
        await asyncio.sleep(a.min_window - (time.monotonic() - t0))
    t1 = time.monotonic()
    await asyncio.sleep(1.0)  # grace for in-flight probe events
    probe = h.probe_stats(t0, t1)
    up = await h.alive()
    crashed = h.server_gen != gen0 or not up
    log_lines = (common.line_count(h.server.log_path) - log0) if h.server_gen == gen0 else None
    if h.server_gen != gen0:
        log_lines = sum(common.line_count(h.outd / f"server-{g}.log") for g in range(gen0 + 1, h.server_gen + 1))
    rss_during = h.rss_window(t0, t1)
    await asyncio.sleep(2.0)
    rss_after, fds_after = h.rss_now(), h.server.fds()
    disc = {}
    if not crashed:
        m1 = await asyncio.to_thread(common.metrics, h.port)
        for k, v in m1.items():
            if k.startswith(("framecast_disconnects_total", "framecast_connects_total",
                             "framecast_slow_consumer_closes_total")):
                d = v - m0.get(k, 0)
                if d:
                    disc[k.replace("framecast_", "").replace("_total", "")] = d
    fail, warn = list(res.get("fail", [])), list(res.get("warn", []))
    if not up:
        desc = h.server.exit_description() or "not answering /healthz"
        fail.append(f"server down after the attack ({desc})")
    if probe["missed"] and not crashed:
        fail.append(f"probes missed {probe['missed']} events")
    if probe["published"] < 0.8 * probe["expected_publishes"] and not crashed:
        warn.append(f"probe publisher stalled: {probe['published']}/{probe['expected_publishes']} publishes")
    if probe["p99_ms"] is not None and probe["p99_ms"] > a.probe_p99_ms:
        warn.append(f"probe p99 {probe['p99_ms']} ms > {a.probe_p99_ms} ms")
    if log_lines and log_lines > a.max_log_lines:
        warn.append(f"log flood: {log_lines} lines at --log-level warn")
    if res.get("rss_return_check") and rss_before and rss_after and not crashed:
        if rss_after - rss_before > max(16 * 1024, rss_before * 0.25):
            fail.append(f"memory not returned: RSS {rss_before} -> {rss_after} kB")
    if not up:
        await h.restart(f"down after {name}")
    verdict = "FAIL" if fail else ("WARN" if warn else "PASS")
    return dict(attack=name, server_up=up and not crashed, crashed_or_restarted=crashed, seconds=round(t1 - t0, 2),
                probe=probe, rss_kb=dict(before=rss_before, during_max=rss_during, after=rss_after),
                fds=dict(before=fds_before, after=fds_after), log_lines=log_lines, server_counters=disc,
                attacker=res.get("attacker"),
                verdict=verdict, fail=fail, warn=warn)


async def amain(a):
    h = Harness(a)
    shards = await h.start()
    print(f"# hostile {common.now_utc()} server={a.server_bin} pid={h.server.pid} port={h.port} shards={shards} "
          f"probes={[(p.idx, p.shard) for p in h.probes]} out={h.outd}", flush=True)
    names = [n.strip() for n in a.attacks.split(",")] if a.attacks != "all" else list(ATTACKS)
    for n in names:
        if n not in ATTACKS:
            raise SystemExit(f"unknown attack {n}; known: {', '.join(ATTACKS)}")
    results = []
    for n in names:
        r = await run_attack(h, a, n)
        results.append(r)
        p = r["probe"]
        print(f"[{r['verdict']:4}] {n:18} up={'yes' if r['server_up'] else 'NO'} {r['seconds']:5.1f}s "
              f"probe p50/p99/max={p['p50_ms']}/{p['p99_ms']}/{p['max_ms']} ms missed={p['missed']} "
              f"rss kB {r['rss_kb']['before']}/{r['rss_kb']['during_max']}/{r['rss_kb']['after']} "
              f"fds {r['fds']['before']}->{r['fds']['after']} log+{r['log_lines']}", flush=True)
        for f in r["fail"]:
            print(f"         FAIL: {f}", flush=True)
        for w in r["warn"]:
            print(f"         warn: {w}", flush=True)
        print("         server counters: " + json.dumps(r["server_counters"]), flush=True)
        print("         attacker: " + json.dumps(r["attacker"], default=str)[:a.print_chars], flush=True)
    await asyncio.sleep(5)
    idle = dict(rss_kb=h.rss_now(), fds=h.server.fds(), server_started_rss_kb=h.first_rss)
    print(f"# after all attacks + 5 s idle: RSS {idle['rss_kb']} kB (fresh server {h.first_rss} kB), fds {idle['fds']}")
    exit_desc = await h.stop()
    logs = {p.name: common.log_stats(p) for p in sorted(h.outd.glob("server-*.log"))}
    verdicts = collections.Counter(r["verdict"] for r in results)
    summary = dict(script="hostile", date=common.now_utc(), binary=common.binary_info(a.server_bin), params=vars(a),
                   port=h.port, out_dir=str(h.outd), shards=shards,
                   probes=[dict(idx=p.idx, shard=p.shard, disconnects=p.disconnects) for p in h.probes],
                   restarts=h.restarts, idle_after_all=idle, results=results, last_server_exit=exit_desc, logs=logs,
                   verdicts=dict(verdicts), verdict="FAIL" if verdicts["FAIL"] else ("WARN" if verdicts["WARN"] else "PASS"))
    common.write_json(a.json_out, summary)
    print(f"# server restarts after crashes: {len(h.restarts)} {h.restarts}")
    print(f"# last server exit: {exit_desc}; logs: " + ", ".join(f"{k}: {v['lines']} lines" for k, v in logs.items()))
    print(f"VERDICT hostile: {summary['verdict']} " + " ".join(f"{r['attack']}={r['verdict']}" for r in results), flush=True)
    return 1 if verdicts["FAIL"] else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server-bin", default=common.DEFAULT_SERVER_BIN)
    ap.add_argument("--attacks", default="all", help="comma-separated subset of: " + ", ".join(ATTACKS))
    ap.add_argument("--attack-budget", type=float, default=20, help="max seconds per attack (default 20)")
    ap.add_argument("--slowloris-conns", type=int, default=300)
    ap.add_argument("--slow-consumers", type=int, default=50)
    ap.add_argument("--slow-event-bytes", type=int, default=4000)
    ap.add_argument("--slow-rate", type=float, default=1000, help="events/s on the busy channel")
    ap.add_argument("--pipeline", type=int, default=10000)
    ap.add_argument("--ping-rate", type=int, default=5000, help="pings/s of the paced ping_flood (default 5000)")
    ap.add_argument("--min-window", type=float, default=3, help="probe window of an attack, at least (s)")
    ap.add_argument("--probe-p99-ms", type=float, default=250)
    ap.add_argument("--max-log-lines", type=int, default=20, help="per attack, beyond = log flood warning")
    ap.add_argument("--shards", type=int, default=None)
    ap.add_argument("--print-chars", type=int, default=1500, help="attacker details printed per attack")
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    a.attack_budget = max(5.0, min(a.attack_budget, 20.0))
    common.raise_nofile(a.slowloris_conns * 2 + 1000)
    sys.exit(asyncio.run(amain(a)))


if __name__ == "__main__":
    main()

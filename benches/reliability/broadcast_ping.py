#!/usr/bin/env python3
"""Heavy HTTP broadcasts vs. WebSocket ping round-trips (issue 13, item 4).

One framecast server; one WebSocket pinger per shard (found through the built-in `connections`
channel) sends the native `{"type":"ping","ping_id":N}` every --ping-interval-ms and times each
`pong`. Then, per case, --concurrent POST /api/v1/broadcast requests (each on its own TCP
connection, sent at the same moment) to --channels channels, --rounds times. Reported per case:
the HTTP statuses and response times, and the ping RTT p50/p99/max of pings sent before the case
(idle baseline) and while it ran (from the first request byte until every response has arrived
and the subscribers have received the round's last event, + --tail-s).

Default cases (name = data bytes x channels; the server refuses data bytes x channels over
64 MiB with 413, docs/http-api.md):
  1MiBx1000   1 MiB of data to 1000 channels: the issue's case, now expected 413
  1MiBx64     exactly 64 MiB: the boundary, expected 202
  1MiBx60     the largest "round" accepted case
  64KiBx1000  64 KiB to 1000 channels (62.5 MiB), expected 202

`data` is one JSON string of exactly the stated size (quotes included). The server is started
with max_http_body_bytes = 2MiB (a 1 MiB `data` does not fit in the default 1 MiB body) and
otherwise the defaults. One subscriber per shard (--subscribed-channels, default 10, of the
case's channels; 0 = none) reads everything, so the broadcasts are really delivered, not only
encoded for channels nobody listens to.

Pingers run in their own process (so the client's own work on 1 MiB bodies and events does not
delay them); times are CLOCK_MONOTONIC, shared by both processes. Loopback only, bounded
(each case <= --rounds x (--round-timeout-s + --tail-s + --pause-s)). Verdict: PASS when the
server stayed up, every ping got its pong, every status was the expected one and the p99 RTT
during every accepted case is <= --rtt-p99-ms (default 100 ms); else FAIL (WARN for an RTT
over the bound only). Run it under `flock /tmp/framecast-heavy.lock`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import re
import socket
import sys
import time

import common

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
except ImportError:  # pragma: no cover
    sys.exit("websockets is not installed: run benches/reliability/setup.sh and use .venv/bin/python")

SRC = common.source_ips(4)
KIB = 1024
MIB = 1024 * 1024
DEFAULT_CASES = "1MiBx1000:413,1MiBx64:202,1MiBx60:202,64KiBx1000:202"


def parse_size(s: str) -> int:
    m = re.fullmatch(r"(\d+)(KiB|MiB|B)?", s)
    if not m:
        raise SystemExit(f"bad size {s!r} (e.g. 1MiB, 64KiB, 1000B)")
    return int(m.group(1)) * {"KiB": KIB, "MiB": MIB, None: 1, "B": 1}[m.group(2)]


def parse_cases(spec: str):
    cases = []
    for item in spec.split(","):
        name, _, expect = item.strip().partition(":")
        size, _, chans = name.partition("x")
        cases.append(dict(name=name, data_bytes=parse_size(size), channels=int(chans),
                          expect=int(expect) if expect else None))
    return cases


# ------------------------------------------------------------------------------ pinger process

def pinger_main(port, want_shards, interval_s, ready_q, stop_ev, result_q):
    asyncio.run(pinger_async(port, want_shards, interval_s, ready_q, stop_ev, result_q))


async def pinger_async(port, want_shards, interval_s, ready_q, stop_ev, result_q):
    uri = f"ws://127.0.0.1:{port}/ws"
    pingers = []  # dicts: ws, shard, sent{id: t}, rtt[(t_sent, rtt_s)], errors
    async with connect(uri, compression=None, proxy=None, ping_interval=None) as watcher:
        await watcher.recv()
        await watcher.send(json.dumps({"type": "subscribe", "channels": ["connections"]}))
        await asyncio.sleep(0.2)
        shard_of, covered, spare = {}, set(), []
        idx = 0
        while len(covered) < want_shards and idx < 12:
            ws = await connect(uri, local_addr=(SRC[idx % len(SRC)], 0), compression=None, proxy=None,
                               ping_interval=None, open_timeout=5, close_timeout=2, max_size=None)
            hello = json.loads(await ws.recv())
            cid = hello.get("client_id")
            shard = await common.shard_of_client(watcher, cid, shard_of)
            if shard not in covered:
                covered.add(shard)
                pingers.append(dict(ws=ws, shard=shard, sent={}, rtt=[], errors=[]))
            else:
                spare.append(ws)
            idx += 1
        for ws in spare:
            await ws.close()

    async def reader(p):
        try:
            async for raw in p["ws"]:
                t = time.monotonic()
                msg = json.loads(raw)
                if msg.get("type") == "pong":
                    t0 = p["sent"].pop(msg.get("ping_id"), None)
                    if t0 is not None:
                        p["rtt"].append((t0, t - t0))
        except ConnectionClosed as e:
            p["errors"].append(f"closed: {e}"[:200])

    async def sender(p):
        n, nxt = 0, time.monotonic()
        while not stop_ev.is_set():
            n += 1
            p["sent"][n] = time.monotonic()
            try:
                await p["ws"].send('{"type":"ping","ping_id":%d}' % n)
            except ConnectionClosed as e:
                p["errors"].append(f"send: {e}"[:200])
                return
            nxt += interval_s
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    tasks = [asyncio.ensure_future(reader(p)) for p in pingers]
    tasks += [asyncio.ensure_future(sender(p)) for p in pingers]
    ready_q.put(sorted(str(p["shard"]) for p in pingers))
    while not stop_ev.is_set():
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # late pongs
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    result_q.put([dict(shard=p["shard"], rtt=p["rtt"], unanswered=sorted(p["sent"].values()),
                       errors=p["errors"]) for p in pingers])
    for p in pingers:
        try:
            await asyncio.wait_for(p["ws"].close(), 2)
        except Exception:  # noqa: BLE001
            pass


# ------------------------------------------------------------------------------ main process

async def post(port, body: bytes, src, timeout):
    """One POST on its own connection; returns (status, seconds from first byte to response, body head)."""
    t0 = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((common.check_loopback(src), 0))
    try:
        await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=s)
    except BaseException:
        s.close()
        raise
    try:
        head = (f"POST /api/v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        t0 = time.monotonic()
        writer.write(head + body)
        await writer.drain()
        resp = await asyncio.wait_for(reader.read(-1), timeout)
        t1 = time.monotonic()
        m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
        return (int(m.group(1)) if m else None), t1 - t0, t0, resp.partition(b"\r\n\r\n")[2][:200].decode(errors="replace")
    except (OSError, asyncio.TimeoutError) as e:
        return None, time.monotonic() - t0, t0, f"{type(e).__name__}: {e}"
    finally:
        writer.close()


class Subscriber:
    """Reads every event of its channels; records when the last event of each event_type arrived."""

    def __init__(self, uri, channels, src):
        self.uri, self.channels, self.src = uri, channels, src
        self.last = {}
        self.count = {}
        self.bytes = 0
        self.errors = []
        self.ready = asyncio.Event()

    async def run(self):
        try:
            async with connect(self.uri, local_addr=(self.src, 0), compression=None, proxy=None, ping_interval=None,
                               max_size=None, max_queue=None, open_timeout=5, close_timeout=2) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "subscribe", "id": 1, "channels": self.channels}))
                async for raw in ws:
                    if not self.ready.is_set():
                        msg = json.loads(raw)
                        if msg.get("type") == "subscribed":
                            self.ready.set()
                        elif msg.get("type") == "error":
                            self.errors.append(raw[:200])
                            self.ready.set()
                        continue
                    self.bytes += len(raw)
                    m = re.search(r'"event_type":"([^"]+)"', raw[:400])
                    if m:
                        et = m.group(1)
                        self.last[et] = time.monotonic()
                        self.count[et] = self.count.get(et, 0) + 1
        except (OSError, ConnectionClosed, asyncio.TimeoutError) as e:
            self.errors.append(f"{type(e).__name__}: {e}"[:200])
            self.ready.set()


def rtt_stats(pinger_results, t0, t1):
    per, allv = [], []
    for p in pinger_results:
        v = [r * 1000 for ts, r in p["rtt"] if t0 <= ts <= t1]
        lost = sum(1 for ts in p["unanswered"] if t0 <= ts <= t1)
        allv += v
        per.append(dict(shard=p["shard"], n=len(v), lost=lost,
                        p50_ms=None if not v else round(common.pct(v, 50), 2),
                        p99_ms=None if not v else round(common.pct(v, 99), 2),
                        max_ms=None if not v else round(max(v), 2)))
    return dict(n=len(allv), p50_ms=None if not allv else round(common.pct(allv, 50), 2),
                p99_ms=None if not allv else round(common.pct(allv, 99), 2),
                max_ms=None if not allv else round(max(allv), 2), per_shard=per)


async def amain(a):
    common.raise_nofile()
    cases = parse_cases(a.cases)
    outd = common.out_dir("broadcast_ping")
    port = common.free_port()
    uri = f"ws://127.0.0.1:{port}/ws"
    toml = f'max_http_body_bytes = "{a.max_http_body}"\n'
    server = common.Server(a.server_bin, port, outd / "server.log",
                           args=["--shards", str(a.shards)] if a.shards else [],
                           config_toml=toml, config_path=outd / "framecast.toml")
    server.start()
    st, body = common.http_get(port, "/api/v1/status")
    try:
        shards = len(json.loads(body)["connections"]["per_shard"])
    except (ValueError, KeyError, TypeError):
        shards = a.shards or 2
    common.eprint(f"server pid {server.pid} port {port} shards {shards}; log {server.log_path}")

    ctx = mp.get_context("spawn")
    ready_q, result_q, stop_ev = ctx.Queue(), ctx.Queue(), ctx.Event()
    pp = ctx.Process(target=pinger_main, args=(port, shards, a.ping_interval_ms / 1000.0, ready_q, stop_ev, result_q))
    pp.start()
    pinger_shards = ready_q.get(timeout=30)
    common.eprint(f"pingers on shards {pinger_shards}, one ping every {a.ping_interval_ms} ms each")

    subs, sub_tasks = [], []
    if a.subscribed_channels:
        max_ch = max(c["channels"] for c in cases)
        k = min(a.subscribed_channels, max_ch)
        # spread the subscribed channels over the range so every case (60 .. 1000 channels) hits some
        for i in range(max(shards, 1)):
            chans = [f"bp:{j}" for j in range(i, max_ch, max(1, max_ch // k))][:k]
            s = Subscriber(uri, chans, SRC[(i + 1) % len(SRC)])
            subs.append(s)
            sub_tasks.append(asyncio.ensure_future(s.run()))
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subs)), 10)

    log_lines0 = common.line_count(server.log_path)
    rss_samples = []

    async def sampler():
        while True:
            rss_samples.append((time.monotonic(), server.rss_kb()))
            await asyncio.sleep(0.1)

    samp = asyncio.ensure_future(sampler())
    await asyncio.sleep(a.baseline_s)
    results = []
    for ci, c in enumerate(cases):
        case_t0 = time.monotonic()
        base_window = (case_t0 - a.baseline_s, case_t0)
        data = b'"' + b"x" * (c["data_bytes"] - 2) + b'"'
        rounds = []
        for r in range(a.rounds):
            et = f"bp{ci}r{r}"
            chans = json.dumps([f"bp:{j}" for j in range(c["channels"])]).encode()
            body = b'{"channels":' + chans + b',"event_type":"' + et.encode() + b'","data":' + data + b"}"
            rss0 = server.rss_kb()
            t_start = time.monotonic()
            res = await asyncio.gather(*(post(port, body, SRC[(k + 2) % len(SRC)], a.round_timeout_s)
                                         for k in range(a.concurrent)))
            t_resp = time.monotonic()
            accepted = sum(1 for s, *_ in res if s == 202)
            # wait until the subscribers got this round's events (each subscribed channel in the case)
            deadline = t_resp + a.round_timeout_s
            want = [sum(1 for ch in s.channels if int(ch.split(":")[1]) < c["channels"]) * accepted for s in subs]
            while time.monotonic() < deadline and any(s.count.get(et, 0) < w for s, w in zip(subs, want)):
                await asyncio.sleep(0.01)
            t_deliv = max([t_resp] + [s.last.get(et, t_resp) for s in subs])
            await asyncio.sleep(a.tail_s)
            t_end = time.monotonic()
            rounds.append(dict(round=r, statuses=[s for s, *_ in res], response_s=[round(d, 3) for _, d, _, _ in res],
                               bodies=sorted({b[:160] for s, _, _, b in res if s != 202}),
                               requests_to_last_response_s=round(t_resp - t_start, 3),
                               requests_to_last_delivery_s=round(t_deliv - t_start, 3),
                               delivered=[s.count.get(et, 0) for s in subs], expected_delivered=want,
                               window=(t_start, t_deliv + a.tail_s), rss_before_kb=rss0,
                               rss_max_kb=max([v for t, v in rss_samples if t_start <= t <= t_end and v] or [0])))
            common.eprint(f"  {c['name']} round {r}: statuses {rounds[-1]['statuses']} in "
                          f"{rounds[-1]['response_s']} s, last delivery {rounds[-1]['requests_to_last_delivery_s']} s, "
                          f"delivered {rounds[-1]['delivered']}/{want}")
            await asyncio.sleep(a.pause_s)
        results.append(dict(case=c, base_window=base_window, rounds=rounds))
        await asyncio.sleep(a.baseline_s)

    t_after = time.monotonic()
    await asyncio.sleep(a.baseline_s)
    after_window = (t_after, time.monotonic())
    stop_ev.set()
    pinger_results = await asyncio.to_thread(result_q.get, True, 30)
    await asyncio.to_thread(pp.join, 10)
    samp.cancel()
    for t in sub_tasks:
        t.cancel()
    await asyncio.gather(*sub_tasks, samp, return_exceptions=True)
    alive = server.alive() and common.healthz(port) == 200
    rss_end = server.rss_kb()
    log_lines = common.line_count(server.log_path) - log_lines0
    exit_desc = server.stop(20)

    fail, warn = [], []
    if not alive:
        fail.append("server not up at the end")
    for p in pinger_results:
        if p["errors"]:
            fail.append(f"pinger on shard {p['shard']}: {p['errors'][:2]}")
        late = [ts for ts in p["unanswered"] if ts < after_window[1] - 2]
        if late:
            fail.append(f"pinger on shard {p['shard']}: {len(late)} pings never answered")
    summary_cases = []
    for res in results:
        c = res["case"]
        base = rtt_stats(pinger_results, *res["base_window"])
        during_vals = []
        for rd in res["rounds"]:
            rd["rtt"] = rtt_stats(pinger_results, *rd["window"])
        # every ping sent inside any round's window
        merged = [dict(shard=p["shard"], rtt=[(ts, r) for ts, r in p["rtt"]
                                              if any(w0 <= ts <= w1 for w0, w1 in (rd["window"] for rd in res["rounds"]))],
                       unanswered=[ts for ts in p["unanswered"]
                                   if any(w0 <= ts <= w1 for w0, w1 in (rd["window"] for rd in res["rounds"]))])
                  for p in pinger_results]
        during = rtt_stats(merged, float("-inf"), float("inf"))
        statuses = [s for rd in res["rounds"] for s in rd["statuses"]]
        if c["expect"] is not None and any(s != c["expect"] for s in statuses):
            fail.append(f"{c['name']}: statuses {statuses}, expected all {c['expect']}")
        if any(rd["delivered"] != rd["expected_delivered"] for rd in res["rounds"]):
            fail.append(f"{c['name']}: subscribers got {[rd['delivered'] for rd in res['rounds']]}, "
                        f"expected {[rd['expected_delivered'] for rd in res['rounds']]}")
        if 202 in statuses and during["p99_ms"] is not None and during["p99_ms"] > a.rtt_p99_ms:
            warn.append(f"{c['name']}: ping p99 during {during['p99_ms']} ms > {a.rtt_p99_ms} ms")
        summary_cases.append(dict(name=c["name"], data_bytes=c["data_bytes"], channels=c["channels"],
                                  work_bytes=c["data_bytes"] * c["channels"], concurrent=a.concurrent,
                                  statuses=statuses, baseline=base, during=during, rounds=res["rounds"]))
    after = rtt_stats(pinger_results, *after_window)

    print(f"server {a.server_bin}, {shards} shards, pingers on shards {pinger_shards}, "
          f"ping every {a.ping_interval_ms} ms, {a.concurrent} concurrent requests x {a.rounds} rounds per case")
    print(f"{'case':<12} {'status':<16} {'resp s (max)':>12} {'deliv s':>8} "
          f"{'base p50/p99/max ms':>22} {'during p50/p99/max ms':>26} {'n':>5}")
    for sc in summary_cases:
        b, d = sc["baseline"], sc["during"]
        st = ",".join(f"{k}x{sc['statuses'].count(k)}" for k in sorted(set(sc["statuses"]), key=str))
        resp = max(x for rd in sc["rounds"] for x in rd["response_s"])
        deliv = max(rd["requests_to_last_delivery_s"] for rd in sc["rounds"])
        print(f"{sc['name']:<12} {st:<16} {resp:>12.3f} {deliv:>8.3f} "
              f"{b['p50_ms']!s:>6}/{b['p99_ms']!s:>6}/{b['max_ms']!s:>7} "
              f"{d['p50_ms']!s:>8}/{d['p99_ms']!s:>8}/{d['max_ms']!s:>8} {d['n']:>5}")
        for ps in d["per_shard"]:
            print(f"{'':<12}   shard {ps['shard']}: during p50 {ps['p50_ms']} p99 {ps['p99_ms']} max {ps['max_ms']} "
                  f"ms (n={ps['n']}, unanswered {ps['lost']})")
        for body_txt in sorted({b for rd in sc["rounds"] for b in rd["bodies"]}):
            print(f"{'':<12}   answer: {body_txt}")
    print(f"after all cases: ping p50/p99/max {after['p50_ms']}/{after['p99_ms']}/{after['max_ms']} ms; "
          f"RSS end {rss_end} kB, max {max(v for _, v in rss_samples if v)} kB; server log +{log_lines} lines; "
          f"server exit: {exit_desc}")
    verdict = "FAIL" if fail else ("WARN" if warn else "PASS")
    for r in fail:
        print("  FAIL:", r)
    for r in warn:
        print("  warn:", r)
    print(f"VERDICT broadcast_ping: {verdict}")
    common.write_json(a.json_out, dict(
        script="broadcast_ping", date=common.now_utc(), binary=common.binary_info(a.server_bin), shards=shards,
        config=toml, args=vars(a), cases=summary_cases, after=after, rss_end_kb=rss_end, log_lines=log_lines,
        server_exit=exit_desc, verdict=verdict, fail=fail, warn=warn,
        subscribers=[dict(channels=len(s.channels), bytes=s.bytes, errors=s.errors) for s in subs]))
    return 0 if verdict != "FAIL" else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server-bin", default=common.DEFAULT_SERVER_BIN)
    ap.add_argument("--cases", default=DEFAULT_CASES,
                    help=f"comma-separated SIZExCHANNELS[:expected status] (default {DEFAULT_CASES})")
    ap.add_argument("--concurrent", type=int, default=3, help="requests sent at once per round (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per case (default 3)")
    ap.add_argument("--subscribed-channels", type=int, default=10,
                    help="channels each per-shard subscriber reads (default 10; 0 = no subscribers)")
    ap.add_argument("--ping-interval-ms", type=float, default=10)
    ap.add_argument("--baseline-s", type=float, default=3, help="idle window before each case (default 3)")
    ap.add_argument("--tail-s", type=float, default=0.5, help="window after the last delivery of a round")
    ap.add_argument("--pause-s", type=float, default=1.0, help="pause between rounds")
    ap.add_argument("--round-timeout-s", type=float, default=30)
    ap.add_argument("--rtt-p99-ms", type=float, default=100)
    ap.add_argument("--max-http-body", default="2MiB", help="server max_http_body_bytes (default 2MiB)")
    ap.add_argument("--shards", type=int, default=None)
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    sys.exit(asyncio.run(amain(a)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Connection-churn soak: keeps ~--conns live WebSocket connections to one framecast server,
replacing ~--rate of them per second (each new client subscribes to a few channels, some publish
a few events; leavers close cleanly, reset TCP (RST) or just drop it (FIN, no close frame)), for
--duration seconds. Samples the server's RSS and fd count every --sample-interval seconds and
prints the curve as CSV (t_s,rss_kb,fds,live_conns,connects_total,failures), then a verdict:

  * failures == 0 (connect, handshake, subscribe, unexpected server close, close handshake);
  * after the warm-up (--warmup s) RSS stays within a band (max - min <= max(--rss-band-pct % of
    the minimum, --rss-band-min-mb MiB));
  * once every client has gone, the server's fds return to the baseline measured before the
    first client (listeners + io_uring/eventfds + stdio);
  * the server log (at --log-level warn) has at most --max-log-lines lines.

Loopback only (127.0.0.1 server, sources 127.0.0.2...). Bounded: stops after --duration plus at
most ~45 s of teardown. Run it under `flock /tmp/framecast-heavy.lock` on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import socket
import struct
import sys
import time

import common

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus
except ImportError:  # pragma: no cover
    sys.exit("websockets is not installed: run benches/reliability/setup.sh and use .venv/bin/python")

COUNTERS = ["live", "attempts", "connects", "failures", "clean", "rst", "fin", "events", "published",
            "cpu_ms", "f_connect", "f_handshake", "f_subscribe", "f_server_closed", "f_close", "pending"]
IX = {name: i for i, name in enumerate(COUNTERS)}


class Client:
    __slots__ = ("cid", "state", "end", "mode", "task")

    def __init__(self, cid):
        self.cid = cid
        self.state = "connecting"
        self.end = asyncio.Event()
        self.mode = None
        self.task = None


class Worker:
    def __init__(self, cfg, wid, counters, errq, stop):
        self.cfg = cfg
        self.wid = wid
        self.c = counters
        self.errq = errq
        self.stop = stop
        self.errors_sent = 0
        self.uri = f"ws://127.0.0.1:{cfg['port']}/ws"
        self.ips = cfg["ips"]
        self.rng = random.Random(cfg["seed"] * 1000 + wid)
        self.next_id = wid
        self.clients: dict[int, Client] = {}

    def inc(self, name, n=1):
        self.c[IX[name]] += n

    def fail(self, kind, detail):
        self.inc("failures")
        self.inc("f_" + kind)
        if self.errors_sent < 10:
            self.errors_sent += 1
            self.errq.put((self.wid, kind, str(detail)[:300]))

    async def client(self, cl: Client):
        cfg = self.cfg
        ip = self.ips[cl.cid % len(self.ips)]
        self.inc("attempts")
        self.inc("pending")
        pending = True
        ws = None
        try:
            try:
                ws = await asyncio.wait_for(
                    connect(self.uri, local_addr=(ip, 0), compression=None, proxy=None, ping_interval=None,
                            open_timeout=cfg["timeout"], close_timeout=5, max_size=2 ** 22),
                    cfg["timeout"] + 1)
            except InvalidStatus as e:
                self.fail("connect", f"HTTP {e.response.status_code}")
                return
            except (OSError, asyncio.TimeoutError, Exception) as e:  # noqa: BLE001 - report any
                self.fail("connect", f"{type(e).__name__}: {e}")
                return
            try:
                first = json.loads(await asyncio.wait_for(ws.recv(), cfg["timeout"]))
                if first.get("type") != "connected":
                    self.fail("handshake", f"first message {first!r:.200}")
                    return
                channels = self.rng.sample(range(cfg["channels"]), cfg["subs_per_client"])
                names = [f"churn:{n}" for n in channels]
                await ws.send(json.dumps({"type": "subscribe", "channels": names}))
                deadline = time.monotonic() + cfg["timeout"]
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
                    t = msg.get("type")
                    if t == "subscribed":
                        break
                    if t == "event":
                        self.inc("events")
                        continue
                    self.fail("subscribe", f"reply {msg!r:.200}")
                    return
            except ConnectionClosed as e:
                self.fail("server_closed", f"during subscribe: code={e.rcvd.code if e.rcvd else None}")
                return
            except (asyncio.TimeoutError, ValueError) as e:
                self.fail("subscribe", f"{type(e).__name__} {e}")
                return
            finally:
                self.inc("pending", -1)
                pending = False
            self.inc("connects")
            self.inc("live")
            cl.state = "live"
            try:
                if self.rng.random() < cfg["publisher_fraction"]:
                    for k in range(cfg["events_per_publisher"]):
                        await ws.send(json.dumps({"type": "publish", "channel": self.rng.choice(names),
                                                  "event_type": "churn", "data": {"w": self.wid, "c": cl.cid, "k": k}}))
                        self.inc("published")
                reader = asyncio.ensure_future(self.read_all(ws))
                ender = asyncio.ensure_future(cl.end.wait())
                done, _ = await asyncio.wait({reader, ender}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done and not cl.end.is_set():
                    ender.cancel()
                    rc = ws.protocol.close_rcvd
                    self.fail("server_closed", f"server closed a live connection: code={rc.code if rc else None} "
                                               f"reason={rc.reason if rc else ''!r}")
                    return
                ender.cancel()
                mode = cl.mode or "clean"
                if mode == "clean":
                    await ws.close()
                    reader.cancel()
                    rc = ws.protocol.close_rcvd
                    if rc is None or rc.code != 1000:
                        self.fail("close", f"clean close answered with {rc.code if rc else 'no close frame'}")
                    else:
                        self.inc("clean")
                else:
                    sock = ws.transport.get_extra_info("socket")
                    if mode == "rst" and sock is not None:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    ws.transport.abort()
                    reader.cancel()
                    self.inc(mode)
            finally:
                self.inc("live", -1)
        finally:
            if pending:
                self.inc("pending", -1)
            if ws is not None and ws.transport is not None and not ws.transport.is_closing():
                ws.transport.abort()
            self.clients.pop(cl.cid, None)

    async def read_all(self, ws):
        try:
            async for _ in ws:
                self.inc("events")
        except ConnectionClosed:
            pass

    def spawn(self):
        cl = Client(self.next_id)
        self.next_id += self.cfg["workers"]
        self.clients[cl.cid] = cl
        cl.task = asyncio.ensure_future(self.client(cl))

    def end_client(self, cl: Client):
        r = self.rng.random()
        cl.mode = "clean" if r < self.cfg["clean_fraction"] else (
            "rst" if r < self.cfg["clean_fraction"] + self.cfg["rst_fraction"] else "fin")
        cl.state = "ending"
        cl.end.set()

    async def run(self):
        cfg = self.cfg
        target, rate = cfg["target"], cfg["rate"]
        tick = 0.1
        acc = 0.0
        ramped = False
        t_end = cfg["t_end"]
        next_tick = time.monotonic()
        while time.monotonic() < t_end and not self.stop.is_set():
            self.c[IX["cpu_ms"]] = int(common.self_cpu_s() * 1000)
            active = [cl for cl in self.clients.values() if cl.state != "ending"]
            live = [cl for cl in active if cl.state == "live"]
            if not ramped and len(live) >= 0.95 * target:
                ramped = True
            if ramped:
                acc += rate * tick
                n_end = min(int(acc), len(live))
                acc -= int(acc)
                for cl in self.rng.sample(live, n_end):
                    self.end_client(cl)
                n_active = len(active) - n_end
            else:
                n_active = len(active)
            deficit = target - n_active
            for _ in range(max(0, min(deficit, int(max(2 * rate * tick, 20))))):
                self.spawn()
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        # teardown: every remaining client leaves the usual way (mixed modes)
        for cl in list(self.clients.values()):
            if cl.state == "live":
                self.end_client(cl)
        deadline = time.monotonic() + 20
        while self.clients and time.monotonic() < deadline:
            for cl in list(self.clients.values()):
                if cl.state == "live":
                    self.end_client(cl)
            await asyncio.sleep(0.1)
        for cl in list(self.clients.values()):
            if cl.task:
                cl.task.cancel()
        self.c[IX["cpu_ms"]] = int(common.self_cpu_s() * 1000)


def worker_main(cfg, wid, counters, errq, stop):
    common.raise_nofile()
    try:
        asyncio.run(Worker(cfg, wid, counters, errq, stop).run())
    except KeyboardInterrupt:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server-bin", default=common.DEFAULT_SERVER_BIN)
    ap.add_argument("--duration", type=float, default=600, help="seconds of churn (default 600)")
    ap.add_argument("--conns", type=int, default=2000, help="live connections to keep (default 2000)")
    ap.add_argument("--rate", type=float, default=500, help="connections replaced per second (default 500)")
    ap.add_argument("--workers", type=int, default=2, help="client processes (default 2)")
    ap.add_argument("--channels", type=int, default=200, help="channel pool churn:0..N-1 (default 200)")
    ap.add_argument("--subs-per-client", type=int, default=3)
    ap.add_argument("--publisher-fraction", type=float, default=0.1)
    ap.add_argument("--events-per-publisher", type=int, default=2)
    ap.add_argument("--clean-fraction", type=float, default=0.5, help="leavers closing with a close frame")
    ap.add_argument("--rst-fraction", type=float, default=0.25, help="leavers resetting TCP (the rest: FIN, no close frame)")
    ap.add_argument("--source-ips", type=int, default=8, help="source addresses 127.0.0.2.. (default 8)")
    ap.add_argument("--sample-interval", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=60, help="seconds excluded from the RSS band (default 60)")
    ap.add_argument("--rss-band-pct", type=float, default=25)
    ap.add_argument("--rss-band-min-mb", type=float, default=8)
    ap.add_argument("--max-log-lines", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=10, help="per-step client timeout, s")
    ap.add_argument("--shards", type=int, default=None, help="pass --shards to the server")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    if a.duration <= 0 or a.duration > 7200:
        sys.exit("--duration must be in (0, 7200]")

    nofile = common.raise_nofile(a.conns + 1000)
    outd = common.out_dir("churn")
    port = common.free_port()
    srv_args = ["--shards", str(a.shards)] if a.shards else []
    server = common.Server(a.server_bin, port, outd / "server.log", args=srv_args)
    server.start()
    time.sleep(0.5)
    base_fds, base_rss = server.fds(), server.rss_kb()
    print(f"# churn_soak {common.now_utc()} server={a.server_bin} pid={server.pid} port={port} "
          f"baseline fds={base_fds} rss_kb={base_rss} nofile={nofile} out={outd}", flush=True)

    W = max(1, a.workers)
    t_start = time.monotonic()
    cfg_base = dict(port=port, ips=common.source_ips(a.source_ips), timeout=a.timeout, channels=a.channels,
                    subs_per_client=a.subs_per_client, publisher_fraction=a.publisher_fraction,
                    events_per_publisher=a.events_per_publisher, clean_fraction=a.clean_fraction,
                    rst_fraction=a.rst_fraction, workers=W, seed=a.seed, t_end=t_start + a.duration)
    ctx = mp.get_context("fork")
    errq = ctx.Queue()
    stop = ctx.Event()
    arrays, procs = [], []
    for w in range(W):
        cfg = dict(cfg_base, target=a.conns // W + (1 if w < a.conns % W else 0), rate=a.rate / W)
        arr = ctx.Array("q", len(COUNTERS), lock=False)
        arrays.append(arr)
        p = ctx.Process(target=worker_main, args=(cfg, w, arr, errq, stop), daemon=True)
        p.start()
        procs.append(p)

    def totals():
        return {name: sum(arr[i] for arr in arrays) for i, name in enumerate(COUNTERS)}

    rows = []
    cpu0 = server.cpu_s() or 0.0
    peak_rss = base_rss or 0
    print("t_s,rss_kb,fds,live_conns,connects_total,failures,server_cpu_pct,client_cpu_pct", flush=True)

    def sample(t_rel, last):
        nonlocal peak_rss
        tot = totals()
        rss, fds, cpu = server.rss_kb(), server.fds(), server.cpu_s()
        now = time.monotonic()
        scpu = ((cpu - last["cpu"]) / (now - last["t"]) * 100) if cpu is not None and now > last["t"] else None
        ccpu = ((tot["cpu_ms"] - last["ccpu"]) / 1000 / (now - last["t"]) * 100) if now > last["t"] else None
        last.update(cpu=cpu or last["cpu"], t=now, ccpu=tot["cpu_ms"])
        row = dict(t_s=round(t_rel, 1), rss_kb=rss, fds=fds, live_conns=tot["live"], connects_total=tot["connects"],
                   failures=tot["failures"], server_cpu_pct=None if scpu is None else round(scpu, 1),
                   client_cpu_pct=None if ccpu is None else round(ccpu, 1))
        if rss:
            peak_rss = max(peak_rss, rss)
        rows.append(row)
        print(",".join("" if row[k] is None else str(row[k]) for k in row), flush=True)
        return row

    last = dict(cpu=cpu0, t=time.monotonic(), ccpu=0)
    sample(0.0, last)
    next_sample = t_start + a.sample_interval
    server_died = None
    while time.monotonic() < t_start + a.duration:
        time.sleep(min(1.0, max(0.0, t_start + a.duration - time.monotonic())))
        r = server.rss_kb()
        if r:
            peak_rss = max(peak_rss, r)
        if not server.alive():
            server_died = server.exit_description()
            print(f"# SERVER DIED at t={time.monotonic() - t_start:.1f}s: {server_died}", flush=True)
            break
        if time.monotonic() >= next_sample:
            sample(time.monotonic() - t_start, last)
            next_sample += a.sample_interval
    stop.set()
    t_stop = time.monotonic()
    for p in procs:
        p.join(timeout=40)
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(5)
    # fds back to baseline?
    fds_back_s = None
    deadline = time.monotonic() + 20
    while server.alive() and time.monotonic() < deadline:
        if server.fds() == base_fds:
            fds_back_s = round(time.monotonic() - t_stop, 2)
            break
        time.sleep(0.2)
    time.sleep(1.0)
    end_row = sample(time.monotonic() - t_start, last) if server.alive() else None
    m = common.metrics(port) if server.alive() else {}
    tot = totals()
    errors = []
    while not errq.empty():
        errors.append(errq.get_nowait())
    exit_desc = server.stop()
    logs = common.log_stats(server.log_path)

    post = [r for r in rows if r["t_s"] >= a.warmup and r["rss_kb"] and r is not end_row]
    band = None
    if post:
        lo, hi = min(r["rss_kb"] for r in post), max(r["rss_kb"] for r in post)
        limit = max(lo * a.rss_band_pct / 100, a.rss_band_min_mb * 1024)
        slope = common.linear_slope([r["t_s"] for r in post], [r["rss_kb"] for r in post])
        band = dict(samples=len(post), min_kb=lo, max_kb=hi, band_kb=hi - lo, limit_kb=round(limit),
                    ok=(hi - lo) <= limit, slope_kb_per_min=None if slope is None else round(slope * 60, 1))
    elapsed = t_stop - t_start
    achieved_rate = (tot["connects"] - a.conns) / elapsed if elapsed > 0 else 0
    fds_end = end_row["fds"] if end_row else None
    checks = {
        "server_alive": server_died is None,
        "failures_zero": tot["failures"] == 0,
        "fds_back_to_baseline": fds_end == base_fds,
        "rss_band": band["ok"] if band else None,
        "log_lines_ok": logs["lines"] <= a.max_log_lines,
    }
    load_ok = achieved_rate >= 0.8 * a.rate
    passed = all(v is not False for v in checks.values())
    disc = {k[len("framecast_disconnects_total"):]: v for k, v in m.items()
            if k.startswith("framecast_disconnects_total")}
    summary = dict(
        script="churn_soak", date=common.now_utc(), binary=common.binary_info(a.server_bin),
        params=vars(a), port=port, nofile=nofile, out_dir=str(outd),
        baseline=dict(fds=base_fds, rss_kb=base_rss), curve=rows, end=end_row, peak_rss_kb=peak_rss,
        fds_back_after_s=fds_back_s, rss_band=band, totals=tot, achieved_replace_rate=round(achieved_rate, 1),
        load_reached_target=load_ok, client_cpu_s=round(tot["cpu_ms"] / 1000, 1),
        client_cpu_pct_of_one_core=round(tot["cpu_ms"] / 1000 / elapsed * 100, 1) if elapsed else None,
        server_metrics=dict(connects_total=m.get("framecast_connects_total"), connections=m.get("framecast_connections"),
                            disconnects=disc),
        failure_examples=errors, server_exit=exit_desc, server_died=server_died, log=logs, checks=checks,
        verdict="PASS" if passed else "FAIL")
    common.write_json(a.json_out, summary)
    print(f"# totals: {json.dumps(tot)}")
    print(f"# replaced/s achieved={achieved_rate:.1f} (target {a.rate}); client CPU "
          f"{summary['client_cpu_pct_of_one_core']}% of one core over {W} workers; peak RSS {peak_rss} kB")
    print(f"# rss band after warm-up: {json.dumps(band)}")
    print(f"# fds: baseline={base_fds} end={fds_end} (back after {fds_back_s}s); server metrics: "
          f"{json.dumps(summary['server_metrics'])}")
    print(f"# server log: {logs['lines']} lines {logs['by_level']}; server exit: {exit_desc}")
    for e in errors[:10]:
        print(f"# failure example: {e}")
    note = "" if load_ok else f" [load below target: {achieved_rate:.0f}/s of {a.rate:.0f}/s — client-bound?]"
    print(f"VERDICT churn_soak: {summary['verdict']} failures={tot['failures']} fds_end={fds_end} "
          f"baseline={base_fds} rss_band_kb={band['band_kb'] if band else 'n/a'}"
          f"/{band['limit_kb'] if band else 'n/a'} log_lines={logs['lines']} "
          f"connects={tot['connects']} checks={json.dumps(checks)}{note}", flush=True)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()

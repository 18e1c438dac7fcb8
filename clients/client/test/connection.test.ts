/** Connection behaviour with real faults: half-open detection, backoff, its reset, a full server. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { backoffDelay, DEFAULT_RECONNECT, FramecastClient, type StateChange } from "@framecast/client";
import { FaultProxy, FramecastServer, fresh, publish, sleep, waitFor } from "@framecast/testkit";
import { range, Recorder } from "./helpers.js";

let server: FramecastServer;
const cleanup: (() => unknown)[] = [];
before(async () => {
  server = await FramecastServer.start({ config: `[namespaces.hist]\nhistory_size = 1000\n` });
});
after(async () => {
  for (const f of cleanup.reverse()) await f();
  await server?.stop();
});

async function proxied(): Promise<FaultProxy> {
  const p = await FaultProxy.start(server.port);
  cleanup.push(() => p.close());
  return p;
}

describe("connection", { timeout: 120_000 }, () => {
  test("a half-open connection is detected by the heartbeat; events published meanwhile are recovered", async () => {
    const p = await proxied();
    const c = new FramecastClient({ url: p.wsUrl, heartbeat: { intervalMs: 300, timeoutMs: 1000 } });
    cleanup.push(() => c.close());
    const states: StateChange[] = [];
    c.on("state", (s) => states.push(s));
    await c.connect();
    const ch = fresh("hist:half");
    const rec = new Recorder(c.channel(ch));
    c.subscribe(ch);
    await waitFor(() => rec.caughtUp === 1, "subscribed");
    await publish(server.httpUrl, ch, 1);
    await waitFor(() => rec.events.length === 1, "first event");
    p.blackhole(true); // TCP stays up, nothing passes: only a heartbeat can tell
    for (let i = 2; i <= 5; i++) await publish(server.httpUrl, ch, i);
    await waitFor(() => states.some((s) => s.to === "reconnecting" && s.reason === "heartbeat timeout"), "heartbeat timeout", 15_000);
    p.blackhole(false);
    await waitFor(() => rec.events.length === 5, () => `recovered: ${rec.log.join(" ")}`, 15_000);
    assert.deepEqual(rec.liveSeqs(), range(1, 5));
    assert.equal(rec.subscribed.at(-1)!.recovered, true);
  });

  test("backoff: full jitter under min(cap, base·2^n), still spread at the cap, one TCP attempt per try", async () => {
    const p = await proxied();
    p.refuse(true);
    const o = { baseMs: 20, capMs: 160 };
    const c = new FramecastClient({ url: p.wsUrl, reconnect: o });
    cleanup.push(() => c.close());
    const waits: { ms: number; attempt: number }[] = [];
    c.on("state", (s) => {
      if (s.to === "reconnecting") waits.push({ ms: s.retryInMs!, attempt: s.attempt! });
    });
    void c.connect().catch(() => {});
    await waitFor(() => waits.length >= 25, "25 attempts", 30_000);
    c.close();
    for (const [i, w] of waits.entries()) {
      assert.equal(w.attempt, i + 1);
      assert.ok(w.ms >= 0 && w.ms < Math.min(o.capMs, o.baseMs * 2 ** i), `attempt ${i}: ${w.ms} ms`);
    }
    const atCap = waits.slice(4).map((w) => w.ms);
    assert.ok(new Set(atCap).size > 5, `spread at the cap: ${atCap.join(",")}`);
    await sleep(300);
    assert.ok(Math.abs(p.accepted - waits.length) <= 1, `${p.accepted} TCP connects for ${waits.length} waits`);
    // The default schedule: 250 ms base, 30 s cap.
    assert.equal(backoffDelay(0, DEFAULT_RECONNECT, () => 0.999), 249);
    assert.equal(backoffDelay(40, DEFAULT_RECONNECT, () => 0.5), 15_000);
  });

  test("the attempt counter resets only after resetAfterMs connected", async () => {
    const p = await proxied();
    const c = new FramecastClient({ url: p.wsUrl, reconnect: { baseMs: 10, capMs: 50, resetAfterMs: 1500 } });
    cleanup.push(() => c.close());
    const attempts: number[] = [];
    c.on("state", (s) => {
      if (s.to === "reconnecting") attempts.push(s.attempt!);
    });
    await c.connect();
    for (let i = 0; i < 3; i++) {
      p.cut();
      await waitFor(() => attempts.length === i + 1 && c.state === "connected", "back");
    }
    assert.deepEqual(attempts, [1, 2, 3], "short connections do not reset the counter");
    await sleep(1700);
    p.cut();
    await waitFor(() => attempts.length === 4 && c.state === "connected", "back");
    assert.equal(attempts[3], 1, "reset after a long enough connection");
  });

  test("a full server (max_connections): turned away (1013 + hint; HTTP 503 on older servers) → retries, never failed; connects once room frees", async () => {
    const full = await FramecastServer.start({ args: ["--max-connections", "1"] });
    cleanup.push(() => full.stop());
    const a = new FramecastClient({ url: full.wsUrl });
    cleanup.push(() => a.close());
    await a.connect();
    const b = new FramecastClient({ url: full.wsUrl, reconnect: { baseMs: 50, capMs: 300 } });
    cleanup.push(() => b.close());
    const states: StateChange[] = [];
    b.on("state", (s) => states.push(s));
    const connected = b.connect();
    await waitFor(() => states.filter((s) => s.to === "reconnecting").length >= 2, "b retries");
    assert.notEqual(b.state, "failed");
    a.close();
    await connected;
    assert.equal(b.state, "connected");
  });

  test("close() while connecting: no socket is left, no reconnect", async () => {
    const p = await proxied();
    const c = new FramecastClient({ url: p.wsUrl });
    const pending = c.connect();
    c.close();
    await assert.rejects(pending, (e: { code?: string }) => e.code === "CLOSED");
    await sleep(500);
    assert.equal(c.state, "closed");
    assert.equal(p.connections, 0);
  });
});

/** Real restarts: SIGTERM (reconnect hints, 1001), a new process on the same port (new epochs). */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { FramecastClient, type StateChange } from "@framecast/client";
import { FaultProxy, FramecastServer, fresh, publish, sleep, waitFor } from "@framecast/testkit";
import { range, Recorder } from "./helpers.js";

const CONFIG = `
drain_timeout = "2s"
[namespaces.snap]
history_size = 100
snapshot = true
[namespaces.fleet]
history_size = 1000
snapshot = true
`;

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

describe("restarts", { timeout: 180_000 }, () => {
  test("restart → reconnect hint honoured, resync from the new process's snapshot", async () => {
    let server = await FramecastServer.start({ config: CONFIG });
    cleanup.push(() => server.stop());
    const p = await FaultProxy.start(server.port);
    cleanup.push(() => p.close());
    const c = new FramecastClient({ url: p.wsUrl });
    cleanup.push(() => c.close());
    const states: (StateChange & { at: number })[] = [];
    c.on("state", (s) => states.push({ ...s, at: Date.now() }));
    let hint: { afterMs: number; at: number } | null = null;
    // The client's own reading time of the hint (a listener may run later on a loaded host).
    c.on("draining", (d) => (hint = { afterMs: d.afterMs, at: d.receivedAt }));
    await c.connect();
    const ch = fresh("snap:room");
    const rec = new Recorder(c.channel(ch));
    const store = new Map<string, unknown>();
    c.channel(ch).on("resync", () => store.clear());
    c.channel(ch).on("event", (e) => store.set(e.key ?? "", e.data));
    c.subscribe(ch);
    await waitFor(() => rec.caughtUp === 1, "subscribed");
    await publish(server.httpUrl, ch, "a1", { key: "a" });
    await publish(server.httpUrl, ch, "b1", { key: "b" });
    await waitFor(() => store.size === 2, "two keys");
    const oldEpoch = c.channel(ch).position!.epoch;
    // Hold the client off while the new process gets new state.
    server = await server.restart(async () => {
      p.refuse(true);
    });
    p.targetPort = server.port;
    assert.ok(hint, "a reconnect hint arrived before the close");
    assert.ok(states.some((s) => s.to === "draining"));
    await publish(server.httpUrl, ch, "a2", { key: "a" });
    await publish(server.httpUrl, ch, "c2", { key: "c" });
    await waitFor(async () => {
      const r = await fetch(`${server.httpUrl}/api/v1/channels/${encodeURIComponent(ch)}`);
      return r.ok && ((await r.json()) as { last_seq: number }).last_seq === 2;
    }, "the new process has 2 events");
    p.refuse(false);
    await waitFor(() => rec.caughtUp === 2 && store.size === 2, () => `resynced: ${rec.log.join(" ")}`);
    assert.equal(rec.resyncs.length, 1);
    assert.deepEqual(Object.fromEntries(store), { a: "a2", c: "c2" }, "old state dropped, snapshot applied");
    const snap = rec.events.slice(-2);
    assert.ok(snap.every((e) => e.snapshot));
    assert.notEqual(c.channel(ch).position!.epoch, oldEpoch, "new epoch");
    await publish(server.httpUrl, ch, "b3", { key: "b" });
    await waitFor(() => store.get("b") === "b3", "live delta after the snapshot");
    assert.equal(rec.events.at(-1)!.seq, 3);
    assert.equal(rec.violations.length, 0);
    // The first attempt after the hint started no earlier than after_ms.
    const h = hint as unknown as { afterMs: number; at: number };
    const firstConnecting = states.find((s) => s.to === "connecting" && s.at >= h.at);
    assert.ok(firstConnecting, "reconnected");
    assert.ok(firstConnecting.at - h.at >= h.afterMs - 1, `first attempt ${firstConnecting.at - h.at} ms after the hint, after_ms ${h.afterMs}`);
  });

  test("200 clients across a restart: hints spread them out, nothing is lost", async () => {
    let server = await FramecastServer.start({ config: CONFIG });
    cleanup.push(() => server.stop());
    const ch = fresh("fleet:all");
    const N = 200;
    const clients: FramecastClient[] = [];
    const stores: Map<string, unknown>[] = [];
    const recs: Recorder[] = [];
    const hints: number[] = [];
    const firstAttempt: number[] = [];
    const hintAt: number[] = [];
    for (let i = 0; i < N; i++) {
      const c = new FramecastClient({ url: server.wsUrl });
      clients.push(c);
      cleanup.push(() => c.close());
      const store = new Map<string, unknown>();
      stores.push(store);
      const chan = c.channel(ch);
      recs.push(new Recorder(chan));
      chan.on("resync", () => store.clear());
      chan.on("event", (e) => store.set(e.key!, e.data));
      c.on("draining", (d) => {
        if (hintAt[i] !== undefined) return; // the first hint is the one the first attempt follows
        hints[i] = d.afterMs;
        hintAt[i] = d.receivedAt;
      });
      c.on("state", (s) => {
        if (s.to === "connecting" && hintAt[i] !== undefined && firstAttempt[i] === undefined) firstAttempt[i] = Date.now();
      });
      c.subscribe(ch);
    }
    await Promise.all(clients.map((c) => c.connect()));
    await waitFor(() => recs.every((r) => r.caughtUp === 1), "all subscribed", 60_000);
    for (let k = 1; k <= 10; k++) await publish(server.httpUrl, ch, k, { key: `e${k}` });
    await waitFor(() => stores.every((s) => s.size === 10), "all have the first 10", 60_000);
    const t0 = Date.now();
    server = await server.restart();
    // Published while the fleet comes back: live for some, snapshot for the others.
    for (let k = 11; k <= 20; k++) await publish(server.httpUrl, ch, k, { key: `e${k}` });
    await waitFor(() => recs.every((r) => r.caughtUp === 2), () => `${recs.filter((r) => r.caughtUp === 2).length}/${N} resubscribed`, 60_000);
    const back = Date.now() - t0;
    for (let k = 21; k <= 30; k++) await publish(server.httpUrl, ch, k, { key: `e${k}` });
    const want = range(11, 30).map((k) => `e${k}`).sort();
    await waitFor(
      () => stores.every((s) => s.size === 20),
      () => `${stores.filter((s) => s.size === 20).length}/${N} complete`,
      60_000,
    );
    for (let i = 0; i < N; i++) {
      assert.deepEqual([...stores[i]!.keys()].sort(), want, `client ${i}`);
      assert.equal(recs[i]!.violations.length, 0, `client ${i}: ${JSON.stringify(recs[i]!.violations)}`);
      assert.equal(recs[i]!.resyncs.length, 1, `client ${i} resynced once`);
      assert.deepEqual(recs[i]!.events.slice(0, 10).map((e) => e.seq), range(1, 10), `client ${i}: first epoch once, in order`);
      assert.ok(firstAttempt[i]! - hintAt[i]! >= hints[i]! - 1, `client ${i} waited after_ms: ${firstAttempt[i]! - hintAt[i]!} < ${hints[i]}`);
    }
    const spread = Math.max(...hints) - Math.min(...hints);
    console.log(`# 200 clients: all resubscribed ${back} ms after SIGTERM (hints spread over ${spread} ms)`);
    assert.ok(spread >= 1000, "hints spread over the drain window");
    for (const c of clients) c.close();
    await sleep(100);
  });
});

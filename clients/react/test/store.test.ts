/** The stores behind the hooks, against a real server: shared per channel, lingering after
 * release, snapshot then deltas, a bounded log that survives reconnects, resync clears. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FramecastClient } from "@framecast/client";
import { StoreRegistry } from "@framecast/react";
import { FaultProxy, FramecastServer, fresh, publish, sleep, waitFor } from "@framecast/testkit";

let server: FramecastServer;
const cleanup: (() => unknown)[] = [];
before(async () => {
  server = await FramecastServer.start({
    config: `[namespaces.pos]\ndelivery = "conflated"\nsnapshot = true\nhistory_size = 100\n[namespaces.tokens]\nhistory_size = 5000\n[namespaces.snap]\nhistory_size = 5\nsnapshot = true\n`,
  });
});
after(async () => {
  for (const f of cleanup.reverse()) await f();
  await server?.stop();
});

describe("stores", { timeout: 60_000 }, () => {
  test("one subscription per channel; a released channel lingers, then unsubscribes", async () => {
    const c = new FramecastClient({ url: server.wsUrl });
    cleanup.push(() => c.close());
    await c.connect();
    const reg = new StoreRegistry(c, 300);
    const ch = fresh("pos:a");
    const s1 = reg.get(ch);
    s1.acquire();
    s1.release(); // StrictMode: mount, unmount, mount
    s1.acquire();
    const s2 = reg.get(ch);
    assert.equal(s1, s2);
    s2.acquire();
    await waitFor(() => s1.status === "live", "live");
    assert.deepEqual(await c.subscriptions(), [ch]);
    s1.release();
    s2.release();
    await sleep(100);
    assert.deepEqual(await c.subscriptions(), [ch], "still subscribed during the linger");
    await waitFor(async () => (await c.subscriptions()).length === 0, "unsubscribed after the linger");
    assert.deepEqual(reg.names(), []);
  });

  test("keyed state: snapshot then deltas; stable snapshots between changes", async () => {
    const ch = fresh("pos:b");
    await publish(server.httpUrl, ch, { x: 1 }, { key: "a" });
    await publish(server.httpUrl, ch, { x: 2 }, { key: "b" });
    await sleep(100);
    const c = new FramecastClient({ url: server.wsUrl });
    cleanup.push(() => c.close());
    await c.connect();
    const s = new StoreRegistry(c).get<{ x: number }>(ch);
    s.acquire();
    await waitFor(() => s.keyed().size === 2, "snapshot");
    assert.ok([...s.byKey.values()].every((e) => e.snapshot));
    const snap = s.keyed();
    assert.equal(s.keyed(), snap, "same object while nothing changed");
    await publish(server.httpUrl, ch, { x: 3 }, { key: "a" });
    await waitFor(() => s.keyed().get("a")?.x === 3, "delta");
    assert.notEqual(s.keyed(), snap);
    assert.equal(s.keyed().get("b")!.x, 2);
    assert.equal(s.violations, 0);
    s.release();
  });

  test("the stream survives a reconnect: every token once, in order; resync clears it", async () => {
    const p = await FaultProxy.start(server.port);
    cleanup.push(() => p.close());
    const c = new FramecastClient({ url: p.wsUrl, reconnect: { baseMs: 50, capMs: 300 } });
    cleanup.push(() => c.close());
    await c.connect();
    const ch = fresh("tokens:t");
    const s = new StoreRegistry(c).get<string>(ch);
    s.limit = 50;
    s.acquire();
    await waitFor(() => s.status === "live", "live");
    for (let i = 0; i < 80; i++) {
      await publish(server.httpUrl, ch, `t${i}`);
      if (i === 40) p.cut();
    }
    await waitFor(() => s.log.at(-1)?.data === "t79", () => `last token (${s.log.at(-1)?.data})`);
    assert.equal(s.log.length, 50, "bounded");
    assert.deepEqual(s.stream().map((e) => e.data), Array.from({ length: 50 }, (_, i) => `t${i + 30}`));
    assert.equal(s.resyncs, 0);
    s.release();

    const ch2 = fresh("snap:r");
    const r = new StoreRegistry(c).get<number>(ch2);
    r.limit = 100;
    r.acquire();
    await waitFor(() => r.status === "live", "live");
    await publish(server.httpUrl, ch2, 1);
    await waitFor(() => r.log.length === 1, "one");
    p.refuse(true);
    p.cut();
    await waitFor(() => c.state === "reconnecting", "down");
    for (let i = 2; i <= 20; i++) await publish(server.httpUrl, ch2, i);
    await sleep(100);
    p.refuse(false);
    await waitFor(() => r.resyncs === 1 && r.status === "live", "resynced");
    assert.deepEqual(r.stream().map((e) => e.data), [20], "cleared, then the snapshot");
    r.release();
  });
});

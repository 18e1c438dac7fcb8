/** Tick batches and binary events against a real framecast process (Node's `ws` also offers
 * permessage-deflate, so these events arrive compressed once per event, or per batch, by the
 * server). */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FramecastClient, type ClientOptions, type FramecastEvent } from "@framecast/client";
import { FaultProxy, FramecastServer, fresh, publish, waitFor } from "@framecast/testkit";
import { range, Recorder } from "./helpers.js";

// A slow frame clock, so that events published together share a tick.
const CONFIG = `
tick_hz = 2
[namespaces.hist]
history_size = 100
[namespaces.snap]
history_size = 10
snapshot = true
`;

let server: FramecastServer;
const clients: FramecastClient[] = [];
const proxies: FaultProxy[] = [];

function client(extra: Partial<ClientOptions> = {}): FramecastClient {
  const c = new FramecastClient({ url: server.wsUrl, reconnect: { baseMs: 100, capMs: 1000 }, ...extra });
  clients.push(c);
  return c;
}

before(async () => {
  server = await FramecastServer.start({ config: CONFIG });
});

after(async () => {
  for (const c of clients) c.close();
  for (const p of proxies) await p.close();
  await server?.stop();
});

describe("wire forms", { timeout: 60_000 }, () => {
  test("a batch client gets every event once, in order, as a plain client does", async () => {
    const ch = fresh("hist:batch");
    const batched = client({ batch: true });
    const plain = client();
    assert.equal((await batched.connect()).batch, true, "the server says it batches");
    assert.equal((await plain.connect()).batch, false);
    const got = new Recorder(batched.channel(ch));
    const want = new Recorder(plain.channel(ch));
    batched.subscribe(ch);
    plain.subscribe(ch);
    await waitFor(() => got.caughtUp === 1 && want.caughtUp === 1, "both caught up");
    await Promise.all(range(1, 20).map((i) => publish(server.httpUrl, ch, { i, x: i + 0.5 })));
    await waitFor(() => got.events.length === 20 && want.events.length === 20, "20 events each");
    assert.deepEqual(got.liveSeqs(), range(1, 20));
    assert.deepEqual(
      got.events.map((e) => e.data),
      want.events.map((e) => e.data),
    );
    assert.equal(got.violations.length, 0);
  });
});

/** Publishes `bytes` as a binary event over HTTP (`Content-Type: application/octet-stream`). */
async function broadcastBytes(channel: string, bytes: Uint8Array, query: Record<string, string> = {}): Promise<void> {
  const q = new URLSearchParams({ channel, ...query });
  const res = await fetch(`${server.httpUrl}/api/v1/broadcast?${q}`, {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`binary broadcast answered ${res.status}: ${text}`);
}

async function lastSeq(channel: string): Promise<number> {
  const r = await fetch(`${server.httpUrl}/api/v1/channels/${encodeURIComponent(channel)}`);
  return r.ok ? ((await r.json()) as { last_seq: number }).last_seq : -1;
}

const f32 = (xs: number[]): Uint8Array => new Uint8Array(new Float32Array(xs).buffer);
const asF32 = (d: unknown): number[] => {
  assert.ok(d instanceof Uint8Array, `data is a Uint8Array: ${String(d)}`);
  return [...new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4)];
};
/** What an application sees of an event: bytes or JSON, with its seq, key and kind. */
const seen = (e: FramecastEvent<unknown>): unknown[] => [
  e.seq,
  e.eventType,
  e.key ?? null,
  e.snapshot,
  e.data instanceof Uint8Array ? ["bytes", ...e.data] : ["json", e.data],
];

describe("binary events", { timeout: 90_000 }, () => {
  test("HTTP octet-stream: binary, JSON, batch and binary+batch subscribers all get the same bytes", async () => {
    const ch = fresh("hist:bin");
    const forms = {
      binary: client({ binary: true }),
      json: client(),
      batch: client({ batch: true }),
      binaryBatch: client({ binary: true, batch: true }),
    };
    const recs = Object.fromEntries(
      await Promise.all(
        Object.entries(forms).map(async ([name, c]) => {
          await c.connect();
          const rec = new Recorder(c.channel(ch));
          c.subscribe(ch);
          return [name, rec] as const;
        }),
      ),
    );
    await waitFor(() => Object.values(recs).every((r) => r.caughtUp === 1), "all caught up");
    // Published together, so that ticks (2 Hz) mix binary and JSON events.
    await Promise.all([
      broadcastBytes(ch, f32([1.5, -2.25, 3e9]), { event_type: "f32" }),
      broadcastBytes(ch, new Uint8Array([0, 1, 0xfe, 0xff]), { event_type: "raw", key: "k1" }),
      publish(server.httpUrl, ch, { json: true }),
      broadcastBytes(ch, new Uint8Array(0)),
    ]);
    await waitFor(() => Object.values(recs).every((r) => r.events.length === 4), () =>
      Object.entries(recs).map(([n, r]) => `${n}: ${r.log.join(" ")}`).join("; "),
    );
    const want = recs.json!.events.map(seen);
    for (const [name, rec] of Object.entries(recs)) {
      assert.deepEqual(rec.liveSeqs(), [1, 2, 3, 4], name);
      assert.deepEqual(rec.events.map(seen), want, `${name} sees what a JSON client sees`);
      assert.equal(rec.violations.length, 0, name);
    }
    const f = recs.json!.events.find((e) => e.eventType === "f32")!;
    assert.deepEqual(asF32(f.data), [1.5, -2.25, 3e9]);
    const untyped = recs.json!.events.find((e) => e.data instanceof Uint8Array && e.data.length === 0)!;
    assert.equal(untyped.eventType, "message", "event_type defaults to message");
    const enc = (name: string): string[] => recs[name]!.events.map((e) => e.encoding).sort();
    assert.deepEqual(enc("binary"), ["binary", "binary", "binary", "json"], "binary frames on ?binary=1");
    assert.deepEqual(enc("binaryBatch"), ["binary", "binary", "binary", "json"]);
    assert.deepEqual(enc("json"), ["base64", "base64", "base64", "json"], "base64 without it");
    assert.deepEqual(enc("batch"), ["base64", "base64", "base64", "json"]);
    for (const e of recs.binary!.events.filter((x) => x.encoding === "binary")) {
      const d = e.data as Uint8Array;
      assert.equal(d.byteOffset % 8, 0, "payload 8-aligned");
      assert.equal(d.byteOffset + d.byteLength, d.buffer.byteLength, "a view onto the received message");
    }
  });

  test("publishBinary reaches other clients: a Float32Array round trip, acknowledged with its seq", async () => {
    const ch = fresh("hist:pubbin");
    const publisher = client();
    const bin = client({ binary: true });
    const plain = client();
    await Promise.all([publisher.connect(), bin.connect(), plain.connect()]);
    const got = new Recorder(bin.channel(ch));
    const gotJson = new Recorder(plain.channel(ch));
    bin.subscribe(ch);
    plain.subscribe(ch);
    await waitFor(() => got.caughtUp === 1 && gotJson.caughtUp === 1, "caught up");
    const ack = await publisher.publishBinary(ch, new Float32Array([1.5, -2.25, 3e9]), { eventType: "f32", key: "pos" });
    assert.equal(ack.channel, ch);
    assert.equal(ack.seq, 1);
    assert.equal(typeof ack.frame, "number");
    const ack2 = await bin.publishBinary(ch, new Uint8Array([1, 2, 3]).buffer);
    assert.equal(ack2.seq, 2);
    await waitFor(() => got.events.length === 2 && gotJson.events.length === 2, "two events each");
    for (const [rec, encoding] of [[got, "binary"], [gotJson, "base64"]] as const) {
      const [a, b] = rec.events;
      assert.equal(a!.encoding, encoding);
      assert.equal(a!.eventType, "f32");
      assert.equal(a!.key, "pos");
      assert.equal(a!.frame, ack.frame);
      assert.deepEqual(asF32(a!.data), [1.5, -2.25, 3e9]);
      assert.equal(b!.eventType, "message");
      assert.equal(b!.key, undefined);
      assert.deepEqual([...(b!.data as Uint8Array)], [1, 2, 3]);
    }
    assert.equal(got.events[0]!.timestamp, gotJson.events[0]!.timestamp, "the same tick time either way");
    await assert.rejects(publisher.publishBinary(ch, new Uint8Array(1), { eventType: "t".repeat(256) }), (e: { code?: string }) =>
      typeof e.code === "string" && e.code !== "TIMEOUT",
    );
  });

  test("binary events are kept: snapshot to a new subscriber, replay after a reconnect, both as binary frames", async () => {
    const ch = fresh("snap:bin");
    await broadcastBytes(ch, f32([1, 2]), { event_type: "f32", key: "a" });
    await broadcastBytes(ch, f32([3, 4]), { event_type: "f32", key: "b" });
    await waitFor(async () => (await lastSeq(ch)) === 2, "2 published");
    const p = await FaultProxy.start(server.port);
    proxies.push(p);
    const bin = client({ url: p.wsUrl, binary: true });
    const plain = client();
    await Promise.all([bin.connect(), plain.connect()]);
    const rec = new Recorder(bin.channel(ch));
    const recJson = new Recorder(plain.channel(ch));
    bin.subscribe(ch);
    plain.subscribe(ch);
    await waitFor(() => rec.caughtUp === 1 && recJson.caughtUp === 1, "snapshots complete");
    for (const [r, encoding] of [[rec, "binary"], [recJson, "base64"]] as const) {
      assert.deepEqual(r.events.map((e) => [e.seq, e.key, e.snapshot, e.encoding, asF32(e.data)]), [
        [1, "a", true, encoding, [1, 2]],
        [2, "b", true, encoding, [3, 4]],
      ]);
    }
    // Away while two more are published: recovered with since, replayed as binary frames.
    p.refuse(true);
    p.cut();
    await waitFor(() => bin.state === "reconnecting", "reconnecting");
    await assert.rejects(bin.publishBinary(ch, f32([5]), { key: "a" }), (e: { code?: string }) => e.code === "NOT_CONNECTED");
    await plain.publishBinary(ch, f32([5]), { eventType: "f32", key: "a" });
    await broadcastBytes(ch, f32([6]), { event_type: "f32", key: "c" });
    await waitFor(async () => (await lastSeq(ch)) === 4, "4 published");
    p.refuse(false);
    await waitFor(() => rec.caughtUp === 2 && rec.events.length === 4, () => `recovered: ${rec.log.join(" ")}`);
    assert.equal(rec.subscribed[1]!.recovered, true);
    assert.deepEqual(rec.events.slice(2).map((e) => [e.seq, e.key, e.replay, e.encoding, asF32(e.data)]), [
      [3, "a", true, "binary", [5]],
      [4, "c", true, "binary", [6]],
    ]);
    assert.deepEqual(bin.channel(ch).position?.seq, 4);
    await bin.publishBinary(ch, f32([7]), { eventType: "f32", key: "b" });
    await waitFor(() => rec.events.length === 5 && recJson.events.length === 5, "a live one");
    assert.deepEqual(rec.liveSeqs(), [3, 4, 5]);
    assert.equal(rec.events[4]!.replay, false);
    assert.deepEqual(recJson.events.map((e) => e.data instanceof Uint8Array && asF32(e.data)), [[1, 2], [3, 4], [5], [6], [7]]);
    assert.equal(rec.violations.length + recJson.violations.length, 0);
  });
});

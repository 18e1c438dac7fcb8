/** Binary events without a server: frames crafted byte by byte here (never with the client's own
 * helpers, so a wrong offset fails), fed to the client through a scripted socket; the binary
 * publish read back byte by byte; base64 JSON events, alone, in tick batches and as snapshots. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FramecastClient, type FramecastError, type FramecastEvent } from "@framecast/client/browser";
import { ScriptedSocket } from "./scripted.js";

interface Spec {
  channel: string;
  eventType: string;
  key?: string;
  snapshot?: boolean;
  seq: number;
  frame: number;
  timeMs: number;
  payload: Uint8Array;
  /** Header length (a multiple of 8 past the strings); default: the smallest. */
  h?: number;
}

/** A binary event frame, laid out by hand from the table in docs/protocol.md. */
function frame(s: Spec): ArrayBuffer {
  const enc = new TextEncoder();
  const c = enc.encode(s.channel);
  const t = enc.encode(s.eventType);
  const k = enc.encode(s.key ?? "");
  const end = 32 + c.length + t.length + k.length;
  const h = s.h ?? Math.ceil(end / 8) * 8;
  const buf = new ArrayBuffer(h + s.payload.length);
  const b = new Uint8Array(buf);
  b[0] = 0x01;
  b[1] = (s.snapshot ? 1 : 0) | (s.key !== undefined ? 2 : 0);
  b[2] = h & 0xff;
  b[3] = h >> 8;
  b[4] = c.length;
  b[5] = t.length;
  b[6] = k.length & 0xff;
  b[7] = k.length >> 8;
  const u64 = (at: number, n: number): void => {
    for (let i = 0; i < 8; i++) b[at + i] = Math.floor(n / 2 ** (8 * i)) % 256;
  };
  u64(8, s.seq);
  u64(16, s.frame);
  u64(24, s.timeMs);
  b.set(c, 32);
  b.set(t, 32 + c.length);
  b.set(k, 32 + c.length + t.length);
  b.fill(0xee, end, h); // padding must be skipped, whatever it holds
  b.set(s.payload, h);
  return buf;
}

const f32 = (xs: number[]): Uint8Array => new Uint8Array(new Float32Array(xs).buffer);
const asF32 = (d: Uint8Array): number[] => [...new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4)];

async function connected(extra: Record<string, unknown> = {}): Promise<{ c: FramecastClient; ws: ScriptedSocket; errors: FramecastError[] }> {
  const c = new FramecastClient({ url: "ws://scripted/ws", WebSocket: ScriptedSocket as never, heartbeat: false, ...extra });
  const errors: FramecastError[] = [];
  c.on("error", (e) => errors.push(e));
  await c.connect();
  return { c, ws: ScriptedSocket.last, errors };
}

/** Subscribes `name` and answers with `position` (counts say no snapshot/replay unless given). */
function subscribe(c: FramecastClient, ws: ScriptedSocket, name: string, position: Record<string, unknown>): FramecastEvent<Uint8Array>[] {
  const got: FramecastEvent<Uint8Array>[] = [];
  c.channel<Uint8Array>(name).subscribe((e) => got.push(e));
  const sub = ws.texts("subscribe").at(-1)!;
  ws.json({ type: "subscribed", channels: [name], positions: { [name]: { snapshot_events: 0, replay_events: 0, ...position } }, id: sub.id });
  return got;
}

describe("binary events", () => {
  test("binary: true asks for ?binary=1 and array buffers; without it, neither the query", async () => {
    const { c, ws } = await connected({ binary: true, batch: true });
    assert.match(ws.url, /[?&]binary=1(&|$)/);
    assert.match(ws.url, /[?&]batch=1(&|$)/);
    assert.equal(ws.binaryType, "arraybuffer");
    c.close();
    const plain = await connected();
    assert.doesNotMatch(plain.ws.url, /binary/);
    plain.c.close();
  });

  test("a binary frame decodes to the event a JSON event gives, data a zero-copy view at H", async () => {
    const { c, ws, errors } = await connected({ binary: true });
    const got = subscribe(c, ws, "pos:1", { seq: 2 ** 40, epoch: "e1" });
    const timeMs = Date.UTC(2026, 11, 7, 15, 0, 0, 123);
    // Strings end at 32 + 5 + 3 + 6 = 46; H = 56 leaves padding a wrong offset would read.
    const buf = frame({ channel: "pos:1", eventType: "f32", key: "avatar", seq: 2 ** 40 + 1, frame: 2 ** 33 + 7, timeMs, payload: f32([1.5, -2.25, 3e9]), h: 56 });
    ws.raw(buf);
    assert.equal(errors.length, 0, errors.map(String).join());
    assert.equal(got.length, 1);
    const e = got[0]!;
    assert.equal(e.channel, "pos:1");
    assert.equal(e.seq, 2 ** 40 + 1);
    assert.equal(e.frame, 2 ** 33 + 7);
    assert.equal(e.eventType, "f32");
    assert.equal(e.event_type, "f32");
    assert.equal(e.key, "avatar");
    assert.equal(e.snapshot, false);
    assert.equal(e.replay, false);
    assert.equal(e.encoding, "binary");
    assert.equal(e.timestamp, "2026-12-07T15:00:00.123Z");
    assert.equal(e.serverTimeMs, timeMs);
    assert.ok(e.data instanceof Uint8Array);
    assert.equal(e.data.buffer, buf, "a view onto the received buffer, no copy");
    assert.equal(e.data.byteOffset, 56);
    assert.equal(e.data.byteLength, 12);
    assert.deepEqual(asF32(e.data), [1.5, -2.25, 3e9]);
    assert.deepEqual(c.channel("pos:1").position, { seq: 2 ** 40 + 1, epoch: "e1" });
    c.close();
  });

  test("no key flag: no key; the snapshot flag; an empty payload; the smallest H", async () => {
    const { c, ws } = await connected({ binary: true });
    const got = subscribe(c, ws, "s", { seq: 3, epoch: "e1", snapshot_events: 1 });
    ws.raw(frame({ channel: "s", eventType: "message", snapshot: true, seq: 2, frame: 9, timeMs: 0, payload: new Uint8Array(0) }));
    ws.raw(frame({ channel: "s", eventType: "x", seq: 4, frame: 10, timeMs: 1, payload: new Uint8Array([7]) }));
    assert.equal(got.length, 2);
    assert.equal(got[0]!.snapshot, true);
    assert.equal("key" in got[0]!, false);
    assert.equal(got[0]!.data.byteLength, 0);
    assert.equal(got[0]!.timestamp, "1970-01-01T00:00:00.000Z");
    assert.equal(got[1]!.snapshot, false);
    assert.deepEqual([...got[1]!.data], [7]);
    assert.equal(c.channel("s").state, "live", "the binary snapshot event counted toward snapshot_events");
    assert.deepEqual(c.channel("s").position, { seq: 4, epoch: "e1" });
    c.close();
  });

  test("a Node Buffer slice: copied when the payload would start unaligned, viewed when aligned", async () => {
    const { c, ws } = await connected({ binary: true });
    const got = subscribe(c, ws, "b", { seq: 0, epoch: "e1" });
    const bytes = new Uint8Array(frame({ channel: "b", eventType: "f32", seq: 1, frame: 1, timeMs: 5, payload: f32([1.5, -2.25, 3e9]) }));
    for (const shift of [3, 4, 8]) {
      const pool = Buffer.alloc(bytes.length + shift + 5, 0xaa);
      pool.set(bytes, shift);
      const slice = pool.subarray(shift, shift + bytes.length);
      ws.raw(slice);
      const e = got.at(-1)!;
      assert.equal(e.data.byteOffset % 8, 0, `shift ${shift}: aligned`);
      assert.deepEqual(asF32(e.data), [1.5, -2.25, 3e9], `shift ${shift}`);
      assert.deepEqual(new Float64Array(e.data.buffer, e.data.byteOffset, 1).length, 1);
      if (shift === 8) assert.equal(e.data.buffer, pool.buffer, "aligned: a view onto the received buffer");
      else assert.notEqual(e.data.buffer, pool.buffer, `shift ${shift}: a copy`);
      // Seq 1 again each time: the 2nd and 3rd are duplicates for the seq checker; resubscribe state
      // is irrelevant here, so deliver each under a new seq instead.
      bytes[8] = bytes[8]! + 1;
    }
    assert.deepEqual(got.map((e) => e.seq), [1, 2, 3]);
    c.close();
  });

  test("binary and JSON events share the seq bookkeeping: checker, position, since on reconnect", async () => {
    const { c, ws } = await connected({ binary: true, reconnect: { baseMs: 1, capMs: 2 } });
    const ch = c.channel<unknown>("m");
    const violations: string[] = [];
    ch.on("violation", (v) => violations.push(`${v.kind}:${v.expected}->${v.got}`));
    const got = subscribe(c, ws, "m", { seq: 10, epoch: "e1" });
    const json = (seq: number, extra: Record<string, unknown> = {}): void =>
      ws.json({ type: "event", channel: "m", seq, frame: seq, timestamp: "2026-12-07T15:00:00.000Z", event_type: "x", data: { seq }, ...extra });
    const bin = (seq: number): void => ws.raw(frame({ channel: "m", eventType: "f32", seq, frame: seq, timeMs: 1, payload: f32([seq]) }));
    json(11);
    bin(12);
    json(13, { encoding: "base64", data: Buffer.from(f32([13])).toString("base64") });
    bin(13); // a repeat, binary or not
    bin(15); // 14 missing
    ws.json({ type: "gap", channel: "m", skipped: 2, from_seq: 16, to_seq: 18 });
    bin(19);
    assert.deepEqual(got.map((e) => `${e.seq}:${e.encoding}`), ["11:json", "12:binary", "13:base64", "15:binary", "19:binary"]);
    assert.deepEqual(violations, ["duplicate:14->13", "seq-jump:14->15"]);
    assert.deepEqual(ch.position, { seq: 19, epoch: "e1" });
    ws.onclose?.({ code: 1006, reason: "" });
    await new Promise((r) => setTimeout(r, 50));
    const again = ScriptedSocket.last.texts("subscribe").at(-1)!;
    assert.deepEqual(again.since, { m: { seq: 19, epoch: "e1" } });
    assert.match(ScriptedSocket.last.url, /[?&]binary=1/);
    // Recovered: the replay may come as binary frames, marked replay.
    const r = ScriptedSocket.last;
    r.json({ type: "subscribed", channels: ["m"], positions: { m: { seq: 21, epoch: "e1", recovered: true, snapshot_events: 0, replay_events: 2 } }, recovered: true, id: again.id });
    r.raw(frame({ channel: "m", eventType: "f32", seq: 20, frame: 20, timeMs: 1, payload: f32([20]) }));
    assert.equal(ch.state, "recovering");
    r.raw(frame({ channel: "m", eventType: "f32", seq: 21, frame: 21, timeMs: 1, payload: f32([21]) }));
    assert.equal(ch.state, "live");
    assert.deepEqual(got.slice(-2).map((e) => [e.seq, e.replay, asF32(e.data)[0]]), [[20, true, 20], [21, true, 21]]);
    assert.deepEqual(violations.length, 2);
    c.close();
  });

  test("a binary event of a channel nobody holds reaches client `event`", async () => {
    const { c, ws } = await connected({ binary: true });
    const all: FramecastEvent<unknown>[] = [];
    c.on("event", (e) => all.push(e));
    ws.raw(frame({ channel: "defaults.x", eventType: "f32", key: "k", seq: 3, frame: 4, timeMs: 2, payload: f32([2]) }));
    assert.equal(all.length, 1);
    assert.equal(all[0]!.encoding, "binary");
    assert.equal(all[0]!.key, "k");
    assert.deepEqual(asF32(all[0]!.data as Uint8Array), [2]);
    c.close();
  });

  test("malformed binary frames are PROTOCOL errors, never events", async () => {
    const { c, ws, errors } = await connected({ binary: true });
    const got = subscribe(c, ws, "x", { seq: 0, epoch: "e1" });
    const good = new Uint8Array(frame({ channel: "x", eventType: "t", seq: 1, frame: 1, timeMs: 1, payload: new Uint8Array([1, 2]) }));
    const bad1 = good.slice();
    bad1[2] = 200; // H past the end
    const bad2 = good.slice();
    bad2[2] = 24; // H inside the fixed header and strings
    ws.raw(bad1.buffer);
    ws.raw(bad2.buffer);
    ws.raw(good.slice(0, 20).buffer); // truncated header
    assert.equal(got.length, 0);
    assert.deepEqual(errors.map((e) => e.code), ["PROTOCOL", "PROTOCOL", "PROTOCOL"]);
    // A binary message not starting with 0x01 is JSON, as before.
    ws.raw(new TextEncoder().encode(JSON.stringify({ type: "event", channel: "x", seq: 1, frame: 1, timestamp: "", event_type: "t", data: 5 })));
    assert.deepEqual(got.map((e) => [e.data, e.encoding]), [[5, "json"]]);
    c.close();
  });

  test("base64 JSON events decode to bytes: alone, in a tick batch, as a snapshot; bad base64 is reported", async () => {
    const { c, ws, errors } = await connected();
    const got = subscribe(c, ws, "p", { seq: 0, epoch: "e1", snapshot_events: 1 });
    const ev = (seq: number, data: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      type: "event", channel: "p", seq, frame: seq, timestamp: "2026-12-07T15:00:00.000Z", event_type: "f32", encoding: "base64", data, ...extra,
    });
    // "AACAPwAAAEA=" is the spec's example: f32 [1, 2].
    ws.json(ev(7, "AACAPwAAAEA=", { snapshot: true, key: "a" }));
    ws.json(ev(1, "AACAPwAAAEA="));
    ws.json([ev(2, "AQID"), ev(3, ""), ev(4, "/+8=")]);
    assert.deepEqual(
      got.map((e) => [e.seq, e.snapshot, e.encoding, [...e.data]]),
      [
        [7, true, "base64", [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]],
        [1, false, "base64", [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]],
        [2, false, "base64", [1, 2, 3]],
        [3, false, "base64", []],
        [4, false, "base64", [0xff, 0xef]],
      ],
    );
    assert.deepEqual(asF32(got[1]!.data), [1, 2]);
    assert.ok(got.every((e) => e.data instanceof Uint8Array));
    assert.equal(errors.length, 0, errors.map(String).join());
    ws.json(ev(5, "not base64!"));
    assert.deepEqual(errors.map((e) => e.code), ["PROTOCOL"]);
    assert.equal(got.at(-1)!.seq, 5, "still delivered (its seq counted), data left as sent");
    assert.equal(got.at(-1)!.data as unknown, "not base64!");
    c.close();
  });

  test("publishBinary: 0x01, 0, u16 LE J, the publish JSON without data, the payload; settles on published", async () => {
    const { c, ws } = await connected({ binary: true });
    subscribe(c, ws, "pos:1", { seq: 0, epoch: "e1" });
    const p = c.publishBinary("pos:1", new Float32Array([1.5, -2.25, 3e9]), { eventType: "f32", key: "k" });
    const [msg] = ws.binaries();
    assert.ok(msg, "sent as a binary message");
    assert.equal(msg[0], 0x01);
    assert.equal(msg[1], 0);
    const j = msg[2]! + msg[3]! * 256;
    const head = JSON.parse(new TextDecoder().decode(msg.subarray(4, 4 + j))) as Record<string, unknown>;
    assert.deepEqual(Object.keys(head).sort(), ["channel", "event_type", "id", "key", "type"]);
    assert.deepEqual({ ...head, id: 0 }, { type: "publish", channel: "pos:1", event_type: "f32", key: "k", id: 0 });
    assert.equal(typeof head.id, "number");
    const payload = msg.slice(4 + j);
    assert.deepEqual(asF32(payload), [1.5, -2.25, 3e9]);
    ws.json({ type: "published", channel: "pos:1", seq: 1, frame: 9, id: head.id });
    assert.deepEqual(await p, { channel: "pos:1", seq: 1, frame: 9 });

    // An ArrayBuffer, no options: no event_type, no key; an error reply rejects.
    const q = c.publishBinary("other", new Uint8Array([9, 8, 7]).buffer);
    const m2 = ws.binaries()[1]!;
    const j2 = m2[2]! | (m2[3]! << 8);
    const h2 = JSON.parse(new TextDecoder().decode(m2.subarray(4, 4 + j2))) as Record<string, unknown>;
    assert.deepEqual(Object.keys(h2).sort(), ["channel", "id", "type"]);
    assert.deepEqual([...m2.subarray(4 + j2)], [9, 8, 7]);
    ws.json({ type: "error", code: "FORBIDDEN", message: "no", id: h2.id });
    await assert.rejects(q, (e: FramecastError) => e.code === "FORBIDDEN");

    // A view into a bigger buffer sends only its own bytes.
    const big = new Uint8Array([0, 1, 2, 3, 4, 5]);
    void c.publishBinary("other", big.subarray(2, 4)).catch(() => {});
    const m3 = ws.binaries()[2]!;
    assert.deepEqual([...m3.subarray(4 + (m3[2]! | (m3[3]! << 8)))], [2, 3]);
    c.close();
  });

  test("publishBinary while offline rejects NOT_CONNECTED; a header over 65535 bytes is refused", async () => {
    const offline = new FramecastClient({ url: "ws://scripted/ws", WebSocket: ScriptedSocket as never, heartbeat: false });
    await assert.rejects(offline.publishBinary("a", new Uint8Array([1])), (e: FramecastError) => e.code === "NOT_CONNECTED");
    const { c, ws } = await connected();
    await assert.rejects(c.publishBinary("a", new Uint8Array([1]), { key: "k".repeat(70_000) }), (e: FramecastError) => e.code === "INVALID_FIELD");
    assert.equal(ws.binaries().length, 0);
    c.close();
  });
});

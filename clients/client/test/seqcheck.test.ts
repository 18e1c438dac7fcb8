/** The seq checker, fed by a scripted socket (the real server never misbehaves on purpose). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FramecastClient } from "@framecast/client/browser";
import { waitFor } from "@framecast/testkit";
import { ScriptedSocket } from "./scripted.js";

/** An event on channel "a" (`frame` = `seq`, `data` = `seq`). */
function event(ws: ScriptedSocket, seq: number, extra: Record<string, unknown> = {}): void {
  ws.json({ type: "event", channel: "a", seq, frame: seq, timestamp: new Date().toISOString(), event_type: "x", data: seq, ...extra });
}

describe("seq checker", () => {
  test("jumps without a gap and repeats are violations; a gap explains seqs up to its to_seq", async () => {
    const c = new FramecastClient({ url: "ws://scripted/ws", WebSocket: ScriptedSocket as never, heartbeat: false });
    await c.connect();
    const ch = c.channel<number>("a");
    const seen: number[] = [];
    const violations: string[] = [];
    ch.on("event", (e) => seen.push(e.seq));
    ch.on("violation", (v) => violations.push(`${v.kind}:${v.expected}->${v.got}`));
    let caughtUp = 0;
    ch.on("caughtUp", () => caughtUp++);
    ch.subscribe();
    const ws = ScriptedSocket.last;
    const sub = ws.texts("subscribe")[0]!;
    await new Promise((r) => setTimeout(r)); // the sync ping goes out after this turn
    const ping = ws.texts("ping")[0]!;
    ws.json({ type: "subscribed", channels: ["a"], positions: { a: { seq: 0, epoch: "e1" } }, timestamp: "", id: sub.id });
    event(ws, 1, { snapshot: true }); // snapshot events carry old seqs and are not checked
    assert.equal(caughtUp, 0, "the snapshot may still be arriving");
    ws.json({ type: "pong", ping_id: "sync", timestamp: "", server_time_ms: Date.now(), id: ping.id });
    assert.equal(caughtUp, 1, "the pong behind the subscribe ends the snapshot");
    event(ws, 1);
    event(ws, 2);
    event(ws, 4); // 3 missing, no gap
    event(ws, 4); // repeat: dropped
    ws.json({ type: "gap", channel: "a", skipped: 3, from_seq: 5, to_seq: 9 });
    event(ws, 7); // newest per key inside the gap's range
    event(ws, 10);
    event(ws, 12); // 11 missing
    assert.deepEqual(seen, [1, 1, 2, 4, 7, 10, 12]);
    assert.deepEqual(violations, ["seq-jump:3->4", "duplicate:5->4", "seq-jump:11->12"]);
    assert.deepEqual(ch.position, { seq: 12, epoch: "e1" });
    c.close();
  });

  test("published.seq: an echo = false publisher's own seqs are skipped silently, any other jump is a violation", async () => {
    const c = new FramecastClient({ url: "ws://scripted/ws", WebSocket: ScriptedSocket as never, heartbeat: false });
    await c.connect();
    const ch = c.channel<number>("a");
    const violations: string[] = [];
    ch.on("violation", (v) => violations.push(`${v.kind}:${v.expected}->${v.got}`));
    ch.subscribe();
    const ws = ScriptedSocket.last;
    const sub = ws.texts("subscribe")[0]!;
    ws.json({ type: "subscribed", channels: ["a"], positions: { a: { seq: 0, epoch: "e1", echo: false, snapshot_events: 0, replay_events: 0 } }, id: sub.id });
    assert.equal(ch.state, "live", "no snapshot or replay follows (counts): live at once");
    const sentPublish = (): Record<string, unknown> => ws.texts("publish").at(-1)!;
    // Acknowledged before the next event: seq 1 is ours.
    const p1 = c.publish("a", "x");
    ws.json({ type: "published", channel: "a", seq: 1, frame: 1, id: sentPublish().id });
    assert.equal((await p1).seq, 1);
    event(ws, 2);
    // The next event overtakes the acknowledgement: forgiven on the in-flight publish's credit…
    const p2 = c.publish("a", "y");
    event(ws, 4);
    ws.json({ type: "published", channel: "a", seq: 3, frame: 3, id: sentPublish().id });
    await p2;
    // …which the acknowledgement then uses up: a later jump with nothing in flight is a loss.
    event(ws, 6);
    assert.deepEqual(violations, ["seq-jump:5->6"]);
    // A refused publish explains nothing.
    const p3 = c.publish("a", "z");
    ws.json({ type: "error", code: "RATE_LIMITED", message: "slow down", id: sentPublish().id });
    await assert.rejects(p3);
    event(ws, 8);
    assert.deepEqual(violations, ["seq-jump:5->6", "seq-jump:7->8"]);
    c.close();
  });

  test("a reconnect resubscribes with since = the last delivered event", async () => {
    const c = new FramecastClient({ url: "ws://scripted/ws", WebSocket: ScriptedSocket as never, heartbeat: false, reconnect: { baseMs: 1, capMs: 2 } });
    await c.connect();
    c.subscribe("a");
    let ws = ScriptedSocket.last;
    const sub = ws.texts("subscribe")[0]!;
    ws.json({ type: "subscribed", channels: ["a"], positions: { a: { seq: 5, epoch: "e1" } }, timestamp: "", id: sub.id });
    event(ws, 6);
    event(ws, 7);
    const first = ws;
    ws.onclose?.({ code: 1006, reason: "" });
    // The new socket's subscribe goes out once it opens (after a 1–2 ms backoff).
    await waitFor(() => ScriptedSocket.last !== first && ScriptedSocket.last.texts("subscribe").length > 0, "the resubscribe after the reconnect", 5_000);
    ws = ScriptedSocket.last;
    const again = ws.texts("subscribe")[0]!;
    assert.deepEqual(again.since, { a: { seq: 7, epoch: "e1" } });
    c.close();
  });
});

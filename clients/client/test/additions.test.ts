/** The protocol additions of issue 14 (docs/protocol.md): token expiry in `connected` /
 * `authenticated`, default channels joined with positions and recovered with `since`, channel
 * traits and snapshot/replay counts in `positions`, `published.seq`, 1013 + `reconnect` at
 * max_connections. Each test checks what the server sends and what the client makes of it. */
import assert from "node:assert/strict";
import { after, before, describe, test, type TestContext } from "node:test";
import { FramecastClient, type StateChange } from "@framecast/client";
import {
  FaultProxy,
  FramecastServer,
  fresh,
  fullServerUpgrades,
  LANDED,
  probeFeatures,
  publish,
  signHs256,
  sleep,
  waitFor,
  type Features,
} from "@framecast/testkit";
import { range, Recorder } from "./helpers.js";

const SECRET = "additions-secret-0123456789abcdef-0123";
const CONFIG = `
default_channels = ["news:all", "system.status"]
jwt_secret = "${SECRET}"
allow_anonymous = true
status_interval = "1h"
[namespaces.news]
history_size = 100
[namespaces.snap]
history_size = 10
snapshot = true
[namespaces.noecho]
echo = false
history_size = 100
[namespaces.pos]
delivery = "conflated"
snapshot = true
`;

const token = (sub: string, ttlS: number): string =>
  signHs256({ sub, exp: Math.floor(Date.now() / 1000) + ttlS }, SECRET);

let server: FramecastServer;
let features: Features;
const cleanup: (() => unknown)[] = [];

before(async () => {
  server = await FramecastServer.start({ config: CONFIG });
  features = await probeFeatures(server.wsUrl);
  console.log(`# server additions: ${JSON.stringify(features)}`);
});

/** Whether the server has `what`; skips (saying so) when it does not and it has not landed. */
function has(t: TestContext, what: keyof Features | "full1013", present: boolean): boolean {
  if (present) return true;
  assert.ok(!LANDED.has(what), `the server lacks ${what}, which has landed`);
  t.skip(`the server does not send ${what} yet`);
  return false;
}
after(async () => {
  for (const f of cleanup.reverse()) await f();
  await server?.stop();
});

function client(url: string, extra: Partial<ConstructorParameters<typeof FramecastClient>[0]> = {}): FramecastClient {
  const c = new FramecastClient({ url, reconnect: { baseMs: 50, capMs: 500 }, ...extra });
  cleanup.push(() => c.close());
  return c;
}

async function proxied(): Promise<FaultProxy> {
  const p = await FaultProxy.start(server.port);
  cleanup.push(() => p.close());
  return p;
}

async function lastSeq(ch: string, want: number): Promise<void> {
  await waitFor(async () => {
    const r = await fetch(`${server.httpUrl}/api/v1/channels/${encodeURIComponent(ch)}`);
    return r.ok && ((await r.json()) as { last_seq: number }).last_seq === want;
  }, `${ch} at seq ${want}`);
}

describe("protocol additions", { timeout: 120_000 }, () => {
  test("connected and authenticated carry expires_at_ms; the refresh is scheduled from it", async (t) => {
    if (!has(t, "expiresAtMs", features.expiresAtMs)) return;
    const anon = client(server.wsUrl);
    const a = await anon.connect();
    assert.ok("expires_at_ms" in a.raw, "connected has expires_at_ms");
    assert.equal(a.raw.expires_at_ms, null, "null without a token");
    assert.equal(anon.tokenExpiresAt, null);
    for (const auth of ["header", "message"] as const) {
      const t = token("ada", 8);
      const exp = JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()).exp * 1000;
      const refreshed: (number | null)[] = [];
      const c = client(server.wsUrl, { auth, token: t, getToken: () => token("ada", 60) });
      c.on("authenticated", (x) => refreshed.push(x.tokenExpiresAt));
      const info = await c.connect();
      const said = auth === "header" ? info.raw.expires_at_ms : undefined;
      if (auth === "header") assert.equal(said, exp, "connected: the token's exp in ms");
      assert.equal(info.tokenExpiresAt, exp);
      // An 8 s token: refreshed at half its life on the live connection; `authenticated` says the new expiry.
      await waitFor(() => refreshed.length >= 1, "refreshed", 15_000);
      assert.ok(refreshed[0]! > exp, `new expiry ${refreshed[0]} after ${exp}`);
      assert.equal(c.tokenExpiresAt, refreshed[0]);
    }
  });

  test("positions state each channel's traits and how many snapshot events follow", async (t) => {
    if (!has(t, "traits", features.traits)) return;
    const c = client(server.wsUrl);
    await c.connect();
    const ch = fresh("snap:traits");
    for (const k of ["a", "b", "c"]) await publish(server.httpUrl, ch, k, { key: k });
    await publish(server.httpUrl, ch, "a2", { key: "a" });
    await lastSeq(ch, 4);
    const rec = new Recorder(c.channel(ch));
    c.subscribe(ch);
    await waitFor(() => rec.caughtUp === 1, "caught up");
    const tr = rec.subscribed[0]!.traits;
    assert.equal(tr.delivery, "reliable");
    assert.equal(tr.history, 10);
    assert.equal(tr.snapshot, true);
    assert.equal(tr.echo, true);
    assert.equal(typeof tr.rate_hz, "number");
    assert.equal(tr.snapshot_events, 3, "one per key");
    assert.equal(tr.replay_events, 0);
    // subscribed, the three snapshot events (newest per key), then caught up: complete by count.
    assert.equal(rec.log.length, 5, rec.log.join(" "));
    assert.equal(rec.log[0], "subscribed:4:undefined");
    assert.deepEqual(rec.log.slice(1, 4).sort(), ["snap:2", "snap:3", "snap:4"]);
    assert.equal(rec.log[4], "caughtUp");
  });

  test("replay_events: a recovered subscribe says how many missed events follow", async (t) => {
    if (!has(t, "traits", features.traits)) return;
    const p = await proxied();
    const c = client(p.wsUrl);
    await c.connect();
    const ch = fresh("news:replay");
    const rec = new Recorder(c.channel(ch));
    c.subscribe(ch);
    await waitFor(() => rec.caughtUp === 1, "subscribed");
    await publish(server.httpUrl, ch, 1);
    await waitFor(() => rec.events.length === 1, "one");
    p.refuse(true);
    p.cut();
    await waitFor(() => c.state === "reconnecting", "reconnecting");
    for (let i = 2; i <= 6; i++) await publish(server.httpUrl, ch, i);
    await lastSeq(ch, 6);
    p.refuse(false);
    await waitFor(() => rec.caughtUp === 2, "recovered");
    const s = rec.subscribed[1]!;
    assert.equal(s.recovered, true);
    assert.equal(s.position!.seq, 6, "positions.seq is the head, not the since point");
    assert.equal(s.traits.replay_events, 5);
    assert.deepEqual(rec.liveSeqs(), range(1, 6));
    assert.ok(rec.events.slice(1).every((e) => e.replay), "marked as replayed");
    assert.equal(rec.log.at(-1), "caughtUp", "caught up right after the 5th replayed event");
  });

  const variants = [
    ["none", "anonymous"],
    ["message", "token in the auth message, anonymous allowed: joined at open"],
    ["strict", "token in the auth message, anonymous refused: joined after auth"],
  ] as const;
  for (const [mode, what] of variants) {
    test(`default channels are joined with positions and recovered with since on the upgrade URL (${what})`, async (t) => {
      if (!has(t, "defaults", features.defaults)) return;
      const saved = server;
      if (mode === "strict") {
        server = await FramecastServer.start({ config: CONFIG.replace("allow_anonymous = true", "allow_anonymous = false") });
      }
      try {
        await defaultChannelsRecover(mode === "none" ? "none" : "message");
      } finally {
        if (server !== saved) await server.stop();
        server = saved;
      }
    });
  }

  async function defaultChannelsRecover(auth: "none" | "message"): Promise<void> {
    {
      const p = await proxied();
      const c = client(p.wsUrl, auth === "message" ? { auth, token: token("bea", 600) } : {});
      const news: number[] = [];
      c.on("event", (e) => {
        if (e.channel === "news:all") news.push(e.data as number);
      });
      await c.connect();
      await waitFor(() => c.channel("news:all").state === "live", "default channel live without a subscribe");
      const ch = c.channel("news:all");
      assert.equal(ch.isDefault, true);
      assert.equal(ch.recoverable, true);
      const rec = new Recorder(ch);
      const base = ch.position!.seq;
      for (let i = 1; i <= 3; i++) await publish(server.httpUrl, "news:all", base + i);
      await waitFor(() => news.length === 3, "three live");
      p.refuse(true);
      p.cut();
      await waitFor(() => c.state === "reconnecting", "reconnecting");
      for (let i = 4; i <= 6; i++) await publish(server.httpUrl, "news:all", base + i);
      await lastSeq("news:all", base + 6);
      p.refuse(false);
      await waitFor(() => news.length === 6, () => `recovered: ${news.join(",")} ${rec.log.join(" ")}`);
      await sleep(100);
      assert.deepEqual(news, range(base + 1, base + 6), "each event once, in order, none lost");
      assert.equal(rec.subscribed.at(-1)!.recovered, true);
      assert.equal(rec.resyncs.length, 0);
      assert.equal(rec.violations.length, 0);
      // A handler on a default channel, released: the channel stays joined.
      const got: number[] = [];
      const off = c.subscribe<number>("news:all", (e) => got.push(e.data));
      await publish(server.httpUrl, "news:all", base + 7);
      await waitFor(() => got.length === 1, "handler");
      off();
      await sleep(100);
      assert.ok((await c.subscriptions()).includes("news:all"), "still joined after the release");
      await publish(server.httpUrl, "news:all", base + 8);
      await waitFor(() => news.length === 8, "client events continue");
      assert.deepEqual(got, [base + 7]);
    }
  }

  test("published.seq: an echo = false publisher tells its own skipped seqs from lost ones", async (t) => {
    if (!has(t, "publishedSeq", features.publishedSeq)) return;
    const a = client(server.wsUrl);
    await a.connect();
    const ch = fresh("noecho:seq");
    const rec = new Recorder(a.channel(ch));
    a.subscribe(ch);
    await waitFor(() => rec.caughtUp === 1, "subscribed");
    const own: number[] = [];
    for (let i = 0; i < 5; i++) {
      const ack = await a.publish(ch, `a${i}`);
      assert.equal(typeof ack.seq, "number", "published carries the seq");
      assert.equal(typeof ack.frame, "number");
      own.push(ack.seq!);
      await publish(server.httpUrl, ch, `h${i}`);
    }
    await waitFor(() => rec.events.length === 5, "the five others");
    const theirs = rec.liveSeqs();
    assert.deepEqual([...own, ...theirs].sort((x, y) => x - y), range(1, 10), "own + delivered = every seq once");
    assert.deepEqual(rec.events.map((e) => e.data), ["h0", "h1", "h2", "h3", "h4"]);
    assert.equal(rec.violations.length, 0);
  });

  test("a full server upgrades, sends reconnect{after_ms} and closes 1013; the client waits, then connects", async (t) => {
    const full = await FramecastServer.start({ args: ["--max-connections", "1"] });
    cleanup.push(() => full.stop());
    const a = client(full.wsUrl);
    await a.connect();
    if (!has(t, "full1013", await fullServerUpgrades(full.wsUrl))) return;
    const b = client(full.wsUrl);
    const states: (StateChange & { at: number })[] = [];
    b.on("state", (s) => states.push({ ...s, at: Date.now() }));
    const hints: { afterMs: number; reason: string; receivedAt: number }[] = [];
    b.on("draining", (d) => hints.push(d));
    const codes: number[] = [];
    // Where the states stood when b was turned away: the retry is the next "connecting" after
    // it (the first connect's "connecting" may fall in the same millisecond as the hint).
    let turnedAwayAt = -1;
    b.on("disconnected", (d) => {
      codes.push(d.code);
      if (turnedAwayAt < 0) turnedAwayAt = states.length;
    });
    const connected = b.connect();
    await waitFor(() => codes.length >= 1, "b turned away");
    assert.equal(codes[0], 1013);
    assert.ok(hints.length >= 1, "a reconnect hint first");
    const h = hints[0]!;
    assert.ok(h.afterMs >= 1000 && h.afterMs <= 5000, `after_ms ${h.afterMs}`);
    assert.match(h.reason, /full/);
    a.close();
    await connected;
    const next = states.slice(turnedAwayAt).find((s) => s.to === "connecting");
    assert.ok(next, "reconnected");
    assert.ok(next.at - h.receivedAt >= h.afterMs, `retried ${next.at - h.receivedAt} ms after the hint (after_ms ${h.afterMs})`);
    assert.equal(b.state, "connected");
    assert.ok(!states.some((s) => s.to === "failed"));
  });
});

/** Tokens against a real server with `jwt_secret`: refresh on the live connection, rejected and
 * expired tokens never loop, header / query / message transports. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FramecastClient, type StateChange } from "@framecast/client";
import { FaultProxy, FramecastServer, fresh, signHs256, sleep, waitFor } from "@framecast/testkit";
import { Recorder } from "./helpers.js";

const SECRET = "test-secret-0123456789abcdef-0123456789";
const CONFIG = `
jwt_secret = "${SECRET}"
[namespaces.team]
subscribe = "token"
`;

const token = (sub: string, ttlS: number, extra: Record<string, unknown> = {}) =>
  signHs256({ sub, exp: Math.floor(Date.now() / 1000) + ttlS, ...extra }, SECRET);

let server: FramecastServer;
const cleanup: (() => unknown)[] = [];

before(async () => {
  server = await FramecastServer.start({ config: CONFIG });
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

describe("auth", { timeout: 120_000 }, () => {
  for (const auth of ["message", "header", "query"] as const) {
    test(`a valid token by ${auth}: connected as its subject, token claims enforced`, async () => {
      const c = new FramecastClient({ url: server.wsUrl, auth, token: token("alice", 60, { channels: ["team:red"] }) });
      cleanup.push(() => c.close());
      const states: StateChange[] = [];
      c.on("state", (s) => states.push(s));
      const info = await c.connect();
      assert.equal(info.userId, "alice");
      assert.equal(info.user_id, "alice");
      assert.ok(info.tokenExpiresAt! > Date.now());
      if (auth === "message") assert.ok(states.some((s) => s.to === "authenticating"));
      const red = new Recorder(c.channel("team:red"));
      c.subscribe("team:red");
      const blue = c.channel("team:blue");
      c.subscribe("team:blue");
      await waitFor(() => red.caughtUp === 1 && blue.state === "failed", "red live, blue refused");
      assert.equal(c.state, "connected");
    });
  }

  test("token refresh before exp on the live connection: no reconnect", async () => {
    const p = await proxied();
    const asked: string[] = [];
    const c = new FramecastClient({
      url: p.wsUrl,
      auth: "message",
      getToken: (why) => {
        asked.push(why);
        return token("bob", 4);
      },
    });
    cleanup.push(() => c.close());
    let refreshed = 0;
    c.on("authenticated", () => refreshed++);
    const disconnects: number[] = [];
    c.on("disconnected", (d) => disconnects.push(d.code));
    await c.connect();
    const ch = fresh("plain.refresh");
    const rec = new Recorder(c.channel(ch));
    c.subscribe(ch);
    // Each token lives 4 s; the server closes 4001 at exp unless the client re-authenticates.
    await waitFor(() => refreshed >= 3, () => `3 refreshes (${refreshed}, asked ${asked.join(",")})`, 30_000);
    assert.deepEqual(disconnects, []);
    assert.equal(p.accepted, 1, "one TCP connection");
    assert.equal(asked[0], "connect");
    assert.ok(asked.slice(1).every((w) => w === "refresh"));
    assert.equal(c.state, "connected");
    await c.publish(ch, "still here");
    await waitFor(() => rec.events.length === 1, "event");
  });

  for (const auth of ["header", "message"] as const) {
    test(`expired token without getToken (${auth}) → failed, no reconnect loop`, async () => {
      const p = await proxied();
      const c = new FramecastClient({ url: p.wsUrl, auth, token: token("carol", -60) });
      cleanup.push(() => c.close());
      const states: StateChange[] = [];
      c.on("state", (s) => states.push(s));
      await assert.rejects(c.connect(), (e: { code?: string }) => e.code === "FAILED");
      assert.equal(c.state, "failed");
      await sleep(3000);
      assert.equal(p.accepted, 1, "exactly one attempt");
      assert.equal(c.state, "failed");
      assert.ok(!states.some((s) => s.to === "reconnecting"));
    });
  }

  test("a rejected token: one getToken('rejected') retry, then failed", async () => {
    const p = await proxied();
    const asked: string[] = [];
    const c = new FramecastClient({
      url: p.wsUrl,
      auth: "message",
      token: token("dave", -10),
      getToken: (why) => {
        asked.push(why);
        return "not.a.valid-token";
      },
    });
    cleanup.push(() => c.close());
    await assert.rejects(c.connect());
    await sleep(2000);
    assert.equal(c.state, "failed");
    assert.deepEqual(asked, ["expired", "rejected"]);
    assert.equal(p.accepted, 2, "the first attempt and the one retry");
  });

  test("no token where one is required → failed after the server's auth timeout, no loop", async () => {
    const strict = await FramecastServer.start({ config: CONFIG, args: ["--auth-timeout", "1s"] });
    cleanup.push(() => strict.stop());
    const p = await FaultProxy.start(strict.port);
    cleanup.push(() => p.close());
    const c = new FramecastClient({ url: p.wsUrl });
    cleanup.push(() => c.close());
    // The server greets first and closes 4001 after auth_timeout: connected, then failed.
    void c.connect().catch(() => {});
    await waitFor(() => c.state === "failed", "failed", 20_000);
    await sleep(2000);
    assert.equal(p.accepted, 1, "no second attempt");
  });

  test("a token expiring on a live connection is replaced via getToken after the 4001", async () => {
    let n = 0;
    const c = new FramecastClient({
      url: server.wsUrl,
      auth: "message",
      token: token("erin", 7), // ≥ 5 s left: used as is
      // The refresh fails (returns null) until exp; the reconnect then asks once more.
      getToken: (why) => (why === "refresh" ? null : (n++, token("erin", 60))),
    });
    cleanup.push(() => c.close());
    const codes: number[] = [];
    c.on("disconnected", (d) => codes.push(d.code));
    await c.connect();
    await waitFor(() => codes.length === 1 && c.state === "connected", () => `reconnected after 4001 (${codes}, ${c.state})`, 20_000);
    assert.deepEqual(codes, [4001]);
    assert.equal(n, 1);
  });
});

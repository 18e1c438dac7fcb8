/** wss:// end to end from Node: the server serves TLS itself (the repository's test certificates),
 * the client trusts the test CA through the Node entry's `webSocketOptions: { ca }` (verification
 * stays on; the host name `localhost` is checked), events come over HTTPS and from the client. */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { WebSocket as WsSocket } from "ws";
import { FramecastClient, type FramecastError } from "@framecast/client/node";
import { FramecastServer, fresh, httpsFetch, publish, testCa, tlsArgs, waitFor } from "@framecast/testkit";
import { Recorder, stateLog } from "./helpers.js";

const servers: FramecastServer[] = [];
const clients: FramecastClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  for (const s of servers) await s.stop();
});

async function tlsServer(key: "rsa" | "ecdsa" = "rsa"): Promise<FramecastServer> {
  const s = await FramecastServer.start({ args: tlsArgs(key) });
  servers.push(s);
  assert.equal(s.scheme, "wss", s.logs.join("\n"));
  assert.equal(s.wsUrl, `wss://localhost:${s.port}/ws`);
  return s;
}

describe("wss:// (Node, ws)", { timeout: 60_000 }, () => {
  for (const [key, compression] of [["rsa", true], ["ecdsa", false]] as const) {
    test(`round trip trusting the test CA (${key} leaf, compression ${compression})`, async () => {
      const server = await tlsServer(key);
      const c = new FramecastClient({ url: server.wsUrl, compression, webSocketOptions: { ca: testCa() }, reconnect: false });
      clients.push(c);
      const info = await c.connect();
      assert.ok(info.clientId);
      const name = fresh("tls:");
      const rec = new Recorder(c.channel<{ from: string; big?: string }>(name));
      rec.channel.subscribe();
      await waitFor(() => rec.channel.state === "live", () => `channel ${rec.channel.state}`);
      // Over HTTPS on the same port and certificate: one small event, one of many TLS records.
      await publish(server.httpUrl, name, { from: "https" }, { ca: testCa() });
      const big = "x".repeat(200_000);
      await publish(server.httpUrl, name, { from: "https", big }, { ca: testCa() });
      const ack = await c.publish(name, { from: "client" });
      assert.equal(ack.seq, 3);
      await waitFor(() => rec.events.length === 3, () => rec.log.join(" "));
      assert.deepEqual(rec.liveSeqs(), [1, 2, 3]);
      assert.deepEqual(rec.events[0]!.data, { from: "https" });
      assert.equal(rec.events[1]!.data.big, big);
      assert.deepEqual(rec.events[2]!.data, { from: "client" });
      assert.deepEqual([rec.gaps, rec.violations], [[], []]);
      assert.ok((await c.ping()) >= 0);
      c.close();
    });
  }

  test("without the CA: a certificate error, and the client does not connect", async () => {
    const server = await tlsServer();
    // `ws` itself (Node's bundled roots) names the reason.
    const code = await new Promise<string>((resolve, reject) => {
      const ws = new WsSocket(server.wsUrl);
      ws.on("open", () => reject(new Error("opened without trusting the CA")));
      ws.on("error", (e: Error & { code?: string }) => resolve(e.code ?? e.message));
    });
    assert.equal(code, "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    // So does HTTPS.
    await assert.rejects(httpsFetch(`${server.httpUrl}/metrics`), (e: Error & { code?: string }) => e.code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    // The client fails at once, naming the reason, and does not retry (reconnect is on by default):
    // no backoff can make the certificate trusted.
    const c = new FramecastClient({ url: server.wsUrl });
    clients.push(c);
    const states = stateLog(c);
    const errors: FramecastError[] = [];
    await assert.rejects(c.connect(), (e: FramecastError) => {
      errors.push(e);
      return e.code === "FAILED" && !e.retryable;
    });
    assert.match(errors[0]!.message, /TLS certificate verification failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    assert.deepEqual(
      states.map((s) => s.to),
      ["connecting", "failed"],
    );
    assert.equal(c.state, "failed");
    // With it, the same server answers.
    const ok = await httpsFetch(`${server.httpUrl}/metrics`, { ca: testCa() });
    assert.equal(ok.status, 200);
  });

  test("webSocketOptions reach the constructor under the client's own headers and perMessageDeflate", async () => {
    const seen: { url: string; options: Record<string, unknown> | undefined }[] = [];
    class Capture {
      readyState = 0;
      onopen: ((ev: unknown) => void) | null = null;
      onmessage: ((ev: { data: unknown }) => void) | null = null;
      onclose: ((ev: { code: number; reason: string }) => void) | null = null;
      onerror: ((ev: unknown) => void) | null = null;
      constructor(url: string, _protocols?: string | string[], options?: Record<string, unknown>) {
        seen.push({ url, options });
        setTimeout(() => this.onclose?.({ code: 1006, reason: "" }));
      }
      send(): void {}
      close(): void {}
    }
    const ca = testCa();
    const c = new FramecastClient({
      url: "wss://localhost:1/ws",
      token: "t0k",
      compression: false,
      reconnect: false,
      WebSocket: Capture as never,
      webSocketOptions: { ca, servername: "localhost", headers: { "x-extra": "1", Authorization: "not this" } },
    });
    await assert.rejects(c.connect());
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0]!.options, {
      ca,
      servername: "localhost",
      headers: { "x-extra": "1", Authorization: "Bearer t0k" },
      perMessageDeflate: false,
    });
  });
});

/** Tick batches against a real framecast process (Node's `ws` also offers permessage-deflate, so
 * these events arrive compressed once per event, or per batch, by the server). */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FramecastClient, type ClientOptions } from "@framecast/client";
import { FramecastServer, fresh, publish, waitFor } from "@framecast/testkit";
import { range, Recorder } from "./helpers.js";

// A slow frame clock, so that events published together share a tick.
const CONFIG = `
tick_hz = 2
[namespaces.hist]
history_size = 100
`;

let server: FramecastServer;
const clients: FramecastClient[] = [];

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
  await server?.stop();
});

describe("wire forms", { timeout: 60_000 }, () => {
  test("a batch client gets every event once, in order, as a plain client does", async () => {
    const ch = fresh("hist:batch");
    const batched = client({ batch: true });
    const plain = client();
    await batched.connect();
    await plain.connect();
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

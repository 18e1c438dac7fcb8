/** docs/clients.md "Replacing the seeds' clients": each seed's replacement, as written there, against a
 * real server configured as written there (WIRTHFORGE's hooks run in Chromium: ../../example). */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FramecastClient, type FramecastEvent } from "@framecast/client";
import { FramecastServer, fresh, publish, signHs256, waitFor } from "@framecast/testkit";

const SECRET = "seeds-secret-0123456789abcdef-0123456789";
// The TOML of the five sections, together (SigmaVault's clients are anonymous: with a key set,
// anonymous connections must be allowed explicitly).
const CONFIG = `
jwt_secret = "${SECRET}"
allow_anonymous = true
default_channels = ["system.status", "agent.status", "compression.update", "notification", "heartbeat", "storage.update"]
welcome = "Welcome to SigmaVault WebSocket"
status_interval = "1s"
[namespaces.energy]
delivery = "conflated"
[namespaces.tokens]
history_size = 5000
[namespaces.session]
subscribe = "token"
echo = false
publish_rate = 120
delivery = "conflated"
snapshot = true
[namespaces.thread]
subscribe = "token"
publish = false
history_size = 1000
history_ttl = "10m"
snapshot = true
`;

/** A token; `subscribe = "token"` namespaces admit the channels it lists (`publish`: where it may publish). */
const jwt = (sub: string, channels?: string[], publish?: string[]): string =>
  signHs256({ sub, exp: Math.floor(Date.now() / 1000) + 600, ...(channels ? { channels } : {}), ...(publish ? { publish } : {}) }, SECRET);

let server: FramecastServer;
const clients: FramecastClient[] = [];
before(async () => {
  server = await FramecastServer.start({ config: CONFIG });
});
after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});
const keep = (c: FramecastClient): FramecastClient => (clients.push(c), c);

describe("seeds", { timeout: 60_000 }, () => {
  test("NeuroGraph: NeurographWSClient({url, token, autoReconnect}), subscribe(channel, handler), on('connected')", async () => {
    const log: string[] = [];
    // --- as in docs/clients.md (a real token instead of "jwt-token")
    const client = keep(new FramecastClient({ url: server.wsUrl, token: jwt("neuro"), auth: "query", autoReconnect: true }));
    client.on("connected", (info) => log.push(`Connected: ${info.client_id}`));
    client.on("disconnected", (info) => log.push(`Disconnected: ${info.reason}`));
    await client.connect();
    client.subscribe("metrics", (data) => log.push(`Metrics: ${JSON.stringify(data.data)}`));
    // ---
    await waitFor(() => client.channel("metrics").state === "live", "subscribed");
    await publish(server.httpUrl, "metrics", { signals: 3 });
    await waitFor(() => log.some((l) => l.startsWith("Metrics")), () => log.join(" | "));
    assert.match(log[0]!, /^Connected: [0-9a-f-]{36}$/);
    assert.equal(log.at(-1), 'Metrics: {"signals":3}');
    assert.equal(client.info!.user_id, "neuro");
  });

  test("SigmaVault: default channels without subscribing, the welcome notification, system.status", async () => {
    const fc = keep(new FramecastClient({ url: server.wsUrl }));
    const toasts: string[] = [];
    const jobs: unknown[] = [];
    const status: unknown[] = [];
    // --- as in docs/clients.md
    fc.on("notification", ({ message, level }) => toasts.push(`${level}: ${message}`));
    fc.subscribe("compression.update", (e) => jobs.push(e.data));
    // useSystemStatus = useLatest("system.status"): the client-level equivalent
    fc.on("event", (e) => e.channel === "system.status" && status.push(e.data));
    // ---
    await fc.connect();
    await waitFor(() => toasts.length === 1, "welcome");
    assert.match(toasts[0]!, /Welcome to SigmaVault WebSocket/);
    await waitFor(() => fc.channel("compression.update").state === "live", "default channel live");
    assert.equal(fc.channel("compression.update").isDefault, true);
    await publish(server.httpUrl, "compression.update", { job: "j1", pct: 50 });
    await waitFor(() => jobs.length === 1, "compression.update");
    assert.deepEqual(jobs, [{ job: "j1", pct: 50 }]);
    await waitFor(() => status.length >= 1, "system.status from the server", 10_000);
    assert.ok(typeof (status[0] as { cpu_usage?: unknown }).cpu_usage === "number", JSON.stringify(status[0]));
  });

  test("HD1: avatar positions with keys (snapshot for joiners, echo off), RTT", async () => {
    const id = fresh("s");
    const getToken = (): string => jwt("hd1-user", [`session:${id}`], [`session:${id}`]);
    const a = keep(new FramecastClient({ url: server.wsUrl, getToken }));
    const b = keep(new FramecastClient({ url: server.wsUrl, getToken }));
    await Promise.all([a.connect(), b.connect()]);
    const seenByA: string[] = [];
    a.subscribe(`session:${id}`, (e) => seenByA.push(e.key!));
    await waitFor(() => a.channel(`session:${id}`).state === "live", "a live");
    // --- as in docs/clients.md
    await a.publish(`session:${id}`, { position: [1, 2, 3], rotation: [0, 0, 0] }, { key: "avatar-a", eventType: "avatar_position_update" });
    await b.publish(`session:${id}`, { position: [4, 5, 6], rotation: [0, 0, 0] }, { key: "avatar-b", eventType: "avatar_position_update" });
    const rtt = await a.ping();
    // ---
    // A late joiner (useLatestByKey's source) gets every avatar from the snapshot.
    const c = keep(new FramecastClient({ url: server.wsUrl, getToken }));
    await c.connect();
    const avatars = new Map<string, FramecastEvent>();
    c.subscribe(`session:${id}`, (e) => avatars.set(e.key!, e));
    await waitFor(() => avatars.size === 2, "snapshot of both avatars");
    assert.ok([...avatars.values()].every((e) => e.snapshot && e.eventType === "avatar_position_update"));
    await waitFor(() => seenByA.length === 1, "a sees b");
    assert.deepEqual(seenByA, ["avatar-b"], "echo off: a never gets its own position back");
    assert.ok(rtt >= 0 && rtt < 5000);
  });

  test("Choir: auth message, thread snapshot then seq-checked deltas, resync handler", async () => {
    const id = fresh("t");
    await publish(server.httpUrl, `thread:${id}`, { msg: "m1" }, { key: "m1" });
    await publish(server.httpUrl, `thread:${id}`, { msg: "m2" }, { key: "m2" });
    const store: unknown[] = [];
    const reports: unknown[] = [];
    let resets = 0;
    // --- as in docs/clients.md
    const fc = keep(new FramecastClient({ url: server.wsUrl, getToken: () => jwt("choir", [`thread:${id}`]), auth: "message" }));
    const thread = fc.channel<{ msg: string }>(`thread:${id}`);
    thread.on("resync", () => resets++);
    thread.on("event", (e) => store.push(e.data));
    thread.on("violation", (v) => reports.push(v));
    thread.subscribe();
    // ---
    await fc.connect();
    await waitFor(() => store.length === 2, "snapshot");
    await publish(server.httpUrl, `thread:${id}`, { msg: "m3" }, { key: "m3" });
    await waitFor(() => store.length === 3, "delta");
    assert.deepEqual(store.map((d) => (d as { msg: string }).msg).sort(), ["m1", "m2", "m3"]);
    assert.equal(resets, 0);
    assert.deepEqual(reports, []);
    await assert.rejects(fc.publish(`thread:${id}`, { msg: "x" }), (e: { code?: string }) => e.code === "FORBIDDEN", "publish = false");
  });
});

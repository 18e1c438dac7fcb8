/** What the server under test sends of the protocol additions of issue 14, found by asking it
 * (one raw WebSocket, replies read in command order: no waiting on the clock). Suites run a test
 * of an addition when the server has it, and fail instead of skipping once the addition is listed
 * in `LANDED` (the server in this repository has it). */
import WebSocket from "ws";

export interface Features {
  /** `connected` carries `expires_at_ms`. */
  expiresAtMs: boolean;
  /** `positions` entries carry `delivery`, `snapshot_events`, … */
  traits: boolean;
  /** An unsolicited `subscribed` with `"default":true` (needs `default_channels` in the config). */
  defaults: boolean;
  /** `published` carries `seq`. */
  publishedSeq: boolean;
}

/** Additions the repository's server has (per /work/bin/CHANGES.md): their tests must run. */
export const LANDED: ReadonlySet<keyof Features | "full1013" | "cors"> = new Set([
  // framecast-7d40c37 (2026-12-02 04:00): items 1-7 of PROTOCOL-ADDITIONS.md.
  "expiresAtMs",
  "traits",
  "defaults",
  "publishedSeq",
  "full1013",
  "cors",
]);

export async function probeFeatures(wsUrl: string, channel = "probe.features"): Promise<Features> {
  const ws = new WebSocket(wsUrl);
  const msgs: Record<string, unknown>[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on("error", reject);
    ws.on("open", () => {
      ws.send(JSON.stringify({ type: "subscribe", channels: [channel], id: 1 }));
      ws.send(JSON.stringify({ type: "publish", channel, data: 0, id: 2 }));
      ws.send(JSON.stringify({ type: "ping", id: 3 }));
    });
    ws.on("message", (data) => {
      const m = JSON.parse(String(data)) as Record<string, unknown>;
      msgs.push(m);
      // `published` is not ordered with other replies (a pong may overtake it): wait for both.
      const done = (t: string) => msgs.some((x) => x.type === t || (x.type === "error" && x.id === 2 && t === "published"));
      if (done("pong") && done("published")) resolve();
    });
  });
  ws.close();
  const hello = msgs.find((m) => m.type === "connected") ?? {};
  const sub = msgs.find((m) => m.type === "subscribed" && m.id === 1);
  const pos = ((sub?.positions ?? {}) as Record<string, Record<string, unknown>>)[channel] ?? {};
  const published = msgs.find((m) => m.type === "published");
  return {
    expiresAtMs: "expires_at_ms" in hello,
    traits: "delivery" in pos && "snapshot_events" in pos,
    defaults: msgs.some((m) => m.type === "subscribed" && m.default === true),
    publishedSeq: typeof published?.seq === "number",
  };
}

/** Whether a server at max_connections answers an upgrade with 101 (then 1013) rather than 503. */
export async function fullServerUpgrades(wsUrl: string): Promise<boolean> {
  const ws = new WebSocket(wsUrl);
  return new Promise<boolean>((resolve) => {
    ws.on("unexpected-response", (_req, res) => {
      resolve(false);
      res.destroy();
    });
    ws.on("open", () => {
      resolve(true);
      ws.terminate();
    });
    ws.on("error", () => resolve(false));
  });
}

/** HTTP publishing, metrics, HS256 tokens and waiting for conditions. */
import { createHmac } from "node:crypto";
import { request as httpsRequest } from "node:https";

/** One HTTPS request with node:https, verifying the server against `ca` (Node's bundled roots
 * without it): `fetch` cannot be given a CA. Resolves with the status and the body. */
export function httpsFetch(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array; ca?: string | Buffer } = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: opts.method ?? "GET", headers: opts.headers, ...(opts.ca ? { ca: opts.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** Publishes one event through `POST /api/v1/broadcast` (202 expected). An `https://` URL goes
 * through {@link httpsFetch}, trusting `ca`. */
export async function publish(
  httpUrl: string,
  channel: string,
  data: unknown,
  opts: { eventType?: string; key?: string; ca?: string | Buffer } = {},
): Promise<void> {
  const body: Record<string, unknown> = { channel, data, event_type: opts.eventType ?? "message" };
  if (opts.key !== undefined) body.key = opts.key;
  if (httpUrl.startsWith("https:")) {
    const res = await httpsFetch(`${httpUrl}/api/v1/broadcast`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    if (res.status !== 202) throw new Error(`broadcast answered ${res.status}: ${res.text}`);
    return;
  }
  const res = await fetch(`${httpUrl}/api/v1/broadcast`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`broadcast answered ${res.status}: ${text}`);
}

/** GET a JSON document. */
export async function getJson<T = unknown>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return (await res.json()) as T;
}

/** Prometheus samples summed over labels, or one labelled sample with `name{label="v"}`. */
export async function metrics(httpUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${httpUrl}/metrics`);
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    out.set(m[1]!, (out.get(m[1]!) ?? 0) + v);
    if (m[2]) out.set(m[1]! + m[2], v);
  }
  return out;
}

const b64url = (s: string | Buffer): string => Buffer.from(s).toString("base64url");

/** An HS256 JWT. */
export function signHs256(claims: Record<string, unknown>, secret: string): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until it returns a truthy value; fails with `message` after `timeoutMs`. */
export async function waitFor<T>(
  cond: () => T | Promise<T>,
  message: string | (() => string | Promise<string>),
  timeoutMs = 20_000,
  intervalMs = 20,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) {
      const why = typeof message === "function" ? await message() : message;
      throw new Error(`timed out after ${timeoutMs} ms: ${why}`);
    }
    await sleep(intervalMs);
  }
}

/** A fresh channel name per test. */
let counter = 0;
export function fresh(prefix: string): string {
  return `${prefix}${process.pid}-${Date.now().toString(36)}-${++counter}`;
}

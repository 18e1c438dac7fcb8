/** The example's moving parts: a static file server for dist/ and a feeder that publishes what the
 * seeds stream through the HTTP API (60 Hz energy frames, AI tokens, avatar positions). */
import { createServer, type Server } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { publish } from "@framecast/testkit";

export const DEMO_CONFIG = `
status_interval = "1s"
drain_timeout = "2s"
[namespaces.energy]
delivery = "conflated"
history_size = 600
[namespaces.tokens]
history_size = 5000
[namespaces.pos]
delivery = "conflated"
snapshot = true
history_size = 1000
`;

const DIST = fileURLToPath(new URL("../dist/", import.meta.url));
const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };

/** Serves dist/ on 127.0.0.1 (port 0 unless given). */
export async function serveStatic(port = 0): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    const file = join(DIST, path === "/" ? "index.html" : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  const addr = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${addr.port}/` };
}

const WORDS = "the frame clock carries every event in order so a reconnecting client misses nothing".split(" ");

/** Publishes energy frames at ~60 Hz and a token every 50 ms until stopped. `httpUrl()` is read
 * on every publish (the server may restart). Publish errors while it is down are ignored. */
export function startFeeder(httpUrl: () => string): { stop: () => void; tokens: () => number } {
  let stopped = false;
  let tokens = 0;
  let t = 0;
  const energy = async () => {
    while (!stopped) {
      t++;
      const values = Array.from({ length: 32 }, (_, i) => 0.5 + 0.45 * Math.sin(t / 12 + i / 3));
      await publish(httpUrl(), "energy:field", { values, t }).catch(() => {});
      await new Promise((r) => setTimeout(r, 16));
    }
  };
  const talk = async () => {
    while (!stopped) {
      await publish(httpUrl(), "tokens:demo", { t: WORDS[tokens % WORDS.length] + " ", i: tokens }).then(
        () => tokens++,
        () => {},
      );
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  void energy();
  void talk();
  return {
    stop: () => {
      stopped = true;
    },
    tokens: () => tokens,
  };
}

/** Publishes one position per avatar, value `v`. */
export async function publishPositions(httpUrl: string, v: number, avatars = ["alice", "bob", "carol"]): Promise<void> {
  for (const [i, a] of avatars.entries()) {
    await publish(httpUrl, "pos:demo", { x: i * 10 + v, y: v, v }, { key: a });
  }
}

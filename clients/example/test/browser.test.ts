/** The example app in Debian's headless Chromium (playwright-core, no downloaded browser), against a
 * real framecast process behind a TCP proxy that counts the page's connections. */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { FaultProxy, FramecastServer, waitFor } from "@framecast/testkit";
import { DEMO_CONFIG, publishPositions, serveStatic, startFeeder } from "./demo.js";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));

let server: FramecastServer;
let proxy: FaultProxy;
let web: Awaited<ReturnType<typeof serveStatic>>;
let feeder: ReturnType<typeof startFeeder>;
let context: BrowserContext;
let page: Page;
let profile: string;
const consoleLines: string[] = [];

interface Probe {
  states: string[];
  energy: { frames: number; events: number; unexplained: number; violations: number; gaps: number; lastSeq: number };
  tokens: { events: number; repeats: number; jumps: number; lastSeq: number };
}
const probe = (): Promise<Probe> => page.evaluate(() => (globalThis as unknown as { __framecast: Probe }).__framecast);
const text = (id: string): Promise<string> => page.locator(`[data-testid="${id}"]`).innerText();

async function positions(): Promise<Record<string, number>> {
  return page.$$eval('[data-testid="positions"] li', (lis) =>
    Object.fromEntries(lis.map((li) => [li.getAttribute("data-key") ?? "", Number(li.getAttribute("data-v"))])),
  );
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} (apt-get install chromium)`);
  web = await serveStatic();
  // The page may call the HTTP API from its own origin (CORS), nobody else's.
  server = await FramecastServer.start({ config: `cors_origins = ["${new URL(web.url).origin}"]\n${DEMO_CONFIG}` });
  proxy = await FaultProxy.start(server.port);
  // The snapshot the page must show first.
  await publishPositions(server.httpUrl, 1);
  feeder = startFeeder(() => server.httpUrl);
  profile = mkdtempSync(join(tmpdir(), "framecast-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
});

after(async () => {
  feeder?.stop();
  await context?.close();
  web?.server.close();
  await proxy?.close();
  await server?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Runs a step; on failure saves a screenshot and the page's console to clients/test-artifacts/. */
async function step(name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = join(ARTIFACTS, `${name.replace(/\W+/g, "-")}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.log(`# screenshot: ${file}\n# console:\n${consoleLines.slice(-30).join("\n")}`);
    throw err;
  }
}

describe("example in Chromium", { timeout: 180_000 }, () => {
  test("StrictMode: exactly one server connection; snapshot then deltas; tokens; gauges; 60 Hz canvas", async () => {
    await step("connect", async () => {
      await page.goto(`${web.url}?ws=${encodeURIComponent(proxy.wsUrl)}`);
      await waitFor(async () => (await text("state")).startsWith("connected"), async () => `state: ${await text("state")}`);
      await new Promise((r) => setTimeout(r, 1500)); // StrictMode's double effects are long over
      assert.equal(proxy.accepted, 1, "one WebSocket connection under StrictMode");
      assert.equal(proxy.connections, 1);
    });
    await step("snapshot-then-deltas", async () => {
      await waitFor(async () => Object.keys(await positions()).length === 3, "three avatars from the snapshot");
      assert.deepEqual(await positions(), { alice: 1, bob: 1, carol: 1 });
      await publishPositions(server.httpUrl, 2);
      await waitFor(async () => Object.values(await positions()).every((v) => v === 2), "deltas applied");
    });
    await step("tokens-and-gauges", async () => {
      await waitFor(async () => (await text("tokens")).split(" ").length > 10, "tokens stream in");
      const shown = (await text("tokens")).trim().split(/\s+/);
      const words = "the frame clock carries every event in order so a reconnecting client misses nothing".split(" ");
      // The stream joined mid-sentence: from the first word shown, every token follows in order.
      const start = words.indexOf(shown[0]!);
      assert.ok(start >= 0, shown[0]);
      shown.forEach((w, i) => assert.equal(w, words[(start + i) % words.length], `token ${i} in order`));
      const tk = (await probe()).tokens;
      assert.ok(tk.events > 10, `useChannel's handler got the tokens (${tk.events})`);
      assert.equal(tk.repeats, 0, "useChannel: no event twice under StrictMode");
      assert.equal(tk.jumps, 0, "useChannel: no event missing");
      await waitFor(async () => /connections/.test(await text("status-connections")), "system.status gauges", 15_000);
      await waitFor(async () => /RTT \d/.test(await text("rtt")), "RTT shown", 15_000);
    });
    await step("cors", async () => {
      // The page's origin is allowed: a GET and a JSON POST (preflighted) to /api/v1 from the page.
      const r = await page.evaluate(async (api) => {
        const info = await fetch(`${api}/api/v1/channels/pos%3Ademo`);
        const post = await fetch(`${api}/api/v1/broadcast`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ channel: "pos:demo", data: { x: 0, y: 0, v: 2 }, key: "dave" }),
        });
        return { info: info.status, seq: ((await info.json()) as { last_seq: number }).last_seq, post: post.status };
      }, server.httpUrl);
      assert.deepEqual([r.info, r.post], [200, 202], JSON.stringify(r));
      // The channel list is refreshed about once a second: its last_seq may lag the deltas just
      // published, so only its shape is checked here (CORS is what this step is about).
      assert.equal(typeof r.seq, "number", JSON.stringify(r));
      await waitFor(async () => (await positions()).dave === 2, "the page's own broadcast arrives");
      // Another origin is refused by the browser (no Access-Control-Allow-Origin for it).
      const other = await fetch(`${server.httpUrl}/api/v1/channels/pos%3Ademo`, { headers: { origin: "http://evil.example" } });
      assert.equal(other.headers.get("access-control-allow-origin"), null);
      const mine = await fetch(`${server.httpUrl}/api/v1/channels/pos%3Ademo`, { headers: { origin: new URL(web.url).origin } });
      assert.equal(mine.headers.get("access-control-allow-origin"), new URL(web.url).origin);
    });
    await step("canvas", async () => {
      await waitFor(async () => (await probe()).energy.events > 120, async () => JSON.stringify((await probe()).energy));
      const e = (await probe()).energy;
      assert.ok(e.frames > 30, `drawn in requestAnimationFrame (${e.frames} frames)`);
      assert.equal(e.unexplained, 0, "no seq jump without a gap");
      assert.equal(e.violations, 0);
    });
  });

  test("a server restart shows reconnecting, then recovered values", async () => {
    await step("restart", async () => {
      const before = (await probe()).states.length;
      // The page stays away until the new process holds new positions: they must come back as
      // its snapshot (resync), not as live deltas.
      server = await server.restart(async () => {
        proxy.refuse(true);
      });
      proxy.targetPort = server.port;
      await waitFor(async () => (await probe()).states.slice(before).includes("reconnecting"), async () => `states ${(await probe()).states}`);
      await publishPositions(server.httpUrl, 3);
      await waitFor(async () => {
        const r = await fetch(`${server.httpUrl}/api/v1/channels/pos%3Ademo`);
        return r.ok && ((await r.json()) as { last_seq: number }).last_seq >= 3;
      }, "the new process holds the positions");
      proxy.refuse(false);
      await waitFor(async () => (await text("state")).startsWith("connected"), async () => `state: ${await text("state")}`, 30_000);
      await waitFor(async () => {
        const p = await positions();
        return Object.keys(p).length === 3 && Object.values(p).every((v) => v === 3);
      }, async () => `positions after restart: ${JSON.stringify(await positions())}`);
      const e0 = (await probe()).energy.events;
      await waitFor(async () => (await probe()).energy.events > e0 + 60, "energy flows again");
      const e = (await probe()).energy;
      assert.equal(e.unexplained, 0, JSON.stringify(e));
      assert.equal(e.violations, 0, JSON.stringify(e));
      assert.equal(proxy.relayed, 2, "one reconnection");
    });
  });

  test("unmounting the provider leaves no connection", async () => {
    await step("unmount", async () => {
      await page.locator('[data-testid="toggle"]').click();
      await page.locator('[data-testid="unmounted"]').waitFor();
      await waitFor(() => proxy.connections === 0, "the socket closes after the linger", 10_000);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(proxy.connections, 0);
      assert.equal(proxy.relayed, 2, "no reconnect after unmount");
    });
  });
});

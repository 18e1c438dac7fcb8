/** wss:// in Debian's headless Chromium: a page served here loads the browser build of
 * @framecast/client (client/dist, ES modules as they are) and connects to a framecast that serves
 * TLS itself with the repository's test leaf (`server-rsa.pem`, for `localhost`).
 *
 * Chromium is made to trust that one certificate with `--ignore-certificate-errors-spki-list`
 * (base64 SHA-256 of the leaf's SubjectPublicKeyInfo, computed here from the PEM): it pins exactly
 * that key, per launch, needs no NSS database (`certutil`) or HOME of its own, and leaves every
 * other check on (the name, validity; `--ignore-certificate-errors` / `ignoreHTTPSErrors` are not
 * used). A Chromium without the flag, and one pinning another key (the ECDSA leaf), must fail to
 * connect: trusting that key is what makes it work. */
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { FramecastServer, fresh, publish, testCa, TLS_DIR, tlsArgs, waitFor } from "@framecast/testkit";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
/** The browser build: dist/index.js and the modules it imports (no bundling, no dependencies). */
const CLIENT_DIST = dirname(fileURLToPath(import.meta.resolve("@framecast/client/browser")));

/** base64(SHA-256(SubjectPublicKeyInfo DER)) of a PEM certificate: what Chromium's
 * `--ignore-certificate-errors-spki-list` takes (as `openssl x509 -pubkey | openssl pkey -pubin
 * -outform der | openssl dgst -sha256 -binary | base64` prints). */
function spkiPin(pemFile: string): string {
  const cert = new X509Certificate(readFileSync(pemFile));
  return createHash("sha256").update(cert.publicKey.export({ type: "spki", format: "der" })).digest("base64");
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>framecast wss</title></head>
<body>
<script type="module">
import { FramecastClient } from "/client/index.js";
const q = new URLSearchParams(location.search);
const name = q.get("ch");
const probe = { states: [], events: [], errors: [] };
globalThis.__tls = probe;
/** A bare WebSocket to url: whether it opened, and the close code. */
globalThis.__raw = (url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  let opened = false;
  ws.onopen = () => { opened = true; ws.close(1000); };
  ws.onclose = (ev) => resolve({ opened, code: ev.code });
});
const fc = new FramecastClient({ url: q.get("ws"), reconnect: { baseMs: 100, capMs: 400 } });
fc.on("state", (s) => probe.states.push(s.to));
fc.on("error", (e) => probe.errors.push(String(e.message)));
const ch = fc.channel(name);
ch.subscribe((e) => probe.events.push({ seq: e.seq, data: e.data }));
globalThis.__channelState = () => ch.state;
globalThis.__publish = (data) => fc.publish(name, data).then((ack) => ack.seq ?? null);
fc.connect().catch((e) => probe.errors.push(String(e.message)));
</script>
</body></html>`;

interface TlsProbe {
  states: string[];
  events: { seq: number; data: unknown }[];
  errors: string[];
}

/** Serves the page at / and client/dist at /client/ on 127.0.0.1. */
async function servePage(): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      return;
    }
    if (path.startsWith("/client/") && path.endsWith(".js") && !path.includes("..")) {
      try {
        const body = await readFile(join(CLIENT_DIST, path.slice("/client/".length)));
        res.writeHead(200, { "content-type": "text/javascript" }).end(body);
        return;
      } catch {
        /* 404 below */
      }
    }
    res.writeHead(404).end("not found");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/` };
}

const BASE_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let server: FramecastServer;
let web: Awaited<ReturnType<typeof servePage>>;
const contexts: BrowserContext[] = [];
const profiles: string[] = [];

/** A Chromium of its own (persistent profile: the SPKI flag is honoured only with a user data dir). */
async function browser(extraArgs: string[]): Promise<{ page: Page; consoleLines: string[] }> {
  const profile = mkdtempSync(join(tmpdir(), "framecast-chromium-tls-"));
  profiles.push(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...BASE_ARGS, ...extraArgs],
  });
  contexts.push(context);
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleLines: string[] = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  return { page, consoleLines };
}

const probe = (page: Page): Promise<TlsProbe> => page.evaluate(() => (globalThis as unknown as { __tls: TlsProbe }).__tls);

before(async () => {
  server = await FramecastServer.start({ args: tlsArgs("rsa") });
  assert.equal(server.scheme, "wss", server.logs.join("\n"));
  web = await servePage();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  web?.server.close();
  await server?.stop();
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
});

describe("wss:// in Chromium", { timeout: 120_000 }, () => {
  test("trusting the leaf's key (SPKI pin): connects, receives an HTTPS-published event, publishes", async () => {
    const pin = spkiPin(join(TLS_DIR, "server-rsa.pem"));
    const { page, consoleLines } = await browser([`--ignore-certificate-errors-spki-list=${pin}`]);
    const why = async (): Promise<string> => `${JSON.stringify(await probe(page))}\n${consoleLines.join("\n")}`;
    const name = fresh("tls:browser");
    await page.goto(`${web.url}?ws=${encodeURIComponent(server.wsUrl)}&ch=${encodeURIComponent(name)}`);
    assert.match(server.wsUrl, /^wss:\/\/localhost:\d+\/ws$/);
    await waitFor(async () => (await probe(page)).states.includes("connected"), why);
    await waitFor(async () => (await page.evaluate(() => (globalThis as unknown as { __channelState: () => string }).__channelState())) === "live", why);
    await publish(server.httpUrl, name, { from: "https" }, { ca: testCa() });
    await waitFor(async () => (await probe(page)).events.length === 1, why);
    const seq = await page.evaluate(() => (globalThis as unknown as { __publish: (d: unknown) => Promise<number | null> }).__publish({ from: "browser" }));
    assert.equal(seq, 2);
    await waitFor(async () => (await probe(page)).events.length === 2, why);
    const p = await probe(page);
    assert.deepEqual(p.events, [
      { seq: 1, data: { from: "https" } },
      { seq: 2, data: { from: "browser" } },
    ]);
    assert.ok(!p.states.includes("reconnecting"), `one connection throughout: ${p.states.join(" ")}`);
    assert.deepEqual(p.errors, []);
    // A bare WebSocket opens as well.
    const raw = await page.evaluate((url) => (globalThis as unknown as { __raw: (u: string) => Promise<{ opened: boolean; code: number }> }).__raw(url), server.wsUrl);
    assert.deepEqual(raw, { opened: true, code: 1000 });
  });

  for (const [what, args] of [
    ["without the flag", []],
    ["with another key's pin (the ECDSA leaf)", [`--ignore-certificate-errors-spki-list=${spkiPin(join(TLS_DIR, "server-ecdsa.pem"))}`]],
  ] as const) {
    test(`${what} the certificate is not trusted: no connection`, async () => {
      const { page, consoleLines } = await browser([...args]);
      const why = async (): Promise<string> => `${JSON.stringify(await probe(page))}\n${consoleLines.join("\n")}`;
      const name = fresh("tls:browser");
      await page.goto(`${web.url}?ws=${encodeURIComponent(server.wsUrl)}&ch=${encodeURIComponent(name)}`);
      // The handshake is refused by the browser: the socket never opens (1006), the client retries.
      const raw = await page.evaluate((url) => (globalThis as unknown as { __raw: (u: string) => Promise<{ opened: boolean; code: number }> }).__raw(url), server.wsUrl);
      assert.deepEqual(raw, { opened: false, code: 1006 });
      await waitFor(async () => (await probe(page)).states.filter((s) => s === "reconnecting").length >= 2, why);
      const p = await probe(page);
      assert.ok(!p.states.includes("connected"), p.states.join(" "));
      assert.deepEqual(p.events, []);
      // Chromium says why (the console of a page whose WebSocket fails the certificate check).
      assert.ok(
        consoleLines.some((l) => /ERR_CERT_AUTHORITY_INVALID/.test(l)),
        `a certificate error in the console:\n${consoleLines.join("\n")}`,
      );
    });
  }
});

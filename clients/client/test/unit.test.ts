/** Pure parts, the bundle budget and import-time safety. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { build } from "esbuild";
import { Clock, refreshDelay, tokenExpiry } from "@framecast/client";

const BUDGET_GZIP = 8 * 1024;

describe("unit", () => {
  test("clock: the minimum-RTT sample of the last 8 wins", () => {
    const c = new Clock();
    assert.equal(c.synced, false);
    c.sample(1000, 1100, 5050); // rtt 100, offset 4000
    c.sample(2000, 2010, 6105); // rtt 10, offset 4100
    c.sample(3000, 3050, 7000); // rtt 50
    assert.equal(c.offsetMs, 4100);
    assert.equal(c.errorMs, 5);
    assert.equal(c.toLocal(10_000), 5900);
    for (let i = 0; i < 8; i++) c.sample(10_000, 10_020, 14_010); // the rtt-10 sample ages out
    assert.equal(c.offsetMs, 4000);
  });

  test("token expiry and refresh timing", () => {
    const payload = Buffer.from(JSON.stringify({ sub: "a", exp: 2_000_000_000 })).toString("base64url");
    assert.equal(tokenExpiry(`h.${payload}.s`), 2_000_000_000_000);
    assert.equal(tokenExpiry("garbage"), null);
    assert.equal(tokenExpiry(null), null);
    const now = 1_000_000;
    assert.equal(refreshDelay(now + 3_600_000, now), 3_240_000, "an hour: 10 % before");
    assert.equal(refreshDelay(now + 120_000, now), 90_000, "two minutes: 30 s before");
    assert.equal(refreshDelay(now + 4_000, now), 2_000, "short-lived: at half time");
    assert.equal(refreshDelay(now - 1, now), 0);
  });

  test("browser bundle: no runtime dependency, nothing touches window, within the size budget", async () => {
    const entry = fileURLToPath(import.meta.resolve("@framecast/client/browser"));
    const out = await build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", write: false, platform: "browser", metafile: true });
    const code = out.outputFiles[0]!.contents;
    const gz = gzipSync(code, { level: 9 }).length;
    console.log(`# @framecast/client browser bundle: ${code.length} bytes minified, ${gz} bytes gzip -9 (budget ${BUDGET_GZIP})`);
    assert.ok(gz <= BUDGET_GZIP, `${gz} bytes gzip`);
    const inputs = Object.keys(out.metafile.inputs);
    assert.ok(inputs.every((f) => !f.includes("node_modules")), `only the package's own files: ${inputs.join(", ")}`);
    const text = new TextDecoder().decode(code);
    assert.ok(!/\bwindow\b|\bdocument\b/.test(text), "no window/document reference");
    assert.ok(!readFileSync(entry, "utf8").includes('"ws"'), "the browser entry never imports ws");
  });

  test("importing the client in a bare environment has no side effects", async () => {
    const g = globalThis as Record<string, unknown>;
    assert.equal(g.window, undefined);
    const mod = await import("@framecast/client/browser");
    const c = new mod.FramecastClient({ url: "ws://127.0.0.1:9/ws" });
    assert.equal(c.state, "idle", "constructing connects nothing");
  });
});

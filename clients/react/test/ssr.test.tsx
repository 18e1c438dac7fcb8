/** Server-side rendering connects nothing and reads no browser global. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { renderToString } from "react-dom/server";
import { FramecastProvider, useConnectionState, useLatest, useLatestByKey, useStream, useFrame } from "@framecast/react";
import { FaultProxy, FramecastServer, sleep } from "@framecast/testkit";

function Panel() {
  const conn = useConnectionState();
  const cpu = useLatest<{ cpu_usage: number }>("system.status");
  const pos = useLatestByKey("pos:w");
  const toks = useStream("tokens:x");
  useFrame("energy:x", () => {});
  return (
    <p>
      {conn.state}|{cpu?.cpu_usage ?? "-"}|{pos.size}|{toks.length}
    </p>
  );
}

describe("ssr", () => {
  test("renderToString renders defaults and opens no connection", async () => {
    const server = await FramecastServer.start();
    const p = await FaultProxy.start(server.port);
    try {
      const html = renderToString(
        <FramecastProvider url={p.wsUrl}>
          <Panel />
        </FramecastProvider>,
      );
      assert.equal(html.replace(/<!-- -->/g, ""), "<p>idle|-|0|0</p>");
      await sleep(300);
      assert.equal(p.accepted, 0, "no connection");
    } finally {
      await p.close();
      await server.stop();
    }
  });
});

/** @framecast/client — Node entry (the "node" export condition): the same client, with the
 * optional peer `ws` loaded on first connect (Node 20 has no global WebSocket), so the
 * `Authorization: Bearer` header can be sent; `auth` defaults to "header". */
import { FramecastClient as BaseClient, SOCKET_FACTORY, type ClientOptions, type SocketFactory } from "./client.js";
import type { WebSocketConstructor, WebSocketLike } from "./types.js";

export * from "./index.js";

let loaded: Promise<WebSocketConstructor> | undefined;

function loadWs(): Promise<WebSocketConstructor> {
  loaded ??= import("ws").then(
    (m) => ((m as { WebSocket?: unknown }).WebSocket ?? (m as { default?: unknown }).default) as WebSocketConstructor,
    () => {
      const g = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (g) return g;
      throw new Error("framecast: install the `ws` package (npm i ws) or pass the WebSocket option");
    },
  );
  return loaded;
}

const nodeFactory =
  (explicit: WebSocketConstructor | undefined, compression: boolean): SocketFactory =>
  async (url, headers): Promise<WebSocketLike> => {
    const Ctor = explicit ?? (await loadWs());
    if (!compression) return new Ctor(url, undefined, { headers, perMessageDeflate: false });
    return headers ? new Ctor(url, undefined, { headers }) : new Ctor(url);
  };

/** The framecast client for Node (see the browser entry for the API). */
export class FramecastClient extends BaseClient {
  constructor(options: ClientOptions) {
    const factory = nodeFactory(options.WebSocket, options.compression ?? true);
    super({ auth: "header", ...options, [SOCKET_FACTORY]: factory } as ClientOptions);
  }
}

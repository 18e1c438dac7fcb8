/** @framecast/client — Node entry (the "node" export condition): the same client, with the
 * optional peer `ws` loaded on first connect (Node 20 has no global WebSocket), so the
 * `Authorization: Bearer` header can be sent; `auth` defaults to "header". */
import { FramecastClient as BaseClient, SOCKET_FACTORY, type ClientOptions, type SocketFactory } from "./client.js";
import type { WebSocketConstructor, WebSocketLike } from "./types.js";

export * from "./index.js";

/** What the Node entry hands to the `ws` constructor (its `ClientOptions`, which `ws` passes on to
 * `https.request` / `tls.connect`): for `wss://`, e.g. `ca` to trust a private CA, `cert` + `key`
 * for a client certificate, `servername`; also `agent`, `family`, `handshakeTimeout`… Typed
 * structurally so the client needs no `@types/ws`; any other `ws` option passes through. */
export interface NodeWebSocketOptions {
  /** Trusted CA certificates (PEM), in place of Node's bundled roots. */
  ca?: string | Uint8Array | ReadonlyArray<string | Uint8Array>;
  /** Client certificate chain (PEM), with `key`. */
  cert?: string | Uint8Array | ReadonlyArray<string | Uint8Array>;
  /** Private key of `cert` (PEM). */
  key?: string | Uint8Array | ReadonlyArray<string | Uint8Array>;
  /** Passphrase of `key`. */
  passphrase?: string;
  /** TLS SNI / the name the certificate must carry (default: the URL's host). */
  servername?: string;
  /** Extra upgrade headers (the client's `Authorization` wins). */
  headers?: Record<string, string>;
  [option: string]: unknown;
}

/** Options of the Node entry: the browser's, plus {@link NodeWebSocketOptions} for `ws`. */
export interface NodeClientOptions extends ClientOptions {
  /** Given to the WebSocket constructor (the `ws` package, or the `WebSocket` option) as its third
   * argument on every connection, under the client's own `headers` and `perMessageDeflate: false`
   * (`compression: false`). E.g. `{ ca: readFileSync("ca.pem") }` for a `wss://` server whose
   * certificate a private CA signed (verification stays on). */
  webSocketOptions?: NodeWebSocketOptions;
}

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
  (explicit: WebSocketConstructor | undefined, compression: boolean, extra: NodeWebSocketOptions | undefined): SocketFactory =>
  async (url, headers): Promise<WebSocketLike> => {
    const Ctor = explicit ?? (await loadWs());
    if (extra) {
      const merged = headers || extra.headers ? { headers: { ...extra.headers, ...headers } } : {};
      return new Ctor(url, undefined, { ...extra, ...merged, ...(compression ? {} : { perMessageDeflate: false }) });
    }
    if (!compression) return new Ctor(url, undefined, { headers, perMessageDeflate: false });
    return headers ? new Ctor(url, undefined, { headers }) : new Ctor(url);
  };

/** The framecast client for Node (see the browser entry for the API). */
export class FramecastClient extends BaseClient {
  constructor(options: NodeClientOptions) {
    const factory = nodeFactory(options.WebSocket, options.compression ?? true, options.webSocketOptions);
    super({ auth: "header", ...options, [SOCKET_FACTORY]: factory } as ClientOptions);
  }
}

import { BINARY_VERSION, bytesOf, decodeBase64, decodeBinaryEvent, encodeBinaryPublish } from "./binary.js";
import { Channel, eventEncoding, type ChannelHost, type ChannelOptions } from "./channel.js";
import { Emitter } from "./emitter.js";
import { clientError, FramecastError, serverError } from "./errors.js";
import {
  backoffDelay,
  Clock,
  DEFAULT_RECONNECT,
  refreshDelay,
  tokenExpiry,
  type ReconnectOptions,
} from "./timing.js";
import type {
  ConnectedInfo,
  ConnectionState,
  FramecastEvent,
  Position,
  PublishAck,
  ServerMessage,
  StateChange,
  TokenRequestReason,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.js";

/** Options of a {@link FramecastClient}. */
export interface ClientOptions {
  /** `ws://host:port/ws` (or `wss://`). */
  url: string;
  /** A JWT, if the server wants one. */
  token?: string | null;
  /** Fetches a (new) token: before connecting without one, before the current one expires
   * (refreshed on the live connection), and once after a rejection. `null` = none to be had. */
  getToken?: (why: TokenRequestReason) => Promise<string | null> | string | null;
  /** How the token travels: first `auth` message (default in browsers: an upgrade's 401 is invisible
   * there), `Authorization: Bearer` header (default in Node), or `?token=` query. */
  auth?: "message" | "header" | "query";
  /** Reconnect timing, or false for none. `autoReconnect: false` (the NeuroGraph seed's name) too. */
  reconnect?: boolean | Partial<ReconnectOptions>;
  autoReconnect?: boolean;
  /** Application-level ping period and how long to wait for any message after it before the
   * connection counts as dead (half-open). Default 15 s / 10 s; false disables. */
  heartbeat?: false | { intervalMs?: number; timeoutMs?: number };
  /** The `connected` message must arrive within this (ms). Default 10000. */
  connectTimeoutMs?: number;
  /** A publish without `published`/`error` within this rejects with TIMEOUT (ms). Default 10000. */
  requestTimeoutMs?: number;
  /** Refresh the token this long before `exp` (ms). Default max(30 s, 10 % of its lifetime). */
  refreshMarginMs?: number;
  /** Ask for tick batches (`?batch=1`): a channel's events of one frame-clock tick arrive as one
   * message (a JSON array), fewer messages and, compressed, about a third of the bytes. Events are
   * handed out one by one either way. Default false. */
  batch?: boolean;
  /** Ask for binary events as binary frames (`?binary=1`): their payload arrives as is, `data` a
   * `Uint8Array` viewing the received buffer (`encoding: "binary"`), with no base64 in between.
   * Without it they come as JSON with base64 `data`, which the client decodes to the same bytes
   * (`encoding: "base64"`). Default false. */
  binary?: boolean;
  /** Offer permessage-deflate (Node's `ws`; default true). Browsers always offer it, whatever this
   * says. The server compresses each event once for all compressing clients. */
  compression?: boolean;
  /** A WebSocket implementation (default: the global one; in Node the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** Random numbers in [0, 1) for jitter (tests). */
  random?: () => number;
}

/** Events of a {@link FramecastClient}. */
export interface ClientEvents {
  /** Every connection state change. */
  state: StateChange;
  /** Connected (and authenticated): the NeuroGraph seed's `on("connected", info)`. */
  connected: ConnectedInfo;
  /** The connection was lost or closed. */
  disconnected: { code: number; reason: string; willReconnect: boolean };
  /** The server announced it is going away (or is full) and when to come back: the next attempt
   * starts no earlier than `receivedAt + afterMs` (`receivedAt`: `Date.now()` when the hint was read). */
  draining: { afterMs: number; reason: string; receivedAt: number };
  /** A new identity was accepted on the live connection (token refresh). */
  authenticated: { userId: string; tokenExpiresAt: number | null };
  /** Every delivered event of every channel, including default channels nobody subscribed. */
  event: FramecastEvent<unknown>;
  /** A server `notification` (e.g. the welcome message). */
  notification: { level: string; message: string; raw: ServerMessage };
  /** Errors not tied to a request (a listener may log them). */
  error: FramecastError;
  /** Any server message of a type this client does not know. */
  message: ServerMessage;
  /** A round-trip measurement (ms), from `ping()` and the heartbeat. */
  rtt: number;
}

interface Pending {
  kind: "subscribe" | "unsubscribe" | "publish" | "ping" | "auth" | "subscriptions";
  resolve: (v: unknown) => void;
  reject: (e: FramecastError) => void;
  channel?: Channel<unknown>;
  t0?: number;
  wall0?: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** How to create a socket; the Node entry supplies one that loads `ws`. @internal */
export type SocketFactory = (
  url: string,
  headers: Record<string, string> | undefined,
) => WebSocketLike | Promise<WebSocketLike>;

/** @internal */
export const SOCKET_FACTORY = Symbol("framecast.socketFactory");

/** Node's (OpenSSL's) codes for a certificate that did not verify: the chain, its dates, the name. */
const CERTIFICATE_ERRORS = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_REVOKED",
  "CERT_CHAIN_TOO_LONG",
  "INVALID_CA",
  "INVALID_PURPOSE",
  "PATH_LENGTH_EXCEEDED",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

const now = (): number => (globalThis.performance ? globalThis.performance.now() : Date.now());

/** A framecast connection: states, reconnects with the server's hints or jittered backoff,
 * resubscribes every channel with `since`, settles requests by `id`, measures RTT and the clock. */
export class FramecastClient extends Emitter<ClientEvents> {
  readonly url: string;
  /** The server clock estimate (offset from the minimum-RTT sample of the last 8). */
  readonly clock = new Clock();
  #o: ClientOptions;
  #reconnect: ReconnectOptions | null;
  #auth: "message" | "header" | "query";
  #factory: SocketFactory;
  #random: () => number;
  #state: ConnectionState = "idle";
  #ws: WebSocketLike | null = null;
  #gen = 0;
  #open = false; // socket open: commands may be sent
  #attempt = 0;
  #everConnected = false;
  #connectedAt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #hint: { at: number; afterMs: number } | null = null;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #channels = new Map<string, Channel<unknown>>();
  #awaiting: Channel<unknown>[] = [];
  #syncPing = false;
  #token: string | null;
  #tokenRetryUsed = false;
  #tokenReason: TokenRequestReason | null = null;
  #tokenExpiresAt: number | null = null;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #hbTimer: ReturnType<typeof setInterval> | undefined;
  #hbDeadline: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #info: ConnectedInfo | null = null;
  #hello: Record<string, unknown> | null = null;
  #authPending = false;
  #upgradeStatus = 0;
  /** The TLS verification error code of the current attempt (Node only), e.g. `CERT_HAS_EXPIRED`. */
  #certificateError: string | null = null;
  #waiters: { resolve: (i: ConnectedInfo) => void; reject: (e: FramecastError) => void }[] = [];
  #rttMs: number | null = null;
  #host: ChannelHost;

  constructor(options: ClientOptions) {
    super();
    this.#o = options;
    this.url = options.url;
    this.#token = options.token ?? null;
    const r = options.autoReconnect === false ? false : (options.reconnect ?? true);
    this.#reconnect = r === false ? null : { ...DEFAULT_RECONNECT, ...(r === true ? {} : r) };
    const custom = (options as { [SOCKET_FACTORY]?: SocketFactory })[SOCKET_FACTORY];
    this.#auth = options.auth ?? "message";
    this.#random = options.random ?? Math.random;
    this.#factory =
      custom ??
      ((url, headers) => {
        const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
        if (!Ctor) throw clientError("NO_WEBSOCKET", "no WebSocket implementation: pass the WebSocket option");
        return headers ? new Ctor(url, undefined, { headers }) : new Ctor(url);
      });
    const self = this;
    this.#host = {
      get online() {
        return self.#open;
      },
      sendSubscribe: (ch, since, maxHz) => this.#sendSubscribe(ch, since, maxHz),
      sendUnsubscribe: (ch) => {
        this.#request({ type: "unsubscribe", channels: [ch.name] }, { kind: "unsubscribe", channel: ch }).catch(() => {});
      },
      awaitEnd: (ch) => this.#awaiting.push(ch),
      toLocal: (ms) => this.clock.toLocal(ms),
      delivered: (e) => this.emit("event", e),
      // A closed channel is forgotten unless someone still listens to it (a `client.channel(name)`
      // kept with its listeners, subscribed again later, must get its events).
      released: (ch) => {
        if (this.#channels.get(ch.name) === ch && ch.refs === 0 && !ch.hasListeners()) this.#channels.delete(ch.name);
      },
      adopt: (ch) => {
        if (!this.#channels.has(ch.name)) this.#channels.set(ch.name, ch);
      },
    };
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The last `connected` info, while connected. */
  get info(): ConnectedInfo | null {
    return this.#info;
  }

  /** The last measured round trip (ms). */
  get rttMs(): number | null {
    return this.#rttMs;
  }

  /** Token expiry (ms since the epoch) of the current identity, if known. */
  get tokenExpiresAt(): number | null {
    return this.#tokenExpiresAt;
  }

  /** Starts connecting (if not already) and resolves once connected; rejects on `failed` or
   * `close()`. Reconnects after losses until `close()`. */
  connect(): Promise<ConnectedInfo> {
    const p = new Promise<ConnectedInfo>((resolve, reject) => {
      if (this.#state === "connected" && this.#info) return resolve(this.#info);
      this.#waiters.push({ resolve, reject });
    });
    if (this.#state === "idle" || this.#state === "closed" || this.#state === "failed") {
      this.#attempt = 0;
      this.#tokenRetryUsed = false;
      void this.#connectNow(false);
    }
    return p;
  }

  /** Closes the connection for good (until `connect()` again); pending requests reject. */
  close(): void {
    if (this.#state === "closed") return;
    clearTimeout(this.#timer);
    const ws = this.#ws;
    this.#teardown(1000, "client closed", true);
    if (ws) this.#dispose(ws, 1000, "client closed");
    this.#setState({ to: "closed", reason: "client closed" });
    this.#settleWaiters(clientError("CLOSED", "client closed"));
  }

  /** The channel named `name` (created on first use; one object per name). */
  channel<T = unknown>(name: string, options?: ChannelOptions): Channel<T> {
    let ch = this.#channels.get(name);
    if (!ch) {
      ch = new Channel<unknown>(name, this.#host, options);
      this.#channels.set(name, ch);
    } else if (options) {
      ch.options = { ...ch.options, ...options };
    }
    return ch as Channel<T>;
  }

  /** The channels this client holds. */
  channels(): Channel<unknown>[] {
    return [...this.#channels.values()];
  }

  /** Subscribes `handler` to `name` (the seeds' shape); returns the function that unsubscribes it. */
  subscribe<T = unknown>(name: string, handler?: (event: FramecastEvent<T>) => void, options?: ChannelOptions): () => void {
    return this.channel<T>(name, options).subscribe(handler);
  }

  /** Unsubscribes every handler of `name`. */
  unsubscribe(name: string): void {
    this.#channels.get(name)?.unsubscribe();
  }

  /** Publishes; resolves on the server's `published`, rejects on its `error` (FORBIDDEN,
   * RATE_LIMITED, OVERLOADED, …) or NOT_CONNECTED / CONNECTION_LOST (outcome unknown). Nothing is
   * queued while offline and nothing is ever resent. */
  publish(channel: string, data: unknown, options: { eventType?: string; key?: string } = {}): Promise<PublishAck> {
    return this.#publish({ type: "publish", channel, data }, options);
  }

  /** Publishes raw bytes as a binary event (a binary WebSocket message: `0x01`, `0`, u16 length
   * of the JSON part, the `publish` JSON without `data`, then the payload), e.g.
   * `publishBinary("pos:1", new Float32Array([1.5, -2.25]), { eventType: "f32" })`. Any typed
   * array, `DataView` or `ArrayBuffer` is sent as its bytes (copied at the call). Subscribers get
   * the same bytes as `data` (a `Uint8Array`). Settles like {@link publish}. */
  publishBinary(
    channel: string,
    data: Uint8Array | ArrayBuffer | ArrayBufferView,
    options: { eventType?: string; key?: string } = {},
  ): Promise<PublishAck> {
    return this.#publish({ type: "publish", channel }, options, bytesOf(data));
  }

  #publish(msg: Record<string, unknown>, options: { eventType?: string; key?: string }, payload?: Uint8Array): Promise<PublishAck> {
    const channel = String(msg.channel);
    if (options.eventType !== undefined) msg.event_type = options.eventType;
    if (options.key !== undefined) msg.key = options.key;
    const ch = this.#channels.get(channel);
    const p = this.#request(msg, ch ? { kind: "publish", channel: ch } : { kind: "publish" }, undefined, payload) as Promise<ServerMessage>;
    if (ch && this.#pendingChannel === ch) ch._publishSent();
    this.#pendingChannel = null;
    return p.then((m) => {
      const ack: PublishAck = { channel: String(m.channel ?? channel) };
      if (typeof m.seq === "number") ack.seq = m.seq;
      if (typeof m.frame === "number") ack.frame = m.frame;
      if (m.superseded === true) ack.superseded = true;
      return ack;
    });
  }

  /** Sends an application ping; resolves with the round-trip time in ms (also a clock sample). */
  ping(): Promise<number> {
    return this.#request({ type: "ping" }, { kind: "ping", t0: now(), wall0: Date.now() }) as Promise<number>;
  }

  /** The server's view of this connection's channels (`get_subscriptions`). */
  subscriptions(): Promise<string[]> {
    return (this.#request({ type: "get_subscriptions" }, { kind: "subscriptions" }) as Promise<ServerMessage>).then(
      (m) => (Array.isArray(m.channels) ? (m.channels as string[]) : []),
    );
  }

  // ---- connection lifecycle ------------------------------------------------------------------

  #setState(change: Omit<StateChange, "from">): void {
    const from = this.#state;
    if (from === change.to && change.to !== "reconnecting") return;
    this.#state = change.to;
    this.emit("state", { from, ...change });
  }

  #settleWaiters(err: FramecastError | null): void {
    const waiters = this.#waiters.splice(0);
    for (const w of waiters) {
      if (err) w.reject(err);
      else if (this.#info) w.resolve(this.#info);
    }
  }

  async #connectNow(reconnecting: boolean): Promise<void> {
    const gen = ++this.#gen;
    this.#setState({ to: "connecting" });
    this.#hint = null;
    this.#upgradeStatus = 0;
    this.#certificateError = null;
    let token = this.#token;
    const exp = tokenExpiry(token);
    if (this.#o.getToken && (!token || (exp !== null && exp - Date.now() < 5000))) {
      const why: TokenRequestReason = this.#tokenReason ?? (token ? "expired" : "connect");
      this.#tokenReason = null;
      try {
        token = await this.#o.getToken(why);
      } catch (err) {
        if (gen !== this.#gen) return;
        this.emit("error", clientError("TOKEN_FETCH", `getToken failed: ${String(err)}`));
        return this.#lost(gen, 1006, "getToken failed");
      }
      if (gen !== this.#gen) return;
      this.#token = token;
    }
    let url = this.url;
    let headers: Record<string, string> | undefined;
    // Default channels are joined by the server as soon as the connection may act (at open when
    // anonymous connections are allowed, even if a token follows in `auth`; else after the first
    // `auth`): their positions travel on the upgrade URL, which the server keeps for either case.
    const since = this.#sinceForDefaults();
    this.#defaultsSince = new Set(since ? Object.keys(since) : []);
    if (since) url += (url.includes("?") ? "&" : "?") + "since=" + encodeURIComponent(JSON.stringify(since));
    if (token && this.#auth === "query") url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
    if (this.#o.batch) url += (url.includes("?") ? "&" : "?") + "batch=1";
    if (this.#o.binary) url += (url.includes("?") ? "&" : "?") + "binary=1";
    if (token && this.#auth === "header") headers = { Authorization: `Bearer ${token}` };
    let ws: WebSocketLike;
    try {
      ws = await this.#factory(url, headers);
    } catch (err) {
      if (gen !== this.#gen) return;
      const e = err instanceof FramecastError ? err : clientError("NO_WEBSOCKET", String(err));
      this.emit("error", e);
      return this.#fail(e.message);
    }
    if (gen !== this.#gen) return this.#dispose(ws, 1000, "superseded");
    try {
      ws.binaryType = "arraybuffer"; // browsers default to Blob, `ws` to Buffer (both read too)
    } catch {
      /* an implementation without binaryType */
    }
    this.#ws = ws;
    const wall0 = Date.now();
    this.#connectTimer = setTimeout(() => {
      if (gen !== this.#gen) return;
      this.#dispose(ws, 4000, "connect timeout");
      this.#lost(gen, 1006, "connect timeout");
    }, this.#o.connectTimeoutMs ?? 10_000);
    ws.onopen = () => {
      if (gen !== this.#gen) return;
      this.#open = true;
      if (token && this.#auth === "message") {
        this.#authPending = true;
        this.#setState({ to: "authenticating" });
        this.#request({ type: "auth", token }, { kind: "auth" }).catch(() => {});
      }
      // Pipelined behind `auth`: the server checks it before reading the next message.
      for (const ch of this.#channels.values()) ch._sync();
    };
    ws.onmessage = (ev) => {
      if (gen !== this.#gen) return;
      this.#onMessage(ev.data, wall0, reconnecting);
    };
    ws.onerror = (ev) => {
      if (gen !== this.#gen) return;
      const e = ev as { message?: unknown; error?: { message?: unknown; code?: unknown } };
      const m = /Unexpected server response: (\d+)/.exec(String(e.message ?? e.error?.message ?? ""));
      if (m) this.#upgradeStatus = Number(m[1]);
      // Node's `ws` passes the TLS error on (browsers say nothing): an untrusted certificate.
      const code = e.error?.code;
      if (typeof code === "string" && CERTIFICATE_ERRORS.has(code)) this.#certificateError = code;
    };
    ws.onclose = (ev) => {
      if (gen !== this.#gen) return;
      this.#lost(gen, ev.code, ev.reason);
    };
  }

  #becomeConnected(reconnected: boolean): void {
    const hello = this.#hello ?? {};
    clearTimeout(this.#connectTimer);
    const said = this.#authExpires !== undefined ? this.#authExpires : hello.expires_at_ms;
    this.#tokenExpiresAt = typeof said === "number" ? said : tokenExpiry(this.#token);
    const userId = (this.#authUser ?? hello.user_id ?? null) as string | null;
    const info: ConnectedInfo = {
      clientId: String(hello.client_id ?? ""),
      userId,
      client_id: String(hello.client_id ?? ""),
      user_id: userId,
      tickHz: Number(hello.tick_hz ?? 0),
      serverTimeMs: Number(hello.server_time_ms ?? 0),
      tokenExpiresAt: this.#tokenExpiresAt,
      reconnected,
      batch: hello.batch === true,
      binary: hello.binary === true,
      raw: hello,
    };
    this.#info = info;
    this.#connectedAt = Date.now();
    this.#tokenRetryUsed = false;
    this.#everConnected = true;
    this.#setState({ to: "connected" });
    this.#startHeartbeat();
    this.#scheduleRefresh();
    this.emit("connected", info);
    this.#settleWaiters(null);
  }

  #authUser: string | null = null;
  /** `expires_at_ms` of the last `authenticated` on this connection (undefined: none yet). */
  #authExpires: unknown = undefined;
  /** The channel of the request just put on the wire (a publish counts only if it was sent). */
  #pendingChannel: Channel<unknown> | null = null;
  /** Default channels whose position this connection's upgrade or `auth` carried. */
  #defaultsSince = new Set<string>();

  /** Positions of the default channels (joined by the server) to resume from. */
  #sinceForDefaults(): Record<string, Position> | null {
    let out: Record<string, Position> | null = null;
    for (const ch of this.#channels.values()) {
      const pos = ch.position;
      if (ch.isDefault && pos && pos.epoch !== "" && ch.recoverable !== false) (out ??= {})[ch.name] = pos;
    }
    return out;
  }

  #onMessage(data: unknown, wall0: number, reconnecting: boolean): void {
    this.#alive();
    let text: string;
    if (typeof data === "string") text = data;
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      const bytes = bytesOf(data);
      if (bytes[0] === BINARY_VERSION) {
        // A binary event (`?binary=1`): no JSON message starts with 0x01.
        let msg: ServerMessage;
        try {
          msg = decodeBinaryEvent(data);
        } catch (err) {
          return this.emit("error", err as FramecastError);
        }
        return this.#dispatch(msg, wall0, reconnecting);
      }
      text = new TextDecoder().decode(bytes);
    } else return;
    let parsed: ServerMessage | ServerMessage[];
    try {
      parsed = JSON.parse(text) as ServerMessage | ServerMessage[];
    } catch {
      return this.emit("error", clientError("PROTOCOL", "server sent invalid JSON"));
    }
    // A tick batch: one channel's events of one tick, in order.
    if (Array.isArray(parsed)) {
      for (const m of parsed) if (m && typeof m === "object") this.#dispatch(m, wall0, reconnecting);
      return;
    }
    this.#dispatch(parsed, wall0, reconnecting);
  }

  #dispatch(msg: ServerMessage, wall0: number, reconnecting: boolean): void {
    const type = msg.type;
    if (type === "event" || (type === undefined && typeof msg.channel === "string")) {
      if (msg.encoding === "base64" && typeof msg.data === "string") {
        // A binary event in JSON form: the application gets the same bytes as from a binary frame.
        try {
          msg.data = decodeBase64(msg.data);
        } catch {
          this.emit("error", clientError("PROTOCOL", `server sent invalid base64 data on ${String(msg.channel)} (left undecoded)`));
        }
      }
      const ch = this.#channels.get(String(msg.channel));
      if (ch) ch._event(msg);
      else this.emit("event", rawEvent(msg, this.clock));
      return;
    }
    if (type === "gap") {
      this.#channels.get(String(msg.channel))?._gap(msg);
      return;
    }
    if (type === "connected") {
      this.#hello = msg;
      if (typeof msg.server_time_ms === "number") this.clock.sample(wall0, Date.now(), msg.server_time_ms);
      if (!this.#authPending) this.#becomeConnected(reconnecting || this.#everConnected);
      return;
    }
    if (type === "reconnect") {
      const afterMs = Math.max(0, Number(msg.after_ms) || 0);
      const receivedAt = Date.now();
      this.#hint = { at: receivedAt, afterMs };
      this.#setState({ to: "draining", reason: String(msg.reason ?? "") });
      this.emit("draining", { afterMs, reason: String(msg.reason ?? ""), receivedAt });
      return;
    }
    if (type === "notification") {
      const d = (msg.data ?? {}) as { level?: string; message?: string };
      this.emit("notification", { level: d.level ?? "info", message: d.message ?? "", raw: msg });
      return;
    }
    // Every other message is a reply; replies come in command order, so any reply proves that
    // the frames following earlier `subscribed` replies (snapshot, replay) are complete.
    // (`published` is not ordered with other replies on newer servers: it does not count.)
    if (type !== "subscribed" && type !== "published") this.#flushAwaiting();
    const id = typeof msg.id === "number" ? msg.id : -1;
    const req = this.#pending.get(id);
    if (req) {
      this.#pending.delete(id);
      clearTimeout(req.timer);
    }
    switch (type) {
      case "subscribed":
        this.#flushAwaiting();
        if (!req && msg.default === true) return this.#joinedDefaults(msg);
        if (req?.channel) req.channel._subscribed(msg);
        req?.resolve(msg);
        return;
      case "unsubscribed":
        req?.channel?._unsubscribed();
        req?.resolve(msg);
        return;
      case "pong": {
        if (req?.t0 !== undefined) {
          const rtt = now() - req.t0;
          this.#rttMs = rtt;
          this.emit("rtt", rtt);
          if (typeof msg.server_time_ms === "number" && req.wall0 !== undefined) {
            this.clock.sample(req.wall0, Date.now(), msg.server_time_ms);
          }
          req.resolve(rtt);
        } else req?.resolve(0);
        return;
      }
      case "authenticated": {
        this.#authUser = typeof msg.user_id === "string" ? msg.user_id : null;
        this.#authExpires = msg.expires_at_ms;
        if (this.#authPending) {
          this.#authPending = false;
          if (this.#hello) this.#becomeConnected(reconnecting || this.#everConnected);
        } else {
          const serverExp = typeof msg.expires_at_ms === "number" ? msg.expires_at_ms : null;
          this.#tokenExpiresAt = serverExp ?? tokenExpiry(this.#token);
          if (this.#info) this.#info = { ...this.#info, userId: this.#authUser, user_id: this.#authUser, tokenExpiresAt: this.#tokenExpiresAt };
          this.emit("authenticated", { userId: this.#authUser ?? "", tokenExpiresAt: this.#tokenExpiresAt });
          this.#scheduleRefresh();
        }
        req?.resolve(msg);
        return;
      }
      case "published":
        req?.channel?._publishSettled(msg);
        req?.resolve(msg);
        return;
      case "subscriptions":
        req?.resolve(msg);
        return;
      case "error": {
        const err = serverError(msg.code, msg.message);
        if (!req) return this.emit("error", err);
        if (req.kind === "subscribe" && req.channel) req.channel._refused(err);
        else if (req.kind === "unsubscribe" && req.channel) req.channel._unsubscribed();
        else if (req.kind === "publish" && req.channel) req.channel._publishSettled(null);
        req.reject(err);
        return;
      }
      default:
        req?.resolve(msg);
        this.emit("message", msg);
    }
  }

  /** The server joined its `default_channels` (a `subscribed` without `id`, `"default":true`). */
  #joinedDefaults(msg: ServerMessage): void {
    const names = Array.isArray(msg.channels) ? (msg.channels as unknown[]).map(String) : Object.keys(msg.positions ?? {});
    for (const name of names) {
      let ch = this.#channels.get(name);
      if (!ch) {
        ch = new Channel<unknown>(name, this.#host);
        this.#channels.set(name, ch);
      }
      ch._joinedAsDefault(msg, this.#defaultsSince.has(name));
    }
  }

  #flushAwaiting(): void {
    const done = this.#awaiting.splice(0);
    for (const ch of done) ch._caughtUp();
  }

  #sendSubscribe(ch: Channel<unknown>, since: Position | null, maxHz: number | undefined): void {
    const msg: Record<string, unknown> = { type: "subscribe", channels: [ch.name] };
    if (since) msg.since = { [ch.name]: { seq: since.seq, epoch: since.epoch } };
    if (maxHz !== undefined) msg.max_hz = maxHz;
    this.#request(msg, { kind: "subscribe", channel: ch }, 0).catch(() => {});
    // One ping after the subscribes of this turn: its pong marks the end of their snapshots.
    if (!this.#syncPing) {
      this.#syncPing = true;
      queueMicrotask(() => {
        this.#syncPing = false;
        if (this.#open) this.#request({ type: "ping", ping_id: "sync" }, { kind: "ping" }, 0).catch(() => {});
      });
    }
  }

  /** Sends `msg` with a fresh `id` and settles on its reply; with `payload`, as a binary publish. */
  #request(
    msg: Record<string, unknown>,
    p: Omit<Pending, "resolve" | "reject">,
    timeoutMs?: number,
    payload?: Uint8Array,
  ): Promise<unknown> {
    this.#pendingChannel = null;
    return new Promise((resolve, reject) => {
      const ws = this.#ws;
      if (!ws || !this.#open || ws.readyState !== 1) {
        return reject(clientError("NOT_CONNECTED", `not connected (${this.#state})`));
      }
      const id = this.#nextId++;
      const pending: Pending = { ...p, resolve, reject };
      const t = timeoutMs ?? this.#o.requestTimeoutMs ?? 10_000;
      if (t > 0) {
        pending.timer = setTimeout(() => {
          if (this.#pending.get(id) !== pending) return;
          this.#pending.delete(id);
          if (pending.kind === "publish") pending.channel?._publishSettled(null);
          reject(clientError("TIMEOUT", `no reply to ${String(msg.type)} within ${t} ms`));
        }, t);
      }
      this.#pending.set(id, pending);
      try {
        const json = JSON.stringify({ ...msg, id });
        ws.send(payload ? encodeBinaryPublish(json, payload) : json);
        this.#pendingChannel = p.channel ?? null;
      } catch (err) {
        this.#pending.delete(id);
        clearTimeout(pending.timer);
        reject(err instanceof FramecastError ? err : clientError("NOT_CONNECTED", String(err)));
      }
    });
  }

  /** Closes a socket whose events no longer matter. */
  #dispose(ws: WebSocketLike, code: number, reason: string): void {
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    const t = ws as WebSocketLike & { terminate?: () => void };
    try {
      if (t.terminate) t.terminate();
      else ws.close(code, reason);
    } catch {
      /* already closed */
    }
  }

  /** Forgets everything tied to the current connection. */
  #teardown(code: number, reason: string, final: boolean): void {
    this.#gen++;
    this.#ws = null;
    this.#open = false;
    this.#authPending = false;
    this.#authUser = null;
    this.#authExpires = undefined;
    this.#hello = null;
    this.#info = null;
    this.#awaiting = [];
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#hbDeadline);
    clearInterval(this.#hbTimer);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      if (p.kind === "publish") p.channel?._publishSettled(null);
      p.reject(clientError(final ? "CLOSED" : "CONNECTION_LOST", `connection closed (${code} ${reason})`));
    }
    for (const ch of [...this.#channels.values()]) ch._connectionLost();
  }

  #fail(reason: string, code?: number): void {
    this.#teardown(code ?? 1006, reason, true);
    clearTimeout(this.#timer);
    this.#setState({ to: "failed", reason, ...(code !== undefined ? { code } : {}) });
    this.#settleWaiters(clientError("FAILED", reason));
  }

  /** The connection `gen` is gone (close, connect timeout, heartbeat timeout, getToken error). */
  #lost(gen: number, code: number, reason: string): void {
    if (gen !== this.#gen) return;
    const wasConnected = this.#info !== null;
    const upgrade = this.#upgradeStatus;
    const certificate = this.#certificateError;
    const hint = this.#hint;
    this.#teardown(code, reason, false);
    if (wasConnected && Date.now() - this.#connectedAt >= (this.#reconnect?.resetAfterMs ?? 60_000)) this.#attempt = 0;
    const tokenRejected = code === 4001 || upgrade === 401;
    let willReconnect = this.#reconnect !== null;
    let failure: string | null = null;
    if (tokenRejected) {
      if (this.#o.getToken && !this.#tokenRetryUsed) {
        this.#tokenRetryUsed = true;
        this.#token = null; // the next attempt asks getToken
        this.#tokenReason = reason === "token expired" ? "expired" : "rejected";
      } else {
        failure = `token rejected (${reason || upgrade})`;
      }
    } else if (upgrade === 403) {
      failure = "upgrade refused (403: origin not allowed)";
    } else if (code === 1002 || code === 1003 || code === 1007) {
      failure = `protocol error (${code} ${reason})`;
    } else if (certificate) {
      // Not a network condition: retrying cannot make the certificate trusted.
      failure = `TLS certificate verification failed (${certificate})`;
    }
    if (failure || !this.#reconnect) willReconnect = false;
    this.emit("disconnected", { code, reason, willReconnect });
    if (failure) return this.#fail(failure, code);
    if (!this.#reconnect) {
      this.#setState({ to: "closed", code, reason });
      this.#settleWaiters(clientError("CLOSED", `connection closed (${code} ${reason})`));
      return;
    }
    const o = this.#reconnect;
    let delay: number;
    if (hint) {
      delay = Math.max(0, hint.at + hint.afterMs - Date.now()); // not counted as a failed attempt
    } else if (code === 1008 && reason === "slow consumer") {
      delay = Math.floor(this.#random() * o.slowConsumerMaxMs);
    } else {
      if (this.#attempt >= o.maxAttempts) return this.#fail(`gave up after ${this.#attempt} attempts`, code);
      delay = backoffDelay(this.#attempt, o, this.#random);
      this.#attempt++;
    }
    this.#setState({ to: "reconnecting", code, reason, retryInMs: delay, attempt: this.#attempt });
    // Timers count from the event loop's cached time, which lags the wall clock while a busy turn
    // runs: re-arm until the wall clock has really reached the target (never early for a hint).
    const at = Date.now() + delay;
    const fire = (): void => {
      const left = at - Date.now();
      if (left > 0) this.#timer = setTimeout(fire, left);
      else void this.#connectNow(true);
    };
    clearTimeout(this.#timer);
    this.#timer = setTimeout(fire, delay);
  }

  // ---- liveness and token refresh -----------------------------------------------------------

  #alive(): void {
    clearTimeout(this.#hbDeadline);
    this.#hbDeadline = undefined;
  }

  #startHeartbeat(): void {
    const hb = this.#o.heartbeat;
    if (hb === false) return;
    const interval = hb?.intervalMs ?? 15_000;
    const timeout = hb?.timeoutMs ?? 10_000;
    const gen = this.#gen;
    clearInterval(this.#hbTimer);
    this.#hbTimer = setInterval(() => {
      if (gen !== this.#gen || this.#hbDeadline !== undefined) return;
      this.ping().catch(() => {});
      this.#hbDeadline = setTimeout(() => {
        if (gen !== this.#gen) return;
        const ws = this.#ws;
        if (ws) this.#dispose(ws, 4000, "heartbeat timeout");
        this.#lost(gen, 1006, "heartbeat timeout");
      }, timeout);
    }, interval);
  }

  #scheduleRefresh(): void {
    clearTimeout(this.#refreshTimer);
    const getToken = this.#o.getToken;
    const exp = this.#tokenExpiresAt;
    if (!getToken || exp === null) return;
    const gen = this.#gen;
    const run = async (): Promise<void> => {
      if (gen !== this.#gen) return;
      let token: string | null;
      try {
        token = await getToken("refresh");
      } catch (err) {
        this.emit("error", clientError("TOKEN_FETCH", `getToken failed: ${String(err)}`));
        token = null;
      }
      if (gen !== this.#gen) {
        if (token) this.#token = token;
        return;
      }
      if (!token) {
        const left = exp - Date.now();
        if (left > 2000) this.#refreshTimer = setTimeout(() => void run(), Math.min(5000, left / 2));
        return;
      }
      this.#token = token;
      this.#request({ type: "auth", token }, { kind: "auth" }).catch(() => {});
    };
    this.#refreshTimer = setTimeout(() => void run(), refreshDelay(exp, Date.now(), this.#o.refreshMarginMs));
  }
}

function rawEvent(msg: ServerMessage, clock: Clock): FramecastEvent<unknown> {
  const timestamp = String(msg.timestamp ?? "");
  const serverTimeMs = Date.parse(timestamp);
  const eventType = typeof msg.event_type === "string" ? msg.event_type : "message";
  const e: FramecastEvent<unknown> = {
    channel: String(msg.channel),
    seq: Number(msg.seq),
    frame: Number(msg.frame),
    eventType,
    event_type: eventType,
    data: msg.data,
    encoding: eventEncoding(msg),
    snapshot: msg.snapshot === true,
    replay: false,
    timestamp,
    serverTimeMs,
    localTimeMs: clock.toLocal(serverTimeMs),
  };
  if (typeof msg.key === "string") e.key = msg.key;
  return e;
}

/** Public types of @framecast/client and the wire messages it reads. */

/** Connection states. `idle` before `connect()`; `closed` after `close()`. */
export type ConnectionState =
  | "idle"
  | "connecting"
  | "authenticating"
  | "connected"
  | "draining"
  | "reconnecting"
  | "failed"
  | "closed";

/** Subscription states. */
export type SubscriptionState =
  | "pending" // wanted, waiting for a connection
  | "subscribing" // first `subscribe` sent (snapshot may follow)
  | "recovering" // resubscribed with `since` after a reconnect (replay may follow)
  | "live" // confirmed, replay or snapshot complete, live events flowing
  | "failed" // refused by the server (FORBIDDEN, LIMIT_EXCEEDED, …); the connection stays
  | "closed"; // unsubscribed

/** Where a channel's stream stands: the last event's `seq` in its `epoch`. */
export interface Position {
  seq: number;
  epoch: string;
}

/** Why `getToken` is called. */
export type TokenRequestReason = "connect" | "refresh" | "rejected" | "expired";

/** A state change of the connection. */
export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  /** Close code that caused it, if any. */
  code?: number;
  /** Close reason or failure message. */
  reason?: string;
  /** With `reconnecting`: when the next attempt starts (ms from now). */
  retryInMs?: number;
  /** With `reconnecting`: how many attempts in a row have failed. */
  attempt?: number;
}

/** What `connected` tells (camelCase, plus the seeds' snake_case names). */
export interface ConnectedInfo {
  clientId: string;
  userId: string | null;
  client_id: string;
  user_id: string | null;
  tickHz: number;
  serverTimeMs: number;
  /** Token expiry (ms since the epoch) from the server if it says, else from the token's `exp`. */
  tokenExpiresAt: number | null;
  /** Whether this is a reconnection. */
  reconnected: boolean;
  /** The server sends this connection tick batches (`batch: true` asked, and the server said so). */
  batch: boolean;
  /** The server sends this connection binary events as binary frames (`binary: true`, said so). */
  binary: boolean;
  /** The raw `connected` message. */
  raw: Record<string, unknown>;
}

/** One event on a channel, as delivered to handlers (each exactly once). */
export interface FramecastEvent<T = unknown> {
  channel: string;
  seq: number;
  frame: number;
  eventType: string;
  /** Alias of `eventType` (the wire name). */
  event_type: string;
  /** The payload: parsed JSON, or for a binary event (`encoding` `binary` or `base64`) a
   * `Uint8Array` of the bytes as published. */
  data: T;
  /** How the event came: `json` (a JSON event), `binary` (a binary frame, on a `binary: true`
   * connection; `data` is a view onto the received buffer, 8-aligned) or `base64` (a binary event
   * in JSON form, `data` decoded from base64). `data` holds the same bytes for `binary` and `base64`. */
  encoding: EventEncoding;
  key?: string;
  /** Sent from the namespace's snapshot to a new (or resyncing) subscriber. */
  snapshot: boolean;
  /** Replayed from history on recovery. */
  replay: boolean;
  /** Server time (RFC 3339) of the tick that carried it. */
  timestamp: string;
  /** `timestamp` in ms since the epoch, server clock. */
  serverTimeMs: number;
  /** `serverTimeMs` placed on the local clock with the estimated offset. */
  localTimeMs: number;
}

/** The form an event arrived in (see {@link FramecastEvent.encoding}). */
export type EventEncoding = "json" | "binary" | "base64";

/** A `gap` notice: `skipped` events between `fromSeq` and `toSeq` were not sent to this client. */
export interface GapInfo {
  channel: string;
  skipped: number;
  fromSeq: number;
  toSeq: number;
}

/** Local state for a channel must be discarded: snapshot events (if any) follow. */
export interface ResyncInfo {
  channel: string;
  /** `recovered-false`: the server could not replay (restart, history exceeded);
   * `unrecoverable`: the server gave no position (default channels) and the stream jumped. */
  reason: "recovered-false" | "unrecoverable";
  position: Position | null;
}

/** A seq jump without a `gap`, or a repeated seq: a server or client bug, not a network condition. */
export interface ViolationInfo {
  channel: string;
  kind: "seq-jump" | "duplicate";
  expected: number;
  got: number;
}

/** A confirmed subscription. */
export interface SubscribedInfo {
  channel: string;
  position: Position | null;
  /** With `since`: whether every missed event follows. */
  recovered?: boolean;
  /** Whether this followed a reconnect. */
  resubscribe: boolean;
  /** Channel traits, when the server states them in `positions`. */
  traits: Record<string, unknown>;
}

/** Acknowledgement of a publish. */
export interface PublishAck {
  channel: string;
  /** The seq the event got (servers from 2026-12 say; undefined on older ones or when superseded). */
  seq?: number;
  /** The tick (frame) that numbered it. */
  frame?: number;
  /** On a conflated channel: a newer event with the same key replaced it within the tick (no seq). */
  superseded?: boolean;
}

/** A minimal W3C WebSocket as browsers, `ws` and Node ≥ 22 provide it. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  /** Set to `"arraybuffer"` by the client (binary events arrive as `ArrayBuffer`; a Node `Buffer`
   * or any `ArrayBufferView` is read too). */
  binaryType?: string;
  /** Text messages, and binary ones (`publishBinary`) as a `Uint8Array`. */
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor (the third argument is passed to `ws`: `{ headers }`). */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: { headers?: Record<string, string>; perMessageDeflate?: boolean },
) => WebSocketLike;

/** A wire message from the server (loosely typed: unknown fields are kept). */
export interface ServerMessage {
  type: string;
  id?: unknown;
  [field: string]: unknown;
}

import { Emitter } from "./emitter.js";
import type { FramecastError } from "./errors.js";
import type {
  EventEncoding,
  FramecastEvent,
  GapInfo,
  Position,
  ResyncInfo,
  ServerMessage,
  SubscribedInfo,
  SubscriptionState,
  ViolationInfo,
} from "./types.js";

/** The form an event message arrived in (`encoding` is set by the client for binary frames, by
 * the server for base64). @internal */
export function eventEncoding(msg: ServerMessage): EventEncoding {
  return msg.encoding === "binary" ? "binary" : msg.encoding === "base64" ? "base64" : "json";
}

/** Events of a {@link Channel}. */
export interface ChannelEvents<T> {
  /** Every event, exactly once, in seq order (snapshot events first after a (re)subscribe). */
  event: FramecastEvent<T>;
  /** The server confirmed the subscription (also after each resubscribe). */
  subscribed: SubscribedInfo;
  /** The snapshot or the replay that followed `subscribed` is complete: live events follow. */
  caughtUp: { channel: string; position: Position | null };
  /** Discard local state for this channel; snapshot events (if the namespace keeps one) follow. */
  resync: ResyncInfo;
  /** The server says events were not sent to this client (conflated step-down, volatile drops). */
  gap: GapInfo;
  /** A seq jump without `gap`, or a repeated seq: a bug somewhere, reported, never hidden. */
  violation: ViolationInfo;
  /** Subscription state changes. */
  state: { channel: string; from: SubscriptionState; to: SubscriptionState };
  /** The server refused the subscription (the connection stays open). */
  error: FramecastError;
}

/** Per-channel options. */
export interface ChannelOptions {
  /** Most updates per second wanted on conflated channels (`max_hz`). */
  maxHz?: number;
  /** Resume from a position saved earlier (e.g. in sessionStorage) on the first subscribe. */
  since?: Position;
}

/** What a channel needs from its client. @internal */
export interface ChannelHost {
  readonly online: boolean;
  sendSubscribe(ch: Channel<unknown>, since: Position | null, maxHz: number | undefined): void;
  sendUnsubscribe(ch: Channel<unknown>): void;
  awaitEnd(ch: Channel<unknown>): void;
  toLocal(serverTimeMs: number): number;
  delivered(e: FramecastEvent<unknown>): void;
  released(ch: Channel<unknown>): void;
  adopt(ch: Channel<unknown>): void;
}

/** One channel of a client, shared by everything that subscribes to it (reference counted).
 * Obtain it with `client.channel(name)`. */
export class Channel<T = unknown> extends Emitter<ChannelEvents<T>> {
  readonly name: string;
  options: ChannelOptions;
  #host: ChannelHost;
  #state: SubscriptionState = "pending";
  #position: Position | null = null;
  #refs = 0;
  #desired = false;
  // Per-connection bookkeeping.
  #onServer = false;
  #inflight: "subscribe" | "unsubscribe" | null = null;
  #sentSince = false;
  #recoverable: boolean | null = null;
  #checkContinuity = false;
  #gapUntil = 0;
  #head: number | undefined;
  // Snapshot + replay events still to come after `subscribed` (when the server says how many).
  #expect = -1;
  // A default channel: joined by the server on every connection (stays joined when released).
  #pinned = false;
  #joinedByServer = false;
  // Own publications, for `echo = false` channels whose seqs this client never sees: seqs the
  // server acknowledged (`published.seq`), publishes not yet acknowledged, jumps forgiven on their
  // credit, and (servers without `published.seq`) a plain count.
  #ownSeqs = new Set<number>();
  #unacked = 0;
  #credit = 0;
  #legacyOwn = 0;

  /** @internal */
  constructor(name: string, host: ChannelHost, options: ChannelOptions = {}) {
    super();
    this.name = name;
    this.#host = host;
    this.options = options;
  }

  /** The subscription state. */
  get state(): SubscriptionState {
    return this.#state;
  }

  /** The last delivered position (`epoch` is "" when the server never stated it). */
  get position(): Position | null {
    return this.#position ? { ...this.#position } : null;
  }

  /** Whether the server can recover this channel with `since` (false for default channels on
   * servers that report them without a position); null until known. */
  get recoverable(): boolean | null {
    return this.#recoverable;
  }

  /** Whether this is one of the server's `default_channels` (joined by the server on every
   * connection, recovered with `since` on the upgrade URL; releasing it keeps it joined). */
  get isDefault(): boolean {
    return this.#pinned;
  }

  /** Number of holders (subscribe calls not yet released). */
  get refs(): number {
    return this.#refs;
  }

  /** Takes a reference (and subscribes on the server if this is the first); `handler`, if given,
   * gets every event. Returns the function that releases this reference. */
  subscribe(handler?: (event: FramecastEvent<T>) => void): () => void {
    const off = handler ? this.on("event", handler) : undefined;
    this.#host.adopt(this as Channel<unknown>); // routed to again if the client had let it go
    this.#refs++;
    if (!this.#desired || this.#state === "failed" || this.#state === "closed") {
      this.#desired = true;
      if (this.#state === "failed" || this.#state === "closed") this.#setState("pending");
    }
    this._sync();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      off?.();
      this.#refs--;
      if (this.#refs <= 0) this.unsubscribe();
    };
  }

  /** Drops every reference and unsubscribes on the server. */
  unsubscribe(): void {
    this.#refs = 0;
    this.#desired = this.#pinned; // a default channel stays joined (its events still reach client "event")
    this._sync();
  }

  #setState(to: SubscriptionState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.emit("state", { channel: this.name, from, to });
  }

  /** Brings the server's view in line with what is wanted, one request in flight at a time (a
   * subscribe/unsubscribe/subscribe burst never puts two requests for one channel on the wire).
   * @internal */
  _sync(): void {
    if (!this.#host.online || this.#inflight) {
      if (!this.#desired && !this.#onServer && !this.#inflight) this.#close();
      return;
    }
    if (this.#desired && !this.#onServer && this.#state !== "failed") {
      // Nobody holds a default channel: the server joins it on connect, nothing to ask.
      if (this.#pinned && this.#refs === 0) return;
      const since = this.#position && this.#recoverable !== false && this.#position.epoch !== ""
        ? this.#position
        : !this.#position && this.options.since
          ? this.options.since
          : null;
      this.#inflight = "subscribe";
      this.#sentSince = since !== null;
      this.#setState(since ? "recovering" : "subscribing");
      this.#host.sendSubscribe(this as Channel<unknown>, since, this.options.maxHz);
    } else if (!this.#desired && this.#onServer) {
      this.#inflight = "unsubscribe";
      this.#host.sendUnsubscribe(this as Channel<unknown>);
    } else if (!this.#desired) {
      this.#close();
    }
  }

  #close(): void {
    if (this.#state === "closed") return;
    this.#position = null;
    this.#recoverable = null;
    this.#resetOwn();
    this.#setState("closed");
    this.#host.released(this as Channel<unknown>);
  }

  /** The reply to this channel's `subscribe`. @internal */
  _subscribed(msg: ServerMessage): void {
    this.#inflight = null;
    this.#onServer = true;
    if (!this.#desired) return this._sync();
    const positions = (msg.positions ?? {}) as Record<string, Record<string, unknown>>;
    const p = positions[this.name];
    if (this.#joinedByServer && !p) return; // a default channel the server joined first: confirmed
    this.#gapUntil = 0;
    this.#apply(p, this.#sentSince);
  }

  /** The server joined this default channel (`subscribed` with `"default":true`); `sentSince`:
   * whether this connection's upgrade or `auth` carried its position. @internal */
  _joinedAsDefault(msg: ServerMessage, sentSince: boolean): void {
    const positions = (msg.positions ?? {}) as Record<string, Record<string, unknown>>;
    this.#pinned = true;
    this.#joinedByServer = true;
    this.#onServer = true;
    this.#desired = true;
    this.#gapUntil = 0;
    if (this.#state === "closed" || this.#state === "pending" || this.#state === "failed") {
      this.#setState(sentSince ? "recovering" : "subscribing");
    }
    this.#apply(positions[this.name], sentSince);
  }

  /** The position the server reported, for a (re)join with or without `since`. */
  #apply(p: Record<string, unknown> | undefined, sentSince: boolean): void {
    const resubscribe = sentSince || this.#position !== null;
    this.#expect = -1;
    if (!p || typeof p.seq !== "number" || typeof p.epoch !== "string") {
      // Already joined by a server that reports default channels without a position: no `since`.
      if (this.#position) this.#checkContinuity = true;
      this.#recoverable = false;
      this.emit("subscribed", { channel: this.name, position: null, resubscribe, traits: {} });
      this.#setState("live");
      this.emit("caughtUp", { channel: this.name, position: this.position });
      return;
    }
    this.#recoverable = true;
    const { seq, epoch, recovered, ...traits } = p as { seq: number; epoch: string; recovered?: boolean } & Record<string, unknown>;
    const fresh = { seq, epoch };
    let info: SubscribedInfo;
    if (sentSince && recovered === true) {
      // positions.seq is the channel head at join time: replay runs since.seq+1..seq, then live.
      this.#head = seq;
      if (!this.#position) this.#position = { seq: this.options.since?.seq ?? seq, epoch };
      info = { channel: this.name, position: fresh, recovered: true, resubscribe, traits };
    } else if (sentSince) {
      this.#position = fresh;
      this.#head = undefined;
      this.#resetOwn();
      this.emit("resync", { channel: this.name, reason: "recovered-false", position: { ...fresh } });
      info = { channel: this.name, position: fresh, recovered: false, resubscribe, traits };
    } else {
      this.#position = fresh;
      info = { channel: this.name, position: fresh, resubscribe, traits };
    }
    this.emit("subscribed", info);
    const snap = traits.snapshot_events;
    const replay = traits.replay_events;
    if (typeof snap === "number" && typeof replay === "number") {
      // The server says how many snapshot and replayed events follow: complete after that many.
      this.#expect = snap + replay;
      if (this.#expect === 0) return this._caughtUp();
    }
    // Otherwise (older servers) the reply to a later command marks the end.
    this.#host.awaitEnd(this as Channel<unknown>);
  }

  /** The frames that followed `subscribed` (snapshot or replay) have all arrived. @internal */
  _caughtUp(): void {
    if (this.#state !== "subscribing" && this.#state !== "recovering") return;
    this.#head = undefined;
    this.#expect = -1;
    this.#setState("live");
    this.emit("caughtUp", { channel: this.name, position: this.position });
  }

  /** @internal */
  _unsubscribed(): void {
    this.#inflight = null;
    this.#onServer = false;
    this._sync();
  }

  /** The server refused the subscribe. @internal */
  _refused(err: FramecastError): void {
    this.#inflight = null;
    this.#onServer = false;
    if (!this.#desired) return this._sync();
    this.#setState("failed");
    this.emit("error", err);
  }

  /** The connection is gone: everything per connection is forgotten, the position is kept. @internal */
  _connectionLost(): void {
    this.#onServer = false;
    this.#joinedByServer = false;
    this.#expect = -1;
    this.#inflight = null;
    this.#gapUntil = 0;
    this.#head = undefined;
    this.#checkContinuity = false;
    if (!this.#desired) return this.#close();
    if (this.#state !== "failed") this.#setState("pending");
  }

  #resetOwn(): void {
    this.#ownSeqs.clear();
    this.#credit = 0;
    this.#legacyOwn = 0;
  }

  /** A publication of this client to this channel went out. @internal */
  _publishSent(): void {
    this.#unacked++;
  }

  /** Its outcome: the server's `published` (with the `seq` it got, on servers that say), or
   * null (refused or unknown). On an `echo = false` channel that seq is never delivered here, so
   * the seq checker skips it; any other missing seq is still a violation. @internal */
  _publishSettled(ack: ServerMessage | null): void {
    if (this.#unacked > 0) this.#unacked--;
    if (this.#credit > this.#unacked) this.#credit = this.#unacked;
    if (!ack) return;
    if (typeof ack.seq === "number") {
      const pos = this.#position;
      if (pos && ack.seq <= pos.seq) {
        if (this.#credit > 0) this.#credit--; // its jump was already forgiven on credit
      } else if (this.#ownSeqs.size < 100_000) {
        this.#ownSeqs.add(ack.seq);
      }
    } else if (ack.superseded !== true && this.#legacyOwn < 1e6) {
      this.#legacyOwn++; // a server without `published.seq`: forgive as many jumps
    }
  }

  /** How many of the seqs after `last` and before `seq` no own publication explains. */
  #unexplained(last: number, seq: number): number {
    let missing = seq - last - 1;
    for (const s of this.#ownSeqs) {
      if (s > last && s < seq) {
        this.#ownSeqs.delete(s);
        missing--;
      } else if (s <= last) this.#ownSeqs.delete(s);
    }
    const onCredit = Math.min(missing, this.#unacked - this.#credit);
    if (onCredit > 0) {
      this.#credit += onCredit;
      missing -= onCredit;
    }
    const legacy = Math.min(missing, this.#legacyOwn);
    this.#legacyOwn -= legacy;
    return missing - legacy;
  }

  /** @internal */
  _gap(msg: ServerMessage): void {
    if (!this.#desired) return;
    const gap: GapInfo = {
      channel: this.name,
      skipped: Number(msg.skipped),
      fromSeq: Number(msg.from_seq),
      toSeq: Number(msg.to_seq),
    };
    // [fromSeq, toSeq] covers the skipped events *and* the newest-per-key ones that follow
    // (conflated): until toSeq, seqs may jump; the position stays at what was delivered.
    if (gap.toSeq > this.#gapUntil) this.#gapUntil = gap.toSeq;
    this.emit("gap", gap);
  }

  /** @internal */
  _event(msg: ServerMessage): void {
    if (!this.#desired || this.#state === "failed" || this.#state === "closed") return;
    const seq = Number(msg.seq);
    const snapshot = msg.snapshot === true;
    let replay = false;
    if (!snapshot) {
      const pos = this.#position;
      if (!pos) {
        this.#position = { seq, epoch: "" };
      } else if (this.#checkContinuity) {
        this.#checkContinuity = false;
        if (seq !== pos.seq + 1) {
          this.emit("resync", { channel: this.name, reason: "unrecoverable", position: null });
        }
        pos.seq = seq;
      } else {
        const last = pos.seq;
        if (seq <= last) {
          this.emit("violation", { channel: this.name, kind: "duplicate", expected: last + 1, got: seq });
          return;
        }
        if (seq - last > 1 && seq > this.#gapUntil + 1 && this.#unexplained(last, seq) > 0) {
          this.emit("violation", { channel: this.name, kind: "seq-jump", expected: last + 1, got: seq });
        }
        this.#ownSeqs.delete(seq);
        pos.seq = seq;
      }
      replay = this.#head !== undefined && seq <= this.#head;
    }
    const completes = this.#expect > 0 && --this.#expect === 0;
    const timestamp = String(msg.timestamp ?? "");
    const serverTimeMs = Date.parse(timestamp);
    const eventType = typeof msg.event_type === "string" ? msg.event_type : "message";
    const e: FramecastEvent<T> = {
      channel: this.name,
      seq,
      frame: Number(msg.frame),
      eventType,
      event_type: eventType,
      data: msg.data as T,
      encoding: eventEncoding(msg),
      snapshot,
      replay,
      timestamp,
      serverTimeMs,
      localTimeMs: this.#host.toLocal(serverTimeMs),
    };
    if (typeof msg.key === "string") e.key = msg.key;
    this.emit("event", e);
    this.#host.delivered(e as FramecastEvent<unknown>);
    if (completes) this._caughtUp();
  }
}

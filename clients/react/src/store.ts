/** Framework-free channel stores shared by every hook of a provider: one per channel name,
 * reference counted, lingering after the last release (StrictMode double effects, route changes). */
import type { Channel, FramecastClient, FramecastEvent } from "@framecast/client";

/** How a channel's local state stands. */
export type StoreStatus = "loading" | "live" | "recovering" | "resyncing" | "degraded" | "failed";

type Listener = () => void;

/** The state a channel's hooks read. Immutable snapshots for React; mutable views for `useFrame`. */
export class ChannelStore<T = unknown> {
  readonly name: string;
  readonly channel: Channel<T>;
  status: StoreStatus = "loading";
  latest: FramecastEvent<T> | undefined;
  /** Newest event per key ("" for events without a key), mutated in place (for render loops). */
  readonly byKey = new Map<string, FramecastEvent<T>>();
  /** The previous event per key (for interpolation). */
  readonly prevByKey = new Map<string, FramecastEvent<T>>();
  /** Ordered log, bounded by the largest `limit` asked (`useStream`). */
  log: FramecastEvent<T>[] = [];
  limit = 0;
  gaps = 0;
  violations = 0;
  resyncs = 0;
  version = 0;
  #listeners = new Set<Listener>();
  #eventListeners = new Set<(e: FramecastEvent<T>) => void>();
  #refs = 0;
  #release: (() => void) | null = null;
  #linger: ReturnType<typeof setTimeout> | undefined;
  #offs: (() => void)[] = [];
  #degradedTimer: ReturnType<typeof setTimeout> | undefined;
  #snapKey: Map<string, T> | null = null;
  #snapKeyVersion = -1;
  #snapLog: readonly FramecastEvent<T>[] | null = null;
  #snapLogVersion = -1;
  #onDispose: () => void;
  lingerMs: number;

  constructor(client: FramecastClient, name: string, lingerMs: number, onDispose: () => void, maxHz?: number) {
    this.name = name;
    this.channel = client.channel<T>(name, maxHz !== undefined ? { maxHz } : undefined);
    this.lingerMs = lingerMs;
    this.#onDispose = onDispose;
  }

  /** Takes a reference: subscribes on the first, cancels a pending release. */
  acquire(): void {
    this.#refs++;
    clearTimeout(this.#linger);
    this.#linger = undefined;
    if (this.#release) return;
    const ch = this.channel;
    this.#offs = [
      ch.on("event", (e) => this.#onEvent(e)),
      ch.on("resync", () => {
        this.resyncs++;
        this.byKey.clear();
        this.prevByKey.clear();
        this.log = [];
        this.latest = undefined;
        this.#set("resyncing");
      }),
      ch.on("gap", () => {
        this.gaps++;
        this.#set("degraded");
        clearTimeout(this.#degradedTimer);
        this.#degradedTimer = setTimeout(() => this.status === "degraded" && this.#set("live"), 2000);
      }),
      ch.on("violation", () => {
        this.violations++;
        this.#bump();
      }),
      ch.on("state", ({ to }) => {
        if (to === "live") this.#set("live");
        else if (to === "recovering" || to === "pending") this.#set(this.latest ? "recovering" : "loading");
        else if (to === "failed") this.#set("failed");
      }),
    ];
    this.#release = ch.subscribe();
    if (ch.state === "live") this.#set("live");
  }

  /** Drops a reference; the last one unsubscribes after `lingerMs`. */
  release(): void {
    this.#refs--;
    if (this.#refs > 0) return;
    clearTimeout(this.#linger);
    this.#linger = setTimeout(() => this.dispose(), this.lingerMs);
  }

  /** Unsubscribes now and forgets the store. */
  dispose(): void {
    clearTimeout(this.#linger);
    clearTimeout(this.#degradedTimer);
    for (const off of this.#offs) off();
    this.#offs = [];
    this.#release?.();
    this.#release = null;
    this.#onDispose();
  }

  subscribe = (listener: Listener): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  /** Every event, once (useChannel). */
  onEvent(listener: (e: FramecastEvent<T>) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /** A stable snapshot of the newest data per key (a new Map only when something changed). */
  keyed(): ReadonlyMap<string, T> {
    if (this.#snapKeyVersion !== this.version || !this.#snapKey) {
      this.#snapKey = new Map([...this.byKey].map(([k, e]) => [k, e.data]));
      this.#snapKeyVersion = this.version;
    }
    return this.#snapKey;
  }

  /** A stable snapshot of the log. */
  stream(): readonly FramecastEvent<T>[] {
    if (this.#snapLogVersion !== this.version || !this.#snapLog) {
      this.#snapLog = this.log.slice();
      this.#snapLogVersion = this.version;
    }
    return this.#snapLog;
  }

  #onEvent(e: FramecastEvent<T>): void {
    this.latest = e;
    const key = e.key ?? "";
    const prev = this.byKey.get(key);
    if (prev) this.prevByKey.set(key, prev);
    this.byKey.set(key, e);
    if (this.limit > 0) {
      this.log.push(e);
      if (this.log.length > this.limit) this.log.splice(0, this.log.length - this.limit);
    }
    if (this.status === "resyncing" && this.channel.state === "live") this.status = "live";
    for (const l of [...this.#eventListeners]) l(e);
    this.#bump();
  }

  #set(status: StoreStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.#bump();
  }

  #bump(): void {
    this.version++;
    for (const l of [...this.#listeners]) l();
  }
}

/** The stores of one client. */
export class StoreRegistry {
  readonly client: FramecastClient;
  readonly lingerMs: number;
  #stores = new Map<string, ChannelStore<unknown>>();

  constructor(client: FramecastClient, lingerMs = 1000) {
    this.client = client;
    this.lingerMs = lingerMs;
  }

  /** The store of `name` (created on first use). */
  get<T>(name: string, maxHz?: number): ChannelStore<T> {
    let s = this.#stores.get(name);
    if (!s) {
      const created: ChannelStore<unknown> = new ChannelStore<unknown>(
        this.client,
        name,
        this.lingerMs,
        () => {
          if (this.#stores.get(name) === created) this.#stores.delete(name);
        },
        maxHz,
      );
      s = created;
      this.#stores.set(name, s);
    }
    return s as ChannelStore<T>;
  }

  /** Channels with a store (held or lingering). */
  names(): string[] {
    return [...this.#stores.keys()];
  }
}

"use client";
/** @framecast/react — hooks on @framecast/client. One client per provider, one store per channel
 * shared by every hook; StrictMode safe (one connection; released channels linger) and SSR safe
 * (nothing connects during server rendering: the client is created in an effect). */
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import { FramecastClient, type ClientOptions, type ConnectionState, type FramecastEvent, type PublishAck } from "@framecast/client";
import { ChannelStore, StoreRegistry, type StoreStatus } from "./store.js";

export { ChannelStore, StoreRegistry, type StoreStatus } from "./store.js";

const Ctx = createContext<StoreRegistry | null>(null);

export interface FramecastProviderProps {
  /** A client you own (connected here, never closed here). */
  client?: FramecastClient;
  /** Or: the provider creates (in an effect) and closes the client itself. */
  url?: string;
  options?: Omit<ClientOptions, "url">;
  /** How long a released channel stays subscribed (ms). Default 1000. */
  lingerMs?: number;
  children?: ReactNode;
}

/** Provides a client to the hooks below it. With `url`, the client is created after mount and
 * closed `lingerMs` after unmount (a StrictMode remount reuses it: one connection). */
export function FramecastProvider({ client, url, options, lingerMs = 1000, children }: FramecastProviderProps) {
  const [registry, setRegistry] = useState<StoreRegistry | null>(() => (client ? new StoreRegistry(client, lingerMs) : null));
  const owned = useRef<{ registry: StoreRegistry; closeTimer?: ReturnType<typeof setTimeout> } | null>(null);
  const optionsRef = useRef(options);
  optionsRef.current = options;

  useEffect(() => {
    if (client) {
      const r = registry?.client === client ? registry : new StoreRegistry(client, lingerMs);
      if (r !== registry) setRegistry(r);
      client.connect().catch(() => {});
      return undefined;
    }
    if (!url) return undefined;
    let own = owned.current;
    if (own && own.registry.client.url === url) {
      clearTimeout(own.closeTimer);
    } else {
      const c = new FramecastClient({ ...optionsRef.current, url });
      own = owned.current = { registry: new StoreRegistry(c, lingerMs) };
      c.connect().catch(() => {});
    }
    setRegistry(own.registry);
    const current = own;
    return () => {
      current.closeTimer = setTimeout(() => {
        current.registry.client.close();
        if (owned.current === current) owned.current = null;
      }, lingerMs);
    };
  }, [client, url, lingerMs]);

  return <Ctx.Provider value={registry}>{children}</Ctx.Provider>;
}

/** The provider's client (null during SSR and before mount). */
export function useFramecast(): FramecastClient | null {
  return useContext(Ctx)?.client ?? null;
}

/** What `useConnectionState` returns. */
export interface ConnectionView {
  state: ConnectionState;
  /** With `reconnecting`: ms until the next attempt (at the time of the change). */
  retryInMs: number | undefined;
  /** Last round trip (ms). */
  rttMs: number | null;
  clientId: string | null;
  userId: string | null;
}

const IDLE: ConnectionView = { state: "idle", retryInMs: undefined, rttMs: null, clientId: null, userId: null };

/** The connection state, retry delay and RTT; "idle" on the server. */
export function useConnectionState(): ConnectionView {
  const registry = useContext(Ctx);
  const cache = useRef<ConnectionView>(IDLE);
  const retry = useRef<number | undefined>(undefined);
  const subscribe = useCallback(
    (notify: () => void) => {
      const c = registry?.client;
      if (!c) return () => {};
      const offs = [
        c.on("state", (s) => {
          retry.current = s.retryInMs;
          notify();
        }),
        c.on("rtt", notify),
        c.on("connected", notify),
      ];
      return () => offs.forEach((off) => off());
    },
    [registry],
  );
  const get = useCallback((): ConnectionView => {
    const c = registry?.client;
    if (!c) return IDLE;
    const next: ConnectionView = {
      state: c.state,
      retryInMs: c.state === "reconnecting" ? retry.current : undefined,
      rttMs: c.rttMs,
      clientId: c.info?.clientId ?? null,
      userId: c.info?.userId ?? null,
    };
    const prev = cache.current;
    if (
      prev.state === next.state &&
      prev.retryInMs === next.retryInMs &&
      prev.rttMs === next.rttMs &&
      prev.clientId === next.clientId &&
      prev.userId === next.userId
    )
      return prev;
    cache.current = next;
    return next;
  }, [registry]);
  return useSyncExternalStore(subscribe, get, () => IDLE);
}

/** Holds the channel's store for the component's lifetime (null on the server / before mount). */
function useStore<T>(name: string, maxHz?: number, limit?: number): ChannelStore<T> | null {
  const registry = useContext(Ctx);
  const [store, setStore] = useState<ChannelStore<T> | null>(null);
  useEffect(() => {
    if (!registry) return undefined;
    const s = registry.get<T>(name, maxHz);
    if (limit !== undefined && limit > s.limit) s.limit = limit;
    s.acquire();
    setStore(s);
    return () => s.release();
  }, [registry, name, maxHz, limit]);
  return store && store.name === name ? store : null;
}

function useVersion<T, R>(store: ChannelStore<T> | null, read: (s: ChannelStore<T>) => R, fallback: R): R {
  const subscribe = useCallback((notify: () => void) => (store ? store.subscribe(notify) : () => {}), [store]);
  const get = useCallback(() => (store ? read(store) : fallback), [store, read, fallback]);
  return useSyncExternalStore(subscribe, get, () => fallback);
}

const statusOf = (s: ChannelStore<unknown>): StoreStatus => s.status;

/** Every event of `name` to `handler`, exactly once (the handler may change between renders). */
export function useChannel<T = unknown>(
  name: string,
  handler?: (event: FramecastEvent<T>) => void,
  options: { maxHz?: number } = {},
): { status: StoreStatus; publish: (data: T, opts?: { eventType?: string; key?: string }) => Promise<PublishAck> } {
  const store = useStore<T>(name, options.maxHz);
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => (store ? store.onEvent((e) => ref.current?.(e)) : undefined), [store]);
  const status = useVersion(store as ChannelStore<unknown> | null, statusOf, "loading" as StoreStatus);
  const client = useFramecast();
  const publish = useCallback(
    (data: T, opts?: { eventType?: string; key?: string }) =>
      client ? client.publish(name, data, opts) : Promise.reject(new Error("framecast: no client")),
    [client, name],
  );
  return { status, publish };
}

/** The newest value on `name` (SigmaVault's `useSystemStatus` is `useLatest("system.status")`). */
export function useLatest<T = unknown>(name: string, options: { maxHz?: number } = {}): T | undefined {
  const store = useStore<T>(name, options.maxHz);
  const read = useCallback((s: ChannelStore<T>) => s.latest?.data, []);
  return useVersion<T, T | undefined>(store, read, undefined);
}

const EMPTY_MAP: ReadonlyMap<string, unknown> = new Map<string, unknown>();
const EMPTY_LOG: readonly never[] = [];

/** The newest value per key (snapshot first, then deltas; cleared on resync). */
export function useLatestByKey<T = unknown>(name: string, options: { maxHz?: number } = {}): ReadonlyMap<string, T> {
  const store = useStore<T>(name, options.maxHz);
  const read = useCallback((s: ChannelStore<T>) => s.keyed(), []);
  return useVersion<T, ReadonlyMap<string, T>>(store, read, EMPTY_MAP as ReadonlyMap<string, T>);
}

/** An ordered log of at most `limit` events that survives reconnects (recovered with `since`;
 * cleared on resync), e.g. an AI token stream. */
export function useStream<T = unknown>(name: string, options: { limit?: number } = {}): readonly FramecastEvent<T>[] {
  const store = useStore<T>(name, undefined, options.limit ?? 1000);
  const read = useCallback((s: ChannelStore<T>) => s.stream(), []);
  return useVersion<T, readonly FramecastEvent<T>[]>(store, read, EMPTY_LOG);
}

/** The channel's store status. */
export function useChannelStatus(name: string): StoreStatus {
  const store = useStore<unknown>(name);
  return useVersion(store, statusOf, "loading" as StoreStatus);
}

/** What a render-loop callback gets each animation frame. */
export interface FrameView<T> {
  /** Newest event per key (live, mutated by the store: read, do not keep). */
  byKey: ReadonlyMap<string, FramecastEvent<T>>;
  latest: FramecastEvent<T> | undefined;
  /** Events that arrived since the previous frame, in order. */
  events: readonly FramecastEvent<T>[];
  /** The render time on the server's clock: `serverNow() − delayMs`. */
  renderTimeMs: number;
  /** For a key: its previous and newest values and how far (0..1) `renderTimeMs` is between them. */
  sample(key: string): { prev: FramecastEvent<T> | undefined; next: FramecastEvent<T> | undefined; alpha: number };
  status: StoreStatus;
  gaps: number;
  violations: number;
  resyncs: number;
}

/** Draws `name` in requestAnimationFrame at the display's rate without re-rendering React.
 * `delayMs` (default 2 ticks ≈ 33 ms) renders slightly in the past so keyed values interpolate. */
export function useFrame<T = unknown>(
  name: string,
  draw: (view: FrameView<T>, frameTimeMs: number) => void,
  options: { maxHz?: number; delayMs?: number } = {},
): void {
  const store = useStore<T>(name, options.maxHz);
  const drawRef = useRef(draw);
  drawRef.current = draw;
  const delay = options.delayMs ?? 33;
  const client = useFramecast();
  useEffect(() => {
    if (!store || typeof requestAnimationFrame !== "function") return undefined;
    let pending: FramecastEvent<T>[] = [];
    const off = store.onEvent((e) => pending.push(e));
    let raf = 0;
    const frame = (t: number) => {
      const events = pending;
      pending = [];
      const renderTimeMs = (client ? client.clock.serverNow() : Date.now()) - delay;
      const view: FrameView<T> = {
        byKey: store.byKey,
        latest: store.latest,
        events,
        renderTimeMs,
        sample: (key) => {
          const next = store.byKey.get(key);
          const prev = store.prevByKey.get(key);
          if (!next || !prev || next.serverTimeMs <= prev.serverTimeMs) return { prev, next, alpha: 1 };
          const a = (renderTimeMs - prev.serverTimeMs) / (next.serverTimeMs - prev.serverTimeMs);
          return { prev, next, alpha: Math.max(0, Math.min(1, a)) };
        },
        status: store.status,
        gaps: store.gaps,
        violations: store.violations,
        resyncs: store.resyncs,
      };
      drawRef.current(view, t);
      raf = requestAnimationFrame(frame);
    };
    raf = requestAnimationFrame(frame);
    return () => {
      cancelAnimationFrame(raf);
      off();
    };
  }, [store, client, delay]);
}

/** For tests and devtools: the registry of the nearest provider. */
export function useFramecastRegistry(): StoreRegistry | null {
  return useContext(Ctx);
}

/** Reconnect delays, the clock-offset estimator and JWT expiry: pure functions and small classes
 * with no I/O, tested on their own. */

/** How the client waits between connection attempts. */
export interface ReconnectOptions {
  /** First delay's upper bound (ms). Default 250. */
  baseMs: number;
  /** Largest upper bound (ms). Default 30000. */
  capMs: number;
  /** A connection must last this long before the attempt counter resets (ms). Default 60000. */
  resetAfterMs: number;
  /** Give up (`failed`) after this many consecutive failed attempts. Default Infinity. */
  maxAttempts: number;
  /** After a `slow consumer` close (1008) the client comes back within U(0, this) ms. Default 1000. */
  slowConsumerMaxMs: number;
}

export const DEFAULT_RECONNECT: ReconnectOptions = {
  baseMs: 250,
  capMs: 30_000,
  resetAfterMs: 60_000,
  maxAttempts: Infinity,
  slowConsumerMaxMs: 1000,
};

/** Full-jitter exponential backoff: U(0, min(cap, base·2^attempt)). The jitter is applied after
 * the cap, so a fleet keeps spreading once every client has reached it. */
export function backoffDelay(attempt: number, o: ReconnectOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(o.capMs, o.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** One clock sample: the server's time was read somewhere between the local times t0 and t1. */
export interface ClockSample {
  offsetMs: number;
  rttMs: number;
}

/** Estimates the offset of the server's clock from the local one, NTP style: each sample is
 * `server_time_ms − (t0 + t1) / 2` with error ≤ rtt/2; the estimate is the sample with the smallest
 * round trip among the last `keep`. */
export class Clock {
  #samples: ClockSample[] = [];
  #best: ClockSample | null = null;
  #keep: number;

  constructor(keep = 8) {
    this.#keep = keep;
  }

  /** Adds a sample taken between local wall-clock times `t0` and `t1` (ms since the epoch). */
  sample(t0: number, t1: number, serverTimeMs: number): ClockSample {
    const s = { offsetMs: serverTimeMs - (t0 + t1) / 2, rttMs: Math.max(0, t1 - t0) };
    this.#samples.push(s);
    if (this.#samples.length > this.#keep) this.#samples.shift();
    this.#best = this.#samples.reduce((a, b) => (b.rttMs < a.rttMs ? b : a));
    return s;
  }

  /** Server time minus local time in ms (0 before any sample). */
  get offsetMs(): number {
    return this.#best?.offsetMs ?? 0;
  }

  /** Upper bound of the offset's error (ms), Infinity before any sample. */
  get errorMs(): number {
    return this.#best ? this.#best.rttMs / 2 : Infinity;
  }

  /** Whether any sample was taken. */
  get synced(): boolean {
    return this.#best !== null;
  }

  /** The server's clock now, estimated (ms since the epoch). */
  serverNow(): number {
    return Date.now() + this.offsetMs;
  }

  /** A server time (ms since the epoch) on the local clock. */
  toLocal(serverTimeMs: number): number {
    return serverTimeMs - this.offsetMs;
  }
}

/** The `exp` claim of a JWT in ms since the epoch (the signature is not checked), or null. */
export function tokenExpiry(token: string | null | undefined): number | null {
  if (!token) return null;
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(b64 + "===".slice((b64.length + 3) % 4));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** When to refresh a token that expires at `expMs` and was obtained at `nowMs`: `max(30 s, 10 %)`
 * of its lifetime before expiry, but never before half of its lifetime is over. Returns a delay. */
export function refreshDelay(expMs: number, nowMs: number, marginMs?: number): number {
  const life = expMs - nowMs;
  if (life <= 0) return 0;
  const margin = Math.min(marginMs ?? Math.max(30_000, life / 10), life / 2);
  return Math.max(0, Math.floor(life - margin));
}

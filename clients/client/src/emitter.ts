/** A small typed event emitter. A listener that throws never breaks the client: the error is
 * re-thrown on a fresh task (so it reaches `window.onerror` / Node's uncaught handler). */
export class Emitter<M extends object> {
  #listeners = new Map<keyof M, Set<(value: never) => void>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof M>(event: K, listener: (value: M[K]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as (value: never) => void);
    return () => this.off(event, listener);
  }

  /** Adds a listener called at most once. */
  once<K extends keyof M>(event: K, listener: (value: M[K]) => void): () => void {
    const off = this.on(event, (v) => {
      off();
      listener(v);
    });
    return off;
  }

  /** Removes a listener. */
  off<K extends keyof M>(event: K, listener: (value: M[K]) => void): void {
    this.#listeners.get(event)?.delete(listener as (value: never) => void);
  }

  /** Whether any listener is registered, for any event. */
  hasListeners(): boolean {
    for (const set of this.#listeners.values()) if (set.size > 0) return true;
    return false;
  }

  /** Number of listeners of `event`. */
  listenerCount(event: keyof M): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof M>(event: K, value: M[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as (value: M[K]) => void)(value);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

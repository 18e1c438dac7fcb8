/** A scripted socket for the suites that need what the real server never does on purpose
 * (crafted binary frames, seq jumps, repeats): the client under test is given it as its
 * `WebSocket`; it opens on the next turn with a `connected` greeting, records what the client
 * sends, and the test feeds it server messages. */
import type { WebSocketLike } from "@framecast/client/browser";

export class ScriptedSocket implements WebSocketLike {
  /** The socket the client created last (a reconnect makes a new one). */
  static last: ScriptedSocket;
  readyState = 0;
  binaryType = "blob";
  /** Everything the client sent: JSON text parsed, binary messages as they were. */
  sent: (Record<string, unknown> | Uint8Array)[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {
    ScriptedSocket.last = this;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.({});
      this.json({ type: "connected", client_id: "c1", user_id: null, timestamp: new Date().toISOString(), server_time_ms: Date.now(), tick_hz: 60 });
    });
  }
  send(data: string | Uint8Array): void {
    this.sent.push(typeof data === "string" ? (JSON.parse(data) as Record<string, unknown>) : data);
  }
  close(): void {
    this.readyState = 3;
  }
  /** Delivers a server message as JSON text. */
  json(m: unknown): void {
    this.onmessage?.({ data: JSON.stringify(m) });
  }
  /** Delivers `data` as it is (an `ArrayBuffer` for a binary frame). */
  raw(data: unknown): void {
    this.onmessage?.({ data });
  }
  /** The JSON messages of `type` the client sent, in order. */
  texts(type: string): Record<string, unknown>[] {
    return this.sent.filter((m): m is Record<string, unknown> => !(m instanceof Uint8Array) && m.type === type);
  }
  /** The binary messages the client sent, in order. */
  binaries(): Uint8Array[] {
    return this.sent.filter((m): m is Uint8Array => m instanceof Uint8Array);
  }
}

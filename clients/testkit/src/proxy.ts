/** A TCP proxy that injects real faults between a client and the server: cut every connection,
 * blackhole (half-open: sockets stay up, bytes vanish), stop reading from the server (its queue
 * for the client fills up: a real slow consumer), refuse new connections. */
import net from "node:net";

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

export class FaultProxy {
  readonly server: net.Server;
  readonly port: number;
  targetPort: number;
  /** Connections accepted so far (refused ones included). */
  accepted = 0;
  /** Connections relayed to the server so far (not refused). */
  relayed = 0;
  #pairs = new Set<Pair>();
  #blackhole = false;
  #paused = false;
  #refuse = false;

  private constructor(server: net.Server, port: number, targetPort: number) {
    this.server = server;
    this.port = port;
    this.targetPort = targetPort;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  static async start(targetPort: number): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined;
    const server = net.createServer((client) => proxy!.#accept(client));
    await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
    const port = (server.address() as net.AddressInfo).port;
    proxy = new FaultProxy(server, port, targetPort);
    return proxy;
  }

  #accept(client: net.Socket): void {
    this.accepted++;
    if (this.#refuse) {
      client.destroy();
      return;
    }
    this.relayed++;
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    const pair = { client, upstream };
    this.#pairs.add(pair);
    const drop = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (d) => {
      if (!this.#blackhole) upstream.write(d);
    });
    upstream.on("data", (d) => {
      if (!this.#blackhole) client.write(d);
    });
    client.on("close", drop);
    upstream.on("close", drop);
    client.on("error", drop);
    upstream.on("error", drop);
    if (this.#paused) upstream.pause();
  }

  /** Open proxied connections. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Resets every connection (both sides see the TCP connection end). */
  cut(): void {
    for (const p of this.#pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.#pairs.clear();
  }

  /** Drops every byte both ways while keeping the sockets open (a half-open connection). */
  blackhole(on = true): void {
    this.#blackhole = on;
  }

  /** Stops reading what the server sends (the server's per-connection queue fills up). */
  pauseServerReads(on = true): void {
    this.#paused = on;
    for (const p of this.#pairs) {
      if (on) p.upstream.pause();
      else p.upstream.resume();
    }
  }

  /** New connections are closed at once (while on). */
  refuse(on = true): void {
    this.#refuse = on;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}

/** A real framecast process for tests: started on port 0 (or a given address, for restarts) with a
 * TOML configuration, its address read from the JSON "framecast listening" log line. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const clientsDir = resolve(fileURLToPath(new URL("../..", import.meta.url)));

/** The binary under test: $FRAMECAST_BIN (a relative path is relative to clients/), else
 * ../target/debug/framecast relative to clients/. */
export function framecastBin(): string {
  const bin = resolve(clientsDir, process.env.FRAMECAST_BIN ?? "../target/debug/framecast");
  if (!existsSync(bin)) throw new Error(`framecast binary not found at ${bin} (build it with cargo, or set FRAMECAST_BIN)`);
  return bin;
}

/** The repository's test certificates: `ca.pem` (the test CA) and the leaves `server-rsa` and
 * `server-ecdsa` (`.pem` + `.key`) for DNS `localhost` and IP `127.0.0.1`, signed by it. */
export const TLS_DIR = resolve(clientsDir, "../tests/fixtures/tls");

/** The flags that make a server serve `wss://` (and HTTPS) with the test leaf `server-<key>`. */
export function tlsArgs(key: "rsa" | "ecdsa" = "rsa"): string[] {
  return ["--tls-cert-file", join(TLS_DIR, `server-${key}.pem`), "--tls-key-file", join(TLS_DIR, `server-${key}.key`)];
}

/** The test CA (PEM), for clients that must trust it (`ca` of `ws`, `https`, `tls`). */
export function testCa(): Buffer {
  return readFileSync(join(TLS_DIR, "ca.pem"));
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

export interface ServerOptions {
  /** TOML configuration text. */
  config?: string;
  /** Extra command-line flags. */
  args?: string[];
  /** Address to listen on (default 127.0.0.1:0). */
  listen?: string;
}

export class FramecastServer {
  readonly addr: string;
  readonly port: number;
  /** `wss` when the server said it serves TLS (`scheme` on its "framecast listening" line). */
  readonly scheme: "ws" | "wss";
  readonly proc: ChildProcess;
  readonly options: ServerOptions;
  readonly logs: string[];
  #exit: Promise<number | null>;

  private constructor(
    proc: ChildProcess,
    addr: string,
    scheme: "ws" | "wss",
    options: ServerOptions,
    logs: string[],
    exit: Promise<number | null>,
  ) {
    this.proc = proc;
    this.addr = addr;
    this.scheme = scheme;
    this.port = Number(addr.split(":").pop());
    this.options = options;
    this.logs = logs;
    this.#exit = exit;
  }

  get tls(): boolean {
    return this.scheme === "wss";
  }

  /** host:port to dial: with TLS by name (`localhost`, which the test certificates carry). */
  get host(): string {
    return this.tls ? `localhost:${this.port}` : this.addr;
  }

  get wsUrl(): string {
    return `${this.scheme}://${this.host}/ws`;
  }

  get httpUrl(): string {
    return `${this.tls ? "https" : "http"}://${this.host}`;
  }

  /** Starts a server and resolves once it listens. */
  static async start(options: ServerOptions = {}): Promise<FramecastServer> {
    const dir = mkdtempSync(join(tmpdir(), "framecast-js-"));
    const cfg = join(dir, "framecast.toml");
    writeFileSync(cfg, options.config ?? "");
    const args = [
      "--listen", options.listen ?? "127.0.0.1:0",
      "--shards", "1",
      "--pin-cores", "false",
      "--log-format", "json",
      "--log-level", "info",
      "--config", cfg,
      ...(options.args ?? []),
    ];
    const proc = spawn(framecastBin(), args, { stdio: ["ignore", "ignore", "pipe"] });
    live.add(proc);
    const logs: string[] = [];
    const exit = new Promise<number | null>((res) => proc.once("exit", (code) => {
      live.delete(proc);
      res(code);
    }));
    const [addr, scheme] = await new Promise<[string, "ws" | "wss"]>((res, rej) => {
      let buf = "";
      const timer = setTimeout(() => rej(new Error(`framecast did not start in 30 s:\n${logs.join("\n")}`)), 30_000);
      proc.stderr!.setEncoding("utf8");
      proc.stderr!.on("data", (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          logs.push(line);
          try {
            const v = JSON.parse(line) as { fields?: { message?: string; addr?: string; scheme?: string } };
            if (v.fields?.message === "framecast listening" && v.fields.addr) {
              clearTimeout(timer);
              res([v.fields.addr, v.fields.scheme === "wss" ? "wss" : "ws"]);
            }
          } catch {
            /* not JSON */
          }
        }
      });
      void exit.then((code) => {
        clearTimeout(timer);
        rej(new Error(`framecast exited (${code}) before listening:\n${logs.join("\n")}`));
      });
    });
    return new FramecastServer(proc, addr, scheme, options, logs, exit);
  }

  /** Sends `signal` (SIGTERM: reconnect hints, 1001, drain) and waits for the exit code. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.#exit;
    this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), timeoutMs);
    const code = await this.#exit;
    clearTimeout(timer);
    return code;
  }

  /** Resolves when the process has exited. */
  exited(): Promise<number | null> {
    return this.#exit;
  }

  /** A new process on the same address (a new epoch for every channel). */
  static async startOn(addr: string, options: ServerOptions): Promise<FramecastServer> {
    let last: unknown;
    for (let i = 0; i < 50; i++) {
      try {
        return await FramecastServer.start({ ...options, listen: addr });
      } catch (err) {
        last = err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw last;
  }

  /** SIGTERM, wait for the exit, start again on the same address. */
  async restart(between?: () => Promise<void>): Promise<FramecastServer> {
    await this.stop("SIGTERM");
    await between?.();
    return FramecastServer.startOn(this.addr, this.options);
  }
}

/** A live dashboard of what the seeds stream, on @framecast/react, under React StrictMode:
 * a 60 Hz energy field (WIRTHFORGE), an AI token stream, system.status gauges (SigmaVault),
 * avatar positions as keyed state (HD1) and the connection state with RTT (HD1's latency). */
import { StrictMode, useRef, useState } from "react";
import { createRoot } from "react-dom/client";
import {
  FramecastProvider,
  useConnectionState,
  useChannel,
  useFrame,
  useLatest,
  useLatestByKey,
  useStream,
  useFramecastRegistry,
} from "@framecast/react";

interface SystemStatus {
  hostname: string;
  cpu_usage: number;
  memory_pct: number;
  connections: number;
}
interface Energy {
  values: number[];
}
interface Pos {
  x: number;
  y: number;
}

/** What the page exposes to its browser test (and devtools). */
interface Probe {
  states: string[];
  energy: { frames: number; events: number; unexplained: number; violations: number; gaps: number; resyncs: number; lastSeq: number };
  /** What `useChannel`'s handler saw on the token stream (every event once, in seq order). */
  tokens: { events: number; repeats: number; jumps: number; lastSeq: number };
}
const probe: Probe = {
  states: [],
  tokens: { events: 0, repeats: 0, jumps: 0, lastSeq: 0 },
  energy: { frames: 0, events: 0, unexplained: 0, violations: 0, gaps: 0, resyncs: 0, lastSeq: 0 },
};
(globalThis as { __framecast?: Probe }).__framecast = probe;

function Connection() {
  const c = useConnectionState();
  if (probe.states.at(-1) !== c.state) probe.states.push(c.state);
  return (
    <section>
      <h2>Connection</h2>
      <div className="state" data-testid="state" data-state={c.state}>
        {c.state}
        {c.state === "reconnecting" && c.retryInMs !== undefined ? ` (retry in ${c.retryInMs} ms)` : ""}
      </div>
      <div data-testid="rtt">RTT {c.rttMs === null ? "–" : `${c.rttMs.toFixed(1)} ms`}</div>
    </section>
  );
}

function Gauges() {
  const s = useLatest<SystemStatus>("system.status"); // SigmaVault's useSystemStatus, in one line
  return (
    <section>
      <h2>system.status {s ? `· ${s.hostname}` : ""}</h2>
      <div>CPU {s ? `${s.cpu_usage.toFixed(1)} %` : "…"}</div>
      <div className="gauge">
        <div style={{ width: `${s?.cpu_usage ?? 0}%` }} />
      </div>
      <div>Memory {s ? `${s.memory_pct.toFixed(1)} %` : "…"}</div>
      <div className="gauge">
        <div style={{ width: `${s?.memory_pct ?? 0}%` }} />
      </div>
      <div data-testid="status-connections">{s ? `${s.connections} connections` : ""}</div>
    </section>
  );
}

function Tokens() {
  const toks = useStream<{ t: string }>("tokens:demo", { limit: 500 });
  // The same channel through useChannel (one store, one subscription): the handler sees each
  // event once, in order, StrictMode's double effects notwithstanding.
  useChannel<{ t: string }>("tokens:demo", (e) => {
    const t = probe.tokens;
    if (e.snapshot) return;
    if (t.lastSeq && e.seq <= t.lastSeq) t.repeats++;
    else if (t.lastSeq && e.seq !== t.lastSeq + 1) t.jumps++;
    t.lastSeq = e.seq;
    t.events++;
  });
  return (
    <section>
      <h2>AI token stream</h2>
      <div className="tokens" data-testid="tokens">
        {toks.map((e) => e.data.t).join("")}
      </div>
    </section>
  );
}

function Positions() {
  const pos = useLatestByKey<Pos & { v: number; snapshot?: boolean }>("pos:demo");
  return (
    <section>
      <h2>Avatars (snapshot, then deltas)</h2>
      <ul data-testid="positions">
        {[...pos].sort(([a], [b]) => a.localeCompare(b)).map(([k, p]) => (
          <li key={k} data-key={k} data-v={p.v}>
            {k}: ({p.x.toFixed(1)}, {p.y.toFixed(1)}) v{p.v}
          </li>
        ))}
      </ul>
    </section>
  );
}

function EnergyField() {
  const canvas = useRef<HTMLCanvasElement>(null);
  useFrame<Energy>("energy:field", (view) => {
    const e = probe.energy;
    e.frames++;
    // Every seq must follow the previous one unless the server announced a gap or a resync.
    const explained = view.gaps !== e.gaps || view.resyncs !== e.resyncs;
    if (view.resyncs !== e.resyncs) e.lastSeq = 0; // a new stream (restart): start over
    for (const ev of view.events) {
      if (e.lastSeq && ev.seq !== e.lastSeq + 1 && !explained) e.unexplained++;
      e.lastSeq = ev.seq;
      e.events++;
    }
    e.gaps = view.gaps;
    e.resyncs = view.resyncs;
    e.violations = view.violations;
    const el = canvas.current;
    const ctx = el?.getContext("2d");
    const values = view.latest?.data.values;
    if (!el || !ctx || !values) return;
    const w = (el.width = el.clientWidth);
    const h = (el.height = el.clientHeight);
    ctx.clearRect(0, 0, w, h);
    const bw = w / values.length;
    values.forEach((v, i) => {
      ctx.fillStyle = `hsl(${200 + v * 120}, 80%, ${35 + v * 30}%)`;
      ctx.fillRect(i * bw + 1, h - v * h, bw - 2, v * h);
    });
  });
  return (
    <section>
      <h2>Energy field · 60 Hz (drawn in requestAnimationFrame, no React renders)</h2>
      <canvas ref={canvas} data-testid="energy" />
    </section>
  );
}

function Channels() {
  const reg = useFramecastRegistry();
  return <div data-testid="channels" hidden>{reg ? "ready" : "none"}</div>;
}

function App({ url }: { url: string }) {
  const [mounted, setMounted] = useState(true);
  return (
    <>
      <h1>framecast live dashboard</h1>
      {mounted ? (
        <FramecastProvider url={url} options={{ heartbeat: { intervalMs: 2000, timeoutMs: 5000 } }}>
          <div className="grid">
            <Connection />
            <Gauges />
            <EnergyField />
            <Positions />
            <Tokens />
          </div>
          <Channels />
        </FramecastProvider>
      ) : (
        <p data-testid="unmounted">unmounted</p>
      )}
      <button data-testid="toggle" onClick={() => setMounted((m) => !m)}>
        {mounted ? "unmount" : "mount"}
      </button>
    </>
  );
}

const params = new URLSearchParams(location.search);
const url = params.get("ws") ?? `ws://${location.hostname}:8080/ws`;
createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App url={url} />
  </StrictMode>,
);

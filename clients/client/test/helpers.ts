/** Shared by the client suites: a recorder of everything a channel reports. */
import type { Channel, FramecastClient, FramecastEvent, GapInfo, ResyncInfo, StateChange, SubscribedInfo, ViolationInfo } from "@framecast/client";

export class Recorder<T = unknown> {
  events: FramecastEvent<T>[] = [];
  gaps: GapInfo[] = [];
  resyncs: { info: ResyncInfo; at: number }[] = [];
  violations: ViolationInfo[] = [];
  subscribed: SubscribedInfo[] = [];
  caughtUp = 0;
  /** Events and markers in arrival order (for ordering checks). */
  log: string[] = [];

  constructor(readonly channel: Channel<T>) {
    channel.on("event", (e) => {
      this.events.push(e);
      this.log.push(`${e.snapshot ? "snap" : "ev"}:${e.seq}`);
    });
    channel.on("gap", (g) => {
      this.gaps.push(g);
      this.log.push(`gap:${g.fromSeq}-${g.toSeq}`);
    });
    channel.on("resync", (r) => {
      this.resyncs.push({ info: r, at: this.events.length });
      this.log.push("resync");
    });
    channel.on("violation", (v) => {
      this.violations.push(v);
      this.log.push(`violation:${v.kind}:${v.expected}->${v.got}`);
    });
    channel.on("subscribed", (s) => {
      this.subscribed.push(s);
      this.log.push(`subscribed:${s.position?.seq ?? "-"}:${String(s.recovered)}`);
    });
    channel.on("caughtUp", () => {
      this.caughtUp++;
      this.log.push("caughtUp");
    });
  }

  /** Seqs of live (non-snapshot) events. */
  liveSeqs(): number[] {
    return this.events.filter((e) => !e.snapshot).map((e) => e.seq);
  }
}

/** Records a client's state changes. */
export function stateLog(client: FramecastClient): StateChange[] {
  const log: StateChange[] = [];
  client.on("state", (s) => log.push({ ...s }));
  return log;
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

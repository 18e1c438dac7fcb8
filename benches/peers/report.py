#!/usr/bin/env python3
"""compare.sh's index.tsv (name, workload, step, json-path-or-FAILED) -> one Markdown table.

Ported from the peers kit's report.py, reading framecast-load's JSON line (`--json`).
`report.py --line STEP.json` prints one step's summary line instead (compare.sh's progress).
"""
import json
import sys


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def line(path):
    d = json.load(open(path))
    lat = d["latency_ms"]
    return (
        f"   subs={d['subscribers']} offered={d['published_per_second']:.0f}/s "
        f"delivered={d['delivered_per_second']:.0f}/s ratio={d['delivery_ratio']:.3f} "
        f"p50={lat['p50']:.2f}ms p99={lat['p99']:.2f}ms srv_cpu={fmt(d['server_cpu_percent'], '.0f')}% "
        f"srv_core={fmt(d['server_core_busy_percent'], '.0f')}% load_core={fmt(d['loadgen_core_busy_percent'], '.0f')}% "
        f"rss={fmt(d['server_rss_mib'], '.1f')}MiB err={d['errors']} disc={d['disconnects']} skipped={d['publisher_skipped']}"
    )


def main(index):
    rows = []
    failures = []
    for name, wl, step, path in (l.rstrip("\n").split("\t", 3) for l in open(index)):
        label = wl + (f" @{step}/s" if wl == "W1" and step else "")
        if wl == "W2" and step:
            label = f"W2 {step}/tick"
        if path.startswith("FAILED"):
            failures.append(f"- {name} {label}: {path}")
            rows.append(f"| {name} | {label} | {path} |" + " |" * 12)
            continue
        d = json.load(open(path))
        lat = d["latency_ms"]
        idle = d["target_rate"] == 0
        subs = str(d["subscribers"])
        if d["subscribers"] != d["subscribers_requested"]:
            subs += f"/{d['subscribers_requested']}"
        probs = f"{d['errors']}/{d['disconnects']}"
        cells = [
            name,
            label,
            subs,
            "-" if idle else f"{d['published_per_second']:.0f}",
            "-" if idle else f"{d['delivered_per_second']:,.0f}",
            "-" if idle else f"{d['delivery_ratio']:.3f}",
            "-" if idle or not lat["count"] else f"{lat['p50']:.2f}",
            "-" if idle or not lat["count"] else f"{lat['p99']:.2f}",
            fmt(d.get("server_cpu_percent"), ".0f"),
            fmt(d.get("server_core_busy_percent"), ".0f"),
            fmt(d.get("server_rss_mib"), ".1f"),
            fmt(d.get("server_rss_per_connection_kib"), ".2f"),
            fmt(d.get("loadgen_core_busy_percent"), ".0f"),
            f"{d['connect_seconds']:.1f}",
            probs,
        ]
        rows.append("| " + " | ".join(cells) + " |")
    print(
        "| server | workload | subs | offered msg/s | delivered msg/s | delivery ratio "
        "| p50 ms | p99 ms | server CPU % | server core busy % | server RSS MiB "
        "| RSS/conn KiB | load core busy % | connect s | errors/disconnects |"
    )
    print("|" + "---|" * 15)
    for r in rows:
        print(r)
    print()
    print(
        "Columns: offered = messages/s the publisher actually sent in the window; delivered = "
        "messages/s received summed over all subscribers (every `T=` marker counts, so a server "
        "that joins messages into one frame is counted right); delivery ratio = delivered / "
        "(offered x subs); latency = publisher send -> subscriber receive (one process, one clock); "
        "server CPU % = utime+stime of the server process (100 = one core; excludes softirq network "
        "work); server core busy % = /proc/stat busy (incl. irq/softirq) of the core the server is "
        "pinned to; server RSS = VmRSS at the end of the window; RSS/conn = (RSS at end - RSS before "
        "any connection) / connected subs; load core busy % near 100 means framecast-load itself "
        "was the limit; connect s = time to open all subscriber connections; errors = connect + "
        "upgrade failures, disconnects = subscriber connections lost during the run."
    )
    if failures:
        print()
        print("Failures:")
        print("\n".join(failures))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--line":
        print(line(sys.argv[2]))
    else:
        main(sys.argv[1])

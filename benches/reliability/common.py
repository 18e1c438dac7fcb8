"""Shared helpers for the reliability scripts: start/stop a framecast server on a loopback port,
sample its RSS / fds / CPU, raw HTTP on loopback, counting its log lines, JSON summaries.

Loopback only: every address used here is in 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_SERVER_BIN = str(REPO / "target" / "release" / "framecast")
LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def check_loopback(host: str) -> str:
    """Refuses any address outside 127.0.0.0/8."""
    parts = host.split(".")
    if len(parts) != 4 or parts[0] != "127" or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts):
        raise SystemExit(f"refusing non-loopback address {host!r} (only 127.0.0.0/8 is allowed)")
    return host


def source_ips(count: int) -> list[str]:
    """127.0.0.2 ... 127.0.0.(count+1): extra source addresses, each with its own ephemeral ports."""
    if not 1 <= count <= 250:
        raise SystemExit("source address count must be 1..250")
    return [check_loopback(f"127.0.0.{2 + i}") for i in range(count)]


def raise_nofile(min_needed: int = 0) -> tuple[int, int]:
    """Raises this process's RLIMIT_NOFILE soft limit to the hard limit (and, when running as
    root and more is needed, the hard limit too, up to fs.nr_open). Returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want_hard = hard
    if min_needed > hard and os.geteuid() == 0:
        try:
            nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
        except OSError:
            nr_open = hard
        want_hard = min(max(hard, min_needed), nr_open)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want_hard, want_hard))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((check_loopback(host), 0))
        return s.getsockname()[1]


def _preexec_raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process, in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Server:
    """One framecast process on 127.0.0.1:port, started with --log-level warn, stdout+stderr to
    a log file, RLIMIT_NOFILE raised to the hard limit."""

    def __init__(self, binary: str, port: int, log_path: Path, args: list[str] | None = None,
                 config_toml: str | None = None, config_path: Path | None = None):
        self.binary = binary
        self.port = port
        self.log_path = Path(log_path)
        self.args = list(args or [])
        self.config_toml = config_toml
        self.config_path = Path(config_path) if config_path else self.log_path.with_suffix(".toml")
        self.proc: subprocess.Popen | None = None
        self.started_at = None
        self._log_file = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else -1

    def command(self) -> list[str]:
        cmd = [self.binary, "--listen", f"{LOOPBACK}:{self.port}", "--log-level", "warn"]
        if self.config_toml is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd + self.args

    def start(self, ready_timeout: float = 15.0) -> "Server":
        if not os.access(self.binary, os.X_OK):
            raise SystemExit(f"server binary {self.binary} is missing or not executable "
                             "(build it: cargo build --release --bin framecast, or pass --server-bin)")
        if self.config_toml is not None:
            self.config_path.write_text(self.config_toml)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=self._log_file, preexec_fn=_preexec_raise_nofile, close_fds=True)
        self.started_at = time.monotonic()
        if ready_timeout:
            self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float = 15.0) -> float:
        """Polls GET /healthz until 200; returns seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                raise RuntimeError(f"server exited during start (rc={self.proc.returncode}); log: {self.log_path}\n"
                                   + self.log_tail())
            if healthz(self.port, timeout=0.5) == 200:
                return time.monotonic() - t0
            time.sleep(0.02)
        raise RuntimeError(f"server not ready after {timeout}s; log: {self.log_path}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_description(self) -> str | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        rc = self.proc.returncode
        if rc < 0:
            try:
                return f"killed by signal {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exit code {rc}"

    def rss_kb(self):
        return proc_rss_kb(self.pid) if self.alive() else None

    def fds(self):
        return proc_fds(self.pid) if self.alive() else None

    def cpu_s(self):
        return proc_cpu_s(self.pid) if self.alive() else None

    def sigterm(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> str | None:
        """SIGTERM, wait, SIGKILL if it did not exit. Returns how it exited."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                desc = "did not exit within %.0fs of SIGTERM: SIGKILLed" % timeout
                self._close_log()
                return desc
        self._close_log()
        return self.exit_description()

    def _close_log(self):
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


_NORMALISE = re.compile(r"^\S+\s+|\b[0-9a-f]{8}-[0-9a-f-]{27}\b|\d+")


def log_stats(path: Path, top: int = 5) -> dict:
    """Line counts of a server log: total, per level, and the most repeated messages (numbers and
    the leading timestamp blanked)."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    levels = collections.Counter()
    shapes = collections.Counter()
    for line in lines:
        m = re.search(r"\b(TRACE|DEBUG|INFO|WARN|ERROR)\b", line)
        levels[m.group(1) if m else "other"] += 1
        shapes[_NORMALISE.sub("#", line)[:160]] += 1
    return {"lines": len(lines), "by_level": dict(levels),
            "top": [{"count": c, "shape": s} for s, c in shapes.most_common(top)]}


def line_count(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


# ---------------------------------------------------------------------------------- raw HTTP


def http_raw(port: int, request: bytes, timeout: float = 2.0, host: str = LOOPBACK,
             read_until_close: bool = False) -> bytes:
    """Sends raw bytes, returns what came back (one response head+body by Content-Length, or
    everything until close)."""
    with socket.create_connection((check_loopback(host), port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
            if not read_until_close:
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep:
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    if m and len(body) >= int(m.group(1)):
                        break
        return data


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int | None, bytes]:
    try:
        resp = http_raw(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
                        timeout=timeout)
    except OSError:
        return None, b""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    if not m:
        return None, resp
    return int(m.group(1)), resp.partition(b"\r\n\r\n")[2]


def healthz(port: int, timeout: float = 1.0) -> int | None:
    return http_get(port, "/healthz", timeout)[0]


def metrics(port: int, timeout: float = 3.0) -> dict[str, float]:
    """Prometheus text → {"name{labels}": value} (histogram buckets skipped)."""
    status, body = http_get(port, "/metrics", timeout)
    out = {}
    if status != 200:
        return out
    for line in body.decode(errors="replace").splitlines():
        if not line or line.startswith("#") or "_bucket{" in line:
            continue
        try:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
        except ValueError:
            continue
    return out


def metric_sum(m: dict[str, float], name: str) -> float:
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


async def shard_of_client(watcher, client_id, shard_of: dict, timeout: float = 2.0):
    """The shard of client_id, from the `connect` events a WebSocket connection (`watcher`, already
    subscribed to the built-in `connections` channel) receives; waits up to `timeout` s. shard_of
    caches every client_id → shard seen. Returns None if the event did not come."""
    deadline = time.monotonic() + timeout
    while client_id not in shard_of and time.monotonic() < deadline:
        try:
            msg = json.loads(await asyncio.wait_for(watcher.recv(), max(0.01, deadline - time.monotonic())))
        except asyncio.TimeoutError:
            break
        d = msg.get("data") or {}
        if msg.get("type") == "event" and msg.get("event_type") == "connect":
            shard_of[d.get("client_id")] = d.get("shard")
    return shard_of.get(client_id)


# ---------------------------------------------------------------------------------- stats


def pct(values, p: float):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(math.ceil(p / 100.0 * len(s))) - 1))
    return s[k]


def summary_stats(values, scale: float = 1.0, digits: int = 1) -> dict:
    if not values:
        return {"n": 0}
    r = lambda v: round(v * scale, digits)
    return {"n": len(values), "min": r(min(values)), "p50": r(pct(values, 50)), "p90": r(pct(values, 90)),
            "p99": r(pct(values, 99)), "max": r(max(values))}


def linear_slope(xs, ys) -> float | None:
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def binary_info(path: str) -> dict:
    info = {"path": path}
    try:
        st = os.stat(path)
        info["mtime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime))
        info["size"] = st.st_size
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5)
        info["version"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def write_json(path: str | None, obj: dict):
    text = json.dumps(obj, indent=2, sort_keys=False, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def out_dir(name: str) -> Path:
    d = HERE / "out" / f"{name}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def eprint(*a):
    print(*a, file=sys.stderr, flush=True)

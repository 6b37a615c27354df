#!/usr/bin/python3
"""corral benchmarks: `make bench` runs this from the repository root.

Starts real `bin/corrald` daemons on throwaway state directories, measures
them, and prints a Markdown table of the figures followed by the exact
commands that produced them (paste both into docs/BENCHMARKS.md).

Every benchmark is a function in BENCHMARKS taking the shared Context; it
adds rows with ctx.row() and may start daemons with ctx.start_daemon() (its
own, fresh) or ctx.shared_daemon() (one daemon shared by the benchmarks that
measure a long-running process). A benchmark that raises is reported as
FAILED and the others still run. Whatever happens, every daemon started is
killed and every temporary directory removed.

Environment:
  CORRAL_BENCH_SECONDS  duration of each load run (default 10)
  CORRAL_BENCH_STARTS   number of cold starts for start-to-ready (default 5)
  CORRAL_BENCH_CORRALD  daemon binary (default bin/corrald)
  CORRAL_BENCH_LOADGEN  load generator (default build/default/bench/loadgen)

Only the Python standard library is used.
"""

import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORRALD = Path(os.environ.get("CORRAL_BENCH_CORRALD", ROOT / "bin" / "corrald"))
LOADGEN = Path(
    os.environ.get("CORRAL_BENCH_LOADGEN", ROOT / "build" / "default" / "bench" / "loadgen")
)
SECONDS = float(os.environ.get("CORRAL_BENCH_SECONDS", "10"))
STARTS = int(os.environ.get("CORRAL_BENCH_STARTS", "5"))

READY_TIMEOUT = 30.0  # seconds from spawn to ready before giving up
POLL_INTERVAL = 0.001  # readiness probe period
IDLE_SETTLE = 1.0  # seconds a fresh daemon idles before its RSS is read
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


class BenchError(Exception):
    """A benchmark could not produce its figure; the message says why."""


def http_status(sock_path, path, timeout=1.0):
    """GET path over the Unix socket; return the status code, or None when
    nothing is listening yet (no socket file, refused, reset, timed out)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
            "User-Agent: corral-bench\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return None
            data += chunk
        parts = data.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise BenchError(f"GET {path}: malformed status line {data[:80]!r}")
        return int(parts[1])
    except (FileNotFoundError, ConnectionError, socket.timeout):
        return None
    finally:
        s.close()


def proc_status(pid):
    """Return /proc/PID/status as a dict of strings."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_kib(pid):
    """Return (VmRSS, VmHWM) of pid in KiB."""
    st = proc_status(pid)
    return int(st["VmRSS"].split()[0]), int(st["VmHWM"].split()[0])


def cpu_seconds(pid):
    """Return user + system CPU seconds pid has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may contain spaces: split after its ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of proc(5), 12 and 13 here.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


class Daemon:
    """One corrald process on its own state directory."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name
        self.state_dir = ctx.workdir / name
        self.state_dir.mkdir()
        self.sock = str(self.state_dir / "unix.socket")
        if len(self.sock) > SUN_PATH_MAX:
            raise BenchError(f"socket path too long for AF_UNIX: {self.sock}")
        self.log_path = ctx.workdir / f"{name}.log"
        self.argv = [str(CORRALD), "--state-dir", str(self.state_dir)]
        self.proc = None
        self.ready_s = None  # spawn to ready, seconds
        self.ready_by = None  # which probe declared it ready

    def start(self):
        """Spawn corrald and wait until it is ready, timing spawn to ready.

        Ready means GET /1.0/projects answers 200; while that endpoint does
        not exist yet (404), a 200 on GET /1.0 counts instead."""
        with open(self.log_path, "wb") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, for stop()
            )
        deadline = t0 + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name}: corrald exited with status "
                    f"{self.proc.returncode} before it was ready\n{self.log_tail()}"
                )
            projects = http_status(self.sock, "/1.0/projects")
            if projects == 200:
                self.ready_by = "GET /1.0/projects 200"
            elif projects == 404 and http_status(self.sock, "/1.0") == 200:
                self.ready_by = "GET /1.0 200 (/1.0/projects 404)"
            if self.ready_by is not None:
                self.ready_s = time.perf_counter() - t0
                return self
            if time.perf_counter() > deadline:
                raise BenchError(
                    f"{self.name}: not ready {READY_TIMEOUT:.0f} s after spawn "
                    f"(last GET /1.0/projects: {projects})\n{self.log_tail()}"
                )
            time.sleep(POLL_INTERVAL)

    def check_alive(self):
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise BenchError(f"{self.name}: corrald is not running (exit status {code})\n"
                             f"{self.log_tail()}")

    def stop(self):
        """SIGTERM the daemon's process group, SIGKILL it if it lingers.
        Safe to call twice and on a daemon that never started."""
        if self.proc is None or self.proc.returncode is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, None)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                print(f"bench: {self.name}: corrald ignored SIGTERM for "
                      f"{STOP_TIMEOUT:.0f} s; killing it", file=sys.stderr)

    def log_tail(self, lines=20):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        if not text:
            return "(corrald logged nothing)"
        return "corrald log (last lines):\n  " + "\n  ".join(text[-lines:])


class Context:
    """What the benchmarks share: the work directory, the daemons to clean up,
    the table rows and the commands to print."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.daemons = []
        self.rows = []  # (benchmark, result, details)
        self.commands = []  # (what, command line)
        self.failed = False
        self._shared = None
        self._shared_error = None  # why the shared daemon did not start
        self._seq = 0

    def row(self, benchmark, result, details=""):
        self.rows.append((benchmark, result, details))

    def command(self, what, argv):
        """Record a command for the report, with paths under the repository
        made relative (the report says to run from the root) and the work
        directory shown as $BENCH_DIR."""
        def show(arg):
            arg = str(arg)
            if arg.startswith(str(ROOT) + "/"):
                arg = arg[len(str(ROOT)) + 1:]
            return arg.replace(str(self.workdir), "$BENCH_DIR")
        line = " ".join(
            a if a.startswith("$BENCH_DIR") and " " not in a else shlex.quote(a)
            for a in map(show, argv)
        )
        if (what, line) not in self.commands:
            self.commands.append((what, line))

    def start_daemon(self, name, what=None):
        """Start a fresh corrald on a new state directory, recording its
        command line under what (default: not recorded); it is stopped at the
        end of the run (or earlier with daemon.stop())."""
        self._seq += 1
        d = Daemon(self, f"{name}-{self._seq}")
        self.daemons.append(d)
        if what is not None:
            self.command(what, d.argv)
        return d.start()

    def shared_daemon(self):
        """The daemon shared by idle-RSS, load and RSS-after-load."""
        if self._shared is None:
            if self._shared_error is not None:
                raise BenchError(f"shared daemon: {self._shared_error}")
            try:
                self._shared = self.start_daemon(
                    "shared", "corrald for idle RSS, load and RSS after load")
            except BenchError as e:
                self._shared_error = str(e).splitlines()[0]
                raise
            time.sleep(IDLE_SETTLE)
        self._shared.check_alive()
        return self._shared

    def loadgen(self, what, daemon, *args):
        """Run loadgen against daemon with args (plus --unix and --json) and
        return its JSON figures, with corrald's CPU seconds added."""
        argv = [str(LOADGEN), "--unix", daemon.sock, *map(str, args), "--json"]
        self.command(what, argv)
        cpu0 = cpu_seconds(daemon.proc.pid)
        res = subprocess.run(argv, capture_output=True, text=True)
        cpu1 = cpu_seconds(daemon.proc.pid)
        daemon.check_alive()
        try:
            figures = json.loads(res.stdout)
        except ValueError:
            raise BenchError(
                f"loadgen exited with status {res.returncode}: "
                f"{res.stderr.strip() or res.stdout.strip()}"
            ) from None
        if res.returncode != 0:
            raise BenchError(f"loadgen: {figures['requests']} requests, "
                             f"{figures['errors']} errors: {res.stderr.strip()}")
        if figures["errors"]:
            # A figure measured with errors is suspect: show it, fail the run.
            self.failed = True
            print(f"bench: {what}: {figures['errors']} errors: {res.stderr.strip()}",
                  file=sys.stderr)
        figures["corrald_cpu_s"] = cpu1 - cpu0
        return figures

    def close(self):
        for d in self.daemons:
            d.stop()


def load_row(ctx, name, figures):
    cpu = figures["corrald_cpu_s"] / figures["seconds"] * 100
    errors = f", **{figures['errors']} errors**" if figures["errors"] else ""
    ctx.row(
        name,
        f"{figures['rps']:,.0f} req/s",
        f"p50 {figures['p50_us']} µs, p99 {figures['p99_us']} µs; "
        f"{figures['requests']:,} requests in {figures['seconds']:.1f} s{errors}; "
        f"corrald CPU {cpu:.0f}% of one core",
    )


# Benchmarks, run in this order. Later ones (profile creates per second,
# GET /1.0/profiles with 3000 profiles, TLS) go here.


def bench_start_to_ready(ctx):
    """Spawn to ready, median of STARTS cold starts on fresh state dirs."""
    times, ready_by = [], set()
    for i in range(STARTS):
        what = f"corrald cold start, {STARTS}x, each on a fresh state dir"
        d = ctx.start_daemon("start", what if i == 0 else None)
        times.append(d.ready_s * 1000)
        ready_by.add(d.ready_by)
        d.stop()
    ctx.row(
        f"start-to-ready (median of {STARTS})",
        f"{statistics.median(times):.1f} ms",
        f"min {min(times):.1f} ms, max {max(times):.1f} ms; "
        f"ready = {', '.join(sorted(ready_by))}; probed every "
        f"{POLL_INTERVAL * 1000:.0f} ms",
    )


def bench_idle_rss(ctx):
    d = ctx.shared_daemon()
    rss, hwm = rss_kib(d.proc.pid)
    ctx.row("idle RSS", mib(rss),
            f"VmRSS {IDLE_SETTLE:.0f} s after ready; peak (VmHWM) {mib(hwm)}")


def bench_get_server_1(ctx):
    d = ctx.shared_daemon()
    f = ctx.loadgen("GET /1.0, 1 connection", d, "--connections", 1,
                    "--duration", f"{SECONDS:g}", "--method", "GET", "--path", "/1.0")
    load_row(ctx, "GET /1.0, 1 connection", f)


def bench_get_server_8(ctx):
    d = ctx.shared_daemon()
    f = ctx.loadgen("GET /1.0, 8 connections", d, "--connections", 8,
                    "--duration", f"{SECONDS:g}", "--method", "GET", "--path", "/1.0")
    load_row(ctx, "GET /1.0, 8 connections", f)


def bench_rss_after_load(ctx):
    d = ctx.shared_daemon()
    rss, hwm = rss_kib(d.proc.pid)
    ctx.row("RSS after load", mib(rss),
            f"VmRSS after the GET /1.0 runs; peak (VmHWM) {mib(hwm)}")


def bench_profile_creates(ctx):
    """Profile creates through the API, 1 connection, SECONDS long, on a
    fresh daemon: each request creates profile p<N>."""
    d = ctx.start_daemon("creates", "corrald for profile creates")
    f = ctx.loadgen("POST /1.0/profiles, 1 connection", d, "--connections", 1,
                    "--duration", f"{SECONDS:g}", "--method", "POST",
                    "--path", "/1.0/profiles", "--body", '{"name":"p%d"}')
    load_row(ctx, "profile creates (POST /1.0/profiles), 1 connection", f)
    d.stop()


LIST_PROFILES = 3000


def bench_list_profiles(ctx):
    """GET /1.0/profiles with 3000 profiles present (the default profile and
    2999 created ones), as URLs and as objects, then corrald's RSS."""
    d = ctx.start_daemon("list", "corrald for the 3000-profile list")
    f = ctx.loadgen(f"create {LIST_PROFILES - 1} profiles", d, "--sequence",
                    LIST_PROFILES - 1, "--method", "POST", "--path",
                    "/1.0/profiles", "--body",
                    '{"name":"p%d","config":{"limits.cpu":"2"},'
                    '"devices":{"eth0":{"type":"nic","nictype":"bridged",'
                    '"parent":"br0","security.ipv4_filtering":"true"}}}')
    if f["requests"] != LIST_PROFILES - 1:
        raise BenchError(f"created {f['requests']} profiles, wanted "
                         f"{LIST_PROFILES - 1}")
    for what, path in (("URLs", "/1.0/profiles"),
                       ("objects", "/1.0/profiles?recursion=1")):
        f = ctx.loadgen(f"GET {path} ({LIST_PROFILES} profiles), 1 connection",
                        d, "--connections", 1, "--duration",
                        f"{min(SECONDS, 5):g}", "--method", "GET", "--path",
                        path)
        load_row(ctx, f"GET {path}, {LIST_PROFILES} profiles ({what})", f)
    rss, hwm = rss_kib(d.proc.pid)
    ctx.row(f"RSS with {LIST_PROFILES} profiles", mib(rss),
            f"VmRSS after the list runs; peak (VmHWM) {mib(hwm)}")
    d.stop()


BENCHMARKS = [
    bench_start_to_ready,
    bench_idle_rss,
    bench_get_server_1,
    bench_get_server_8,
    bench_rss_after_load,
    bench_profile_creates,
    bench_list_profiles,
]


def host_summary():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
            f"corral {rev or '(uncommitted)'}, {time.strftime('%Y-%m-%d')}")


def report(ctx):
    print("## corral benchmarks\n")
    print(f"Host: {host_summary()}. Load runs last {SECONDS:g} s each.\n")
    print("| Benchmark | Result | Details |")
    print("|---|---|---|")
    for bench, result, details in ctx.rows:
        cells = (c.replace("|", "\\|").replace("\n", " ") for c in (bench, result, details))
        print("| " + " | ".join(cells) + " |")
    print("\nCommands, run from the repository root ($BENCH_DIR is a fresh "
          "temporary directory, removed afterwards):\n")
    print("```")
    for what, line in ctx.commands:
        print(f"# {what}")
        print(line)
    print("```")
    print("\nstart-to-ready: time from spawning corrald to the first ready answer "
          "of an AF_UNIX HTTP probe, polled every 1 ms.")


def main():
    for path in (CORRALD, LOADGEN):
        if not os.access(path, os.X_OK):
            print(f"bench: {path} is missing; run `make bench`", file=sys.stderr)
            return 2
    # The socket path must fit in sun_path: prefer a short /tmp over a long TMPDIR.
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    workdir = tempfile.mkdtemp(prefix="corral-bench-", dir=base)
    ctx = Context(workdir)
    try:
        for bench in BENCHMARKS:
            name = bench.__name__.removeprefix("bench_")
            print(f"bench: {name}...", file=sys.stderr, flush=True)
            try:
                bench(ctx)
            except (BenchError, OSError, subprocess.SubprocessError) as e:
                ctx.failed = True
                ctx.row(name, "FAILED", str(e).splitlines()[0])
                print(f"bench: {name}: {e}", file=sys.stderr)
    finally:
        ctx.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report(ctx)
    return 1 if ctx.failed else 0


if __name__ == "__main__":
    sys.exit(main())

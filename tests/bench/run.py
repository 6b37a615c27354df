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
  CORRAL_BENCH_REVOKES  number of revocations for the revoke latency (default 20)
  CORRAL_BENCH_ONLY     run only the benchmarks whose name starts with this
                        (e.g. `cluster`: the 3-member cluster benchmarks)

Only the Python standard library is used.
"""

import base64
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import ssl
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
ONLY = os.environ.get("CORRAL_BENCH_ONLY", "")
SECONDS = float(os.environ.get("CORRAL_BENCH_SECONDS", "10"))
STARTS = int(os.environ.get("CORRAL_BENCH_STARTS", "5"))
REVOKES = int(os.environ.get("CORRAL_BENCH_REVOKES", "20"))

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


class PeerClosed(Exception):
    """The server closed the connection (or reset it, or ended the TLS
    session) where a response was expected."""


class HTTPConn:
    """A keep-alive HTTP/1.1 client on a connected stream socket (AF_UNIX, or
    TCP wrapped in an SSLSocket): one request at a time, each response read
    whole by its Content-Length (or chunked, or up to the close)."""

    MAX_LINE = 64 * 1024

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    @classmethod
    def unix(cls, sock_path, timeout=10.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(sock_path)
        except OSError:
            s.close()
            raise
        return cls(s)

    def close(self):
        self.sock.close()

    def _recv(self):
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionError, ssl.SSLError) as e:
            raise PeerClosed(str(e)) from None
        return chunk

    def _fill(self):
        chunk = self._recv()
        if not chunk:
            raise PeerClosed("connection closed by the server")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                return line.rstrip(b"\r")
            if len(self.buf) > self.MAX_LINE:
                raise BenchError("HTTP response line too long")
            self._fill()

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, method, path, body=None):
        """Send one request; body, when given, is sent as JSON. Raises
        PeerClosed when the connection is already gone."""
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
                "User-Agent: corral-bench\r\n")
        if body is not None:
            head += "Content-Type: application/json\r\n"
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(data)}\r\n"
        try:
            self.sock.sendall(head.encode() + b"\r\n" + data)
        except (ConnectionError, ssl.SSLError) as e:
            raise PeerClosed(str(e)) from None

    def response(self):
        """Read one response; return (status, decoded JSON body or None).
        Raises PeerClosed when the connection ends before the response does."""
        while True:
            line = self._line()
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") \
                    or not parts[1].isdigit():
                raise BenchError(f"malformed status line {line[:80]!r}")
            status = int(parts[1])
            headers = {}
            while True:
                line = self._line()
                if not line:
                    break
                name, _, value = line.partition(b":")
                headers[name.strip().lower().decode("latin-1")] = \
                    value.strip().decode("latin-1")
            if not 100 <= status < 200:
                break
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():  # trailer fields
                        pass
                    break
                body += self._take(size)
                if self._line():
                    raise BenchError("HTTP chunk not followed by CRLF")
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        else:  # the body ends with the connection
            while True:
                chunk = self._recv()
                if not chunk:
                    break
                self.buf += chunk
            body, self.buf = self.buf, b""
        try:
            return status, (json.loads(body) if body else None)
        except ValueError:
            raise BenchError(f"HTTP {status}: body is not JSON: {body[:80]!r}") from None

    def request(self, method, path, body=None):
        self.send(method, path, body)
        return self.response()


def api(sock_path, method, path, body=None):
    """One request over a new Unix socket connection; return the decoded
    body, raising BenchError unless the status is 2xx."""
    conn = HTTPConn.unix(sock_path)
    try:
        status, doc = conn.request(method, path, body)
    except PeerClosed as e:
        raise BenchError(f"{method} {path}: {e}") from None
    finally:
        conn.close()
    check_2xx(f"{method} {path}", status, doc)
    return doc


def check_2xx(what, status, doc):
    if not 200 <= status < 300:
        err = doc.get("error") if isinstance(doc, dict) else doc
        raise BenchError(f"{what}: HTTP {status}: {err}")


def curl(sock_path, method, path, body=None):
    """The curl command line for a request over the Unix socket."""
    argv = ["curl", "-sS", "--unix-socket", sock_path]
    if method != "GET":
        argv += ["-X", method]
    if body is not None:
        argv += ["-H", "Content-Type: application/json",
                 "-d", json.dumps(body, separators=(",", ":"))]
    return argv + [f"http://localhost{path}"]


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
        self.ready_by = None  # a restart is timed afresh
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
        self.aliases = {}  # value -> shell variable, in commands
        self.failed = False
        self._shared = None
        self._shared_error = None  # why the shared daemon did not start
        self._tls = None  # the TLS daemon and its client certificate
        self._tls_error = None  # why it could not be set up
        self._seq = 0

    def row(self, benchmark, result, details=""):
        self.rows.append((benchmark, result, details))

    def command(self, what, argv):
        """Record a command for the report, with paths under the repository
        made relative (the report says to run from the root) and the work
        directory shown as $BENCH_DIR, and each value given to alias()
        shown as its shell variable. A string argv is a shell line, recorded
        as it is but for those substitutions."""
        def subst(text):
            text = text.replace(str(self.workdir), "$BENCH_DIR")
            for value, name in self.aliases.items():
                text = text.replace(value, "$" + name)
            return text

        if isinstance(argv, str):
            line = subst(argv.replace(str(ROOT) + "/", ""))
            if (what, line) not in self.commands:
                self.commands.append((what, line))
            return

        def show(arg):
            arg = str(arg)
            if arg.startswith(str(ROOT) + "/"):
                arg = arg[len(str(ROOT)) + 1:]
            shown = subst(arg)
            # Leave a substituted word bare so that the shell expands it.
            if shown != arg and " " not in shown and shlex.quote(arg) == arg:
                return shown
            return shlex.quote(shown)
        line = " ".join(map(show, argv))
        if (what, line) not in self.commands:
            self.commands.append((what, line))

    def alias(self, value, name, what, line):
        """Show value as $name in the commands recorded from now on, after
        recording line, the shell assignment that sets name."""
        self.command(what, f"{name}={line}")
        self.aliases[str(value)] = name

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

    def tls_daemon(self):
        """The daemon serving HTTPS with a trusted client certificate, shared
        by the TLS benchmarks (see TLSDaemon)."""
        if self._tls is None:
            if self._tls_error is not None:
                raise BenchError(f"TLS daemon: {self._tls_error}")
            try:
                self._tls = TLSDaemon(self).start()
            except BenchError as e:
                self._tls_error = str(e).splitlines()[0]
                raise
        self._tls.daemon.check_alive()
        return self._tls

    def loadgen(self, what, daemon, *args, tls=None):
        """Run loadgen against daemon with args (plus --unix, or --tls with
        tls's address and client certificate, and --json) and return its
        JSON figures, with corrald's CPU seconds added."""
        if tls is None:
            target = ["--unix", daemon.sock]
        else:
            target = ["--tls", tls.address, "--cert", tls.cert, "--key",
                      tls.key, "--insecure"]
        argv = [str(LOADGEN), *target, *map(str, args), "--json"]
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


class TLSDaemon:
    """A corrald serving HTTPS on 127.0.0.1 (an ephemeral port, read back
    from GET /1.0) with a self-signed EC P-384 client certificate in its
    trust store, all set up over the Unix socket."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.daemon = None
        self.address = None  # HOST:PORT of the HTTPS listener
        self.cert = str(ctx.workdir / "bench.crt")
        self.key = str(ctx.workdir / "bench.key")
        self.der_b64 = None  # the certificate as POST /1.0/certificates wants it
        self.fingerprint = None  # SHA-256 of the DER, corrald's name for it
        self.trusted = False

    def start(self):
        ctx = self.ctx
        d = self.daemon = ctx.start_daemon("tls", "corrald for the TLS benchmarks")
        body = {"config": {"core.https_address": "127.0.0.1:0"}}
        ctx.command("serve HTTPS on an ephemeral port of 127.0.0.1",
                    curl(d.sock, "PATCH", "/1.0", body))
        api(d.sock, "PATCH", "/1.0", body)
        env = api(d.sock, "GET", "/1.0")["metadata"]["environment"]
        if not env.get("addresses"):
            raise BenchError("GET /1.0: no environment.addresses after "
                             "setting core.https_address")
        self.address = env["addresses"][0]
        ctx.alias(self.address, "HTTPS_ADDR",
                  "the bound address: GET /1.0 metadata.environment.addresses[0]",
                  "$(" + " ".join(map(shlex.quote, curl(d.sock, "GET", "/1.0")))
                  + " | python3 -c 'import json, sys; print(json.load(sys.stdin)"
                  '["metadata"]["environment"]["addresses"][0])\')')

        argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:secp384r1", "-nodes", "-days", "1",
                "-subj", "/CN=bench", "-keyout", self.key, "-out", self.cert]
        ctx.command("client certificate: EC P-384, self-signed", argv)
        res = subprocess.run(argv, capture_output=True, text=True)
        if res.returncode != 0:
            raise BenchError(f"openssl req: {res.stderr.strip()}")
        der = ssl.PEM_cert_to_DER_cert(Path(self.cert).read_text())
        self.der_b64 = base64.b64encode(der).decode()
        self.fingerprint = hashlib.sha256(der).hexdigest()
        ctx.alias(self.fingerprint, "FP",
                  "its fingerprint: the SHA-256 of its DER",
                  f"$(openssl x509 -in {self.cert} -outform DER | sha256sum "
                  "| cut -d' ' -f1)")

        ctx.command(
            "trust it: POST /1.0/certificates with the base64 of its DER",
            f"curl -sS --unix-socket {d.sock} -X POST "
            "-H 'Content-Type: application/json' "
            '-d "{\\"type\\":\\"client\\",\\"name\\":\\"bench\\",'
            '\\"certificate\\":\\"'
            f"$(openssl x509 -in {self.cert} -outform DER | base64 -w0)"
            '\\"}" http://localhost/1.0/certificates')
        self.ensure_trusted()
        listed = api(d.sock, "GET", "/1.0/certificates")["metadata"]
        if f"/1.0/certificates/{self.fingerprint}" not in listed:
            raise BenchError(f"the trusted certificate {self.fingerprint} is "
                             f"not in GET /1.0/certificates: {listed}")
        return self

    def trust_body(self):
        return {"type": "client", "name": "bench", "certificate": self.der_b64}

    def ensure_trusted(self):
        if not self.trusted:
            api(self.daemon.sock, "POST", "/1.0/certificates", self.trust_body())
            self.trusted = True

    def ssl_context(self):
        """A client context like loadgen's: TLS 1.2+, the client certificate,
        the server's certificate not verified (the bench pins nothing)."""
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.minimum_version = ssl.TLSVersion.TLSv1_2
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        c.load_cert_chain(self.cert, self.key)
        return c

    def connect(self, context, timeout=10.0):
        """A new TLS connection to the daemon, handshake done."""
        host, _, port = self.address.rpartition(":")
        raw = socket.create_connection((host.strip("[]"), int(port)), timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return HTTPConn(context.wrap_socket(raw))
        except BaseException:
            raw.close()
            raise


def duration(seconds):
    us = seconds * 1e6
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"


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


# Benchmarks, run in this order.


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


def rss_split(pid):
    """Return (RssAnon, RssFile) of pid in KiB: private memory, and pages of
    mapped files (shared library code, shared with other processes)."""
    st = proc_status(pid)
    return int(st["RssAnon"].split()[0]), int(st["RssFile"].split()[0])


def bench_idle_rss(ctx):
    d = ctx.shared_daemon()
    rss, hwm = rss_kib(d.proc.pid)
    anon, files = rss_split(d.proc.pid)
    ctx.row("idle RSS", mib(rss),
            f"VmRSS {IDLE_SETTLE:.0f} s after ready: {mib(anon)} private "
            f"(RssAnon), {mib(files)} mapped library files (RssFile); "
            f"peak (VmHWM) {mib(hwm)}")


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
    anon, _ = rss_split(d.proc.pid)
    ctx.row("RSS after load", mib(rss),
            f"VmRSS after the GET /1.0 runs ({mib(anon)} private); "
            f"peak (VmHWM) {mib(hwm)}")


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


def tls_load(name, path, connections):
    """A benchmark: TLS GET path, connections keep-alive connections (one
    handshake each), SECONDS long, presenting the trusted certificate."""
    def bench(ctx):
        t = ctx.tls_daemon()
        t.ensure_trusted()
        what = (f"TLS GET {path}, {connections} connection"
                f"{'s' if connections > 1 else ''}, trusted client certificate")
        f = ctx.loadgen(what, t.daemon, "--connections", connections,
                        "--duration", f"{SECONDS:g}", "--method", "GET",
                        "--path", path, tls=t)
        load_row(ctx, what, f)
    bench.__name__ = f"bench_tls_get_{name}_{connections}"
    return bench


def bench_tls_revoke(ctx):
    """Revocation latency, REVOKES times: with the certificate trusted and
    one keep-alive TLS connection open with it (GET /1.0/certificates 200),
    DELETE /1.0/certificates/<fp> over a keep-alive Unix connection, timed;
    then at once GET /1.0/certificates on the open TLS connection, timed
    from the DELETE's answer to the refusal (a 403, or the connection closed:
    corrald closes a revoked certificate's connections before answering the
    DELETE). An answer of 2xx is the old certificate accepted after its
    revocation returned, which must never happen."""
    t = ctx.tls_daemon()
    d = t.daemon
    path = "/1.0/certificates"
    cert_path = f"/1.0/certificates/{t.fingerprint}"
    ctx.command(f"revoke latency, {REVOKES}x (in run.py: re-trust the "
                f"certificate, open a TLS connection with it, GET {path} "
                "-> 200, then) revoke over a keep-alive Unix connection",
                curl(d.sock, "DELETE", cert_path))
    ctx.command("... and at once, on the TLS connection opened before the "
                f"DELETE: GET {path} -> 403 or connection closed",
                ["curl", "-sS", "-k", "--cert", t.cert, "--key", t.key,
                 f"https://{t.address}{path}"])
    context = t.ssl_context()
    unix = HTTPConn.unix(d.sock)
    deletes, refusals, outcomes, accepted = [], [], {}, 0
    try:
        for i in range(REVOKES):
            run = f"revoke run {i + 1}"
            if not t.trusted:
                status, doc = unix.request("POST", "/1.0/certificates",
                                           t.trust_body())
                check_2xx(f"{run}: POST /1.0/certificates", status, doc)
                t.trusted = True
            conn = t.connect(context)
            try:
                status, doc = conn.request("GET", path)
                if status != 200:
                    raise BenchError(f"{run}: TLS GET {path} with the trusted "
                                     f"certificate: HTTP {status}")
                t0 = time.perf_counter()
                status, doc = unix.request("DELETE", cert_path)
                t1 = time.perf_counter()
                check_2xx(f"{run}: DELETE {cert_path}", status, doc)
                t.trusted = False
                try:
                    conn.send("GET", path)
                    status, _ = conn.response()
                    outcome = f"HTTP {status}"
                except PeerClosed:
                    status, outcome = None, "connection closed"
                t2 = time.perf_counter()
            finally:
                conn.close()
            deletes.append(t1 - t0)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if status is not None and 200 <= status < 300:
                accepted += 1
            else:
                refusals.append(t2 - t1)
    except PeerClosed as e:
        raise BenchError(f"revoke: unexpected close: {e}") from None
    finally:
        unix.close()
    d.check_alive()

    seen = ", ".join(f"{n}x {o}" for o, n in sorted(outcomes.items()))
    ctx.row(f"revoke: DELETE /1.0/certificates/<fp> (median of {REVOKES})",
            duration(statistics.median(deletes)),
            f"max {duration(max(deletes))}; round trip over a keep-alive "
            "Unix connection while the certificate holds one open TLS "
            "connection")
    if refusals:
        result = duration(statistics.median(refusals))
        details = f"max {duration(max(refusals))}; "
    else:
        result, details = "n/a", ""
    bad = f"**{accepted}**" if accepted else "0"
    ctx.row(f"revoke: DELETE returned to old certificate refused "
            f"(median of {len(refusals)})", result,
            f"{details}next GET {path} on the open TLS connection: {seen}; "
            f"accepted after the DELETE returned: {bad} of {REVOKES}")
    if accepted:
        ctx.failed = True
        print(f"bench: revoke: the revoked certificate was accepted in "
              f"{accepted} of {REVOKES} runs after its DELETE returned",
              file=sys.stderr)


# Cluster benchmarks: three members on 127.0.0.1, formed over the Unix
# sockets the way tests/cluster does (enable on the first, join tokens for
# the others).


CLUSTER_REVOKES = 10
CLUSTER_PUTS = 20
CLUSTER_OP_TIMEOUT = 30


def wait_op(d, doc, what):
    """Wait for the operation of an async answer; BenchError unless it
    succeeded."""
    op = doc["operation"]
    conn = HTTPConn.unix(d.sock, timeout=CLUSTER_OP_TIMEOUT + 5)
    try:
        status, out = conn.request("GET", f"{op}/wait?timeout={CLUSTER_OP_TIMEOUT}")
    finally:
        conn.close()
    check_2xx(f"{what}: wait", status, out)
    if out["metadata"]["status"] != "Success":
        raise BenchError(f"{what}: {out['metadata'].get('err')}")


def unix_request(d, method, path, body=None, timeout=10.0):
    conn = HTTPConn.unix(d.sock, timeout=timeout)
    try:
        return conn.request(method, path, body)
    finally:
        conn.close()


def member_status(d):
    """{name: (status, roles)} from GET /1.0/cluster/members on d."""
    doc = api(d.sock, "GET", "/1.0/cluster/members?recursion=1")
    return {m["server_name"]: (m["status"], m["roles"]) for m in doc["metadata"]}


def start_together(daemons):
    """Start @daemons in parallel threads (each waits until its daemon is
    ready); returns a function that waits for all of them and raises the
    first failure."""
    import threading
    errors = []

    def run(d):
        try:
            d.start()
        except BenchError as e:
            errors.append(e)
    threads = [threading.Thread(target=run, args=(d,)) for d in daemons]
    for t in threads:
        t.start()

    def join():
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
    return join


class BenchCluster:
    """Three corrald members on 127.0.0.1 (ephemeral ports), m1 enabled,
    m2 and m3 joined with tokens. formation_s: from spawning the daemons
    (in parallel) to m1 listing three members Online."""

    NAMES = ("m1", "m2", "m3")

    def __init__(self, ctx, record=False):
        self.ctx = ctx
        self.record = record
        self.members = {}  # name -> Daemon
        self.addresses = {}  # name -> HOST:PORT
        self.formation_s = None

    def _listen(self, name, d):
        body = {"config": {"core.https_address": "127.0.0.1:0"}}
        api(d.sock, "PATCH", "/1.0", body)
        env = api(d.sock, "GET", "/1.0")["metadata"]["environment"]
        self.addresses[name] = env["addresses"][0]
        if self.record and name == "m1":
            self.ctx.command("each member: serve HTTPS on an ephemeral port",
                             curl(d.sock, "PATCH", "/1.0", body))

    def start(self):
        ctx = self.ctx
        daemons = []
        for name in self.NAMES:
            ctx._seq += 1
            d = Daemon(ctx, f"cluster-{name}-{ctx._seq}")
            ctx.daemons.append(d)
            daemons.append(d)
            self.members[name] = d
        if self.record:
            ctx.command("3 members, spawned together, each on a fresh state dir",
                        daemons[0].argv)
        t0 = time.perf_counter()
        start_together(daemons)()
        m1 = self.members["m1"]
        for name, d in self.members.items():
            self._listen(name, d)
        body = {"server_name": "m1", "enabled": True}
        if self.record:
            ctx.command("enable clustering on m1",
                        curl(m1.sock, "PUT", "/1.0/cluster", body))
        wait_op(m1, api(m1.sock, "PUT", "/1.0/cluster", body), "enable")
        cert = api(m1.sock, "GET", "/1.0")["metadata"]["environment"]["certificate"]
        for name in ("m2", "m3"):
            d = self.members[name]
            tok = api(m1.sock, "POST", "/1.0/cluster/members",
                      {"server_name": name})["metadata"]["metadata"]
            join = {"server_name": name, "server_address": self.addresses[name],
                    "cluster_address": self.addresses["m1"],
                    "cluster_certificate": cert,
                    "cluster_password": tok["secret"], "enabled": True}
            if self.record and name == "m2":
                ctx.command("a join token for m2 (and m3), through m1",
                            curl(m1.sock, "POST", "/1.0/cluster/members",
                                 {"server_name": name}))
                shown = dict(join, cluster_certificate="<m1 GET /1.0 "
                             "environment.certificate>",
                             cluster_password="<token secret>",
                             server_address="<m2 address>",
                             cluster_address="<m1 address>")
                ctx.command("join m2 (and m3) over its own Unix socket",
                            curl(d.sock, "PUT", "/1.0/cluster", shown))
            wait_op(d, api(d.sock, "PUT", "/1.0/cluster", join), f"join {name}")
        deadline = time.perf_counter() + 30
        while True:
            st = member_status(m1)
            if len(st) == 3 and all(s == "Online" for s, _ in st.values()):
                break
            if time.perf_counter() > deadline:
                raise BenchError(f"cluster members not Online: {st}")
            time.sleep(0.005)
        self.formation_s = time.perf_counter() - t0
        return self

    def leader(self, via="m1"):
        for name, (_, roles) in member_status(self.members[via]).items():
            if "database-leader" in roles:
                return name
        return None

    def tls(self, name, context, timeout=5.0):
        host, _, port = self.addresses[name].rpartition(":")
        raw = socket.create_connection((host, int(port)), timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return HTTPConn(context.wrap_socket(raw))
        except BaseException:
            raw.close()
            raise

    def tls_status(self, name, context, path):
        """Status of one TLS GET on a new connection (None: closed)."""
        try:
            conn = self.tls(name, context)
        except (OSError, ssl.SSLError):
            return None
        try:
            return conn.request("GET", path)[0]
        except (PeerClosed, OSError):
            return None
        finally:
            conn.close()

    def stop(self):
        for d in self.members.values():
            d.stop()


def client_cert(ctx, name):
    """A self-signed EC P-384 client certificate: (crt, key, b64 DER, fp)."""
    crt = str(ctx.workdir / f"{name}.crt")
    key = str(ctx.workdir / f"{name}.key")
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:secp384r1", "-nodes", "-days", "1",
            "-subj", f"/CN={name}", "-keyout", key, "-out", crt]
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode != 0:
        raise BenchError(f"openssl req: {res.stderr.strip()}")
    der = ssl.PEM_cert_to_DER_cert(Path(crt).read_text())
    return crt, key, base64.b64encode(der).decode(), hashlib.sha256(der).hexdigest()


def bench_cluster(ctx):
    """Formation; revoke through m1 and refusal on m2 and m3; profile PUT
    through m2; kill -9 of m3 until Offline on m1 and m2. Then a second
    cluster: kill -9 of the leader until a write through a survivor
    succeeds."""
    c = BenchCluster(ctx, record=True).start()
    formation = len(ctx.rows)
    try:
        cluster_revoke(ctx, c)
        cluster_profile_put(ctx, c)
        cluster_partition(ctx, c)
        cluster_offline(ctx, c)
    finally:
        c.stop()
    c2 = BenchCluster(ctx).start()
    try:
        ctx.rows.insert(formation, (
            "cluster: formation (spawn of 3 members -> 3 listed Online)",
            f"{c.formation_s:.2f} s",
            f"second cluster {c2.formation_s:.2f} s; spawn together, "
            "enable m1, join m2 then m3 with tokens, poll GET "
            "/1.0/cluster/members on m1 every 5 ms"))
        cluster_failover(ctx, c2)
        cluster_cold_start(ctx, c2)
    finally:
        c2.stop()


def cluster_revoke(ctx, c):
    m1 = c.members["m1"]
    crt, key, b64, fp = client_cert(ctx, "cluster-bench")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(crt, key)
    trust = {"type": "client", "name": "cb", "certificate": b64}
    path = f"/1.0/certificates/{fp}"
    ctx.command(f"cluster revoke, {CLUSTER_REVOKES}x (in run.py: trust the "
                "certificate through m1, TLS GET /1.0/projects on m2 and m3 "
                "-> 200, then) revoke through m1",
                curl(m1.sock, "DELETE", path))
    ctx.command("... then poll a new TLS connection to m2 and to m3 until "
                "refused (403 or closed)",
                f"curl -sS -k --cert {crt} --key {key} "
                "https://$M2_ADDR/1.0/projects  # and $M3_ADDR")
    unix = HTTPConn.unix(m1.sock)
    deletes, refused, unacked, accepted = [], [], 0, 0
    try:
        for i in range(CLUSTER_REVOKES):
            status, doc = unix.request("POST", "/1.0/certificates", trust)
            check_2xx("POST /1.0/certificates", status, doc)
            for name in ("m2", "m3"):
                st = c.tls_status(name, context, "/1.0/projects")
                if st != 200:
                    raise BenchError(f"TLS GET on {name} with the trusted "
                                     f"certificate: {st}")
            t0 = time.perf_counter()
            status, doc = unix.request("DELETE", path)
            t1 = time.perf_counter()
            check_2xx(f"DELETE {path}", status, doc)
            if doc["metadata"].get("unacknowledged_members"):
                unacked += 1
            worst = 0.0
            for name in ("m2", "m3"):
                first = True
                while True:
                    st = c.tls_status(name, context, "/1.0/projects")
                    if st is None or st == 403:
                        break
                    if first and 200 <= st < 300:
                        accepted += 1
                    first = False
                    if time.perf_counter() - t1 > 10:
                        raise BenchError(f"{name} still accepts the revoked "
                                         "certificate 10 s after the DELETE")
                    time.sleep(0.001)
                worst = max(worst, time.perf_counter() - t0)
            deletes.append(t1 - t0)
            refused.append(worst)
    finally:
        unix.close()
    ctx.row(f"cluster: revoke DELETE through m1 (median of {CLUSTER_REVOKES})",
            duration(statistics.median(deletes)),
            f"max {duration(max(deletes))}; includes the change notification "
            f"acknowledged by m2 and m3; unacknowledged in {unacked} runs")
    bad = f"**{accepted}**" if accepted else "0"
    ctx.row(f"cluster: DELETE sent -> refused on m2 and m3 "
            f"(median of {CLUSTER_REVOKES})",
            duration(statistics.median(refused)),
            f"max {duration(max(refused))}; the later of the two first "
            "refusals, each on a new TLS connection (handshake included); "
            f"accepted on the first request after the DELETE returned: {bad}")
    if accepted:
        ctx.failed = True


def cluster_profile_put(ctx, c):
    m2 = c.members["m2"]
    api(m2.sock, "POST", "/1.0/profiles", {"name": "bench"})
    body = {"description": "x", "config": {}, "devices": {}}
    ctx.command(f"profile PUT through m2, {CLUSTER_PUTS}x over a keep-alive "
                "Unix connection (profile created first)",
                curl(m2.sock, "PUT", "/1.0/profiles/bench", body))
    unix = HTTPConn.unix(m2.sock)
    times = []
    try:
        for i in range(CLUSTER_PUTS):
            body["description"] = f"run {i}"
            t0 = time.perf_counter()
            status, doc = unix.request("PUT", "/1.0/profiles/bench", body)
            times.append(time.perf_counter() - t0)
            check_2xx("PUT /1.0/profiles/bench", status, doc)
    finally:
        unix.close()
    for name in ("m1", "m3"):
        got = api(c.members[name].sock, "GET", "/1.0/profiles/bench")
        if got["metadata"]["description"] != body["description"]:
            raise BenchError(f"{name} does not see the last PUT")
    ctx.row(f"cluster: profile PUT through m2 (median of {CLUSTER_PUTS})",
            duration(statistics.median(times)),
            f"max {duration(max(times))}; visible on m1 and m3 when it "
            "returns (change notification acknowledged)")


def cluster_partition(ctx, c):
    """m3 frozen (SIGSTOP) for 5 s while a certificate is revoked through m1,
    then resumed: does it ever accept the revoked certificate again?"""
    m1, m3 = c.members["m1"], c.members["m3"]
    crt, key, b64, fp = client_cert(ctx, "cluster-partition")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(crt, key)
    path = f"/1.0/certificates/{fp}"
    api(m1.sock, "POST", "/1.0/certificates",
        {"type": "client", "name": "cp", "certificate": b64})
    if c.tls_status("m3", context, "/1.0/projects") != 200:
        raise BenchError("m3 does not accept the trusted certificate")
    ctx.command("partition: kill -STOP m3, revoke through m1, wait 5 s, "
                "kill -CONT m3, then TLS GET /1.0/projects on m3 with the "
                "revoked certificate every 5 ms (new connection each) until "
                "refused (the revoke, sent between kill -STOP $M3_PID and "
                "kill -CONT $M3_PID)", curl(m1.sock, "DELETE", path))
    os.kill(m3.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.perf_counter()
        doc = api(m1.sock, "DELETE", path)
        took = time.perf_counter() - t0
        unacked = doc["metadata"].get("unacknowledged_members")
        time.sleep(5)
    finally:
        os.kill(m3.proc.pid, signal.SIGCONT)
    t1 = time.perf_counter()
    seen = {}
    accepted = 0
    while True:
        st = c.tls_status("m3", context, "/1.0/projects")
        seen[st] = seen.get(st, 0) + 1
        if st is not None and 200 <= st < 300:
            accepted += 1
        if st is None or st == 403:
            break
        if time.perf_counter() - t1 > 30:
            raise BenchError(f"m3 not refusing 30 s after resuming: {seen}")
        time.sleep(0.005)
    refused = time.perf_counter() - t1
    ctx.row("cluster: revoke DELETE through m1 while m3 is stopped",
            duration(took),
            f"unacknowledged_members {json.dumps(unacked)} "
            "(corral.notify_timeout 2000 ms, default)")
    bad = f"**{accepted}**" if accepted else "0"
    ctx.row("cluster: m3 resumed after 5 s -> revoked certificate refused",
            duration(refused),
            f"accepted by m3 after resuming: {bad} of "
            f"{sum(seen.values())} requests; answers: "
            + ", ".join(f"{k if k is not None else 'closed'} x{v}"
                        for k, v in sorted(seen.items(),
                                           key=lambda kv: str(kv[0]))))
    if accepted:
        ctx.failed = True


def cluster_offline(ctx, c):
    victim = c.members["m3"]
    ctx.command("member kill: kill -9 m3, then poll GET /1.0/cluster/members "
                "on m1 and m2 every 50 ms until m3 is Offline",
                "kill -9 $M3_PID")
    victim.proc.kill()
    t0 = time.perf_counter()
    victim.proc.wait()
    seen = {}
    while len(seen) < 2:
        for name in ("m1", "m2"):
            if name in seen:
                continue
            if member_status(c.members[name])["m3"][0] == "Offline":
                seen[name] = time.perf_counter() - t0
        if time.perf_counter() - t0 > 30:
            raise BenchError(f"m3 not Offline after 30 s: {seen}")
        time.sleep(0.05)
    ctx.row("cluster: member kill -9 -> Offline on the others",
            f"{max(seen.values()):.2f} s",
            f"m1 {seen['m1']:.2f} s, m2 {seen['m2']:.2f} s; "
            "cluster.offline_threshold 3 s (default), heartbeats every 1 s, "
            "polled every 50 ms")


def cluster_failover(ctx, c):
    leader = c.leader()
    if leader is None:
        raise BenchError("no database-leader listed")
    survivor = next(n for n in c.NAMES if n != leader)
    d = c.members[survivor]
    api(d.sock, "POST", "/1.0/profiles", {"name": "failover"})
    body = {"description": "x", "config": {}, "devices": {}}
    ctx.command("failover (second cluster): kill -9 the database-leader, "
                "then PUT through a survivor every 10 ms until one succeeds",
                curl(d.sock, "PUT", "/1.0/profiles/failover", body))
    c.members[leader].proc.kill()
    t0 = time.perf_counter()
    attempts, last = 0, None
    while True:
        attempts += 1
        body["description"] = f"attempt {attempts}"
        try:
            status, doc = unix_request(d, "PUT", "/1.0/profiles/failover",
                                       body, timeout=5.0)
            if 200 <= status < 300:
                break
            last = f"HTTP {status}: {doc.get('error') if doc else ''}"
        except (PeerClosed, OSError) as e:
            last = str(e)
        if time.perf_counter() - t0 > 60:
            raise BenchError(f"no successful write 60 s after the leader "
                             f"kill; last: {last}")
        time.sleep(0.01)
    took = time.perf_counter() - t0
    c.members[leader].proc.wait()
    ctx.row("cluster: leader kill -9 -> first successful write through a "
            "survivor", f"{took:.2f} s",
            f"{leader} was leader, writes through {survivor}; {attempts} "
            f"attempts, last failure: {last}")


def cluster_cold_start(ctx, c):
    """Every member killed (a power cut), then all three started together:
    spawn -> every member ready, -> a write through m1, -> 3 Online."""
    for d in c.members.values():
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
    ctx.command("cold start (second cluster): kill -9 every member, then "
                "start all three together and PUT through m1 every 10 ms "
                "until one succeeds", "kill -9 $M1_PID $M2_PID $M3_PID; "
                "corrald --state-dir $M1 & corrald --state-dir $M2 & "
                "corrald --state-dir $M3 &")
    t0 = time.perf_counter()
    join = start_together(c.members.values())
    m1 = c.members["m1"]
    body = {"description": "after the cold start", "config": {},
            "devices": {}}
    write_s = None
    while write_s is None:
        try:
            status, _ = unix_request(m1, "PUT", "/1.0/profiles/failover",
                                     body, timeout=5.0)
            if 200 <= status < 300:
                write_s = time.perf_counter() - t0
        except (PeerClosed, OSError):
            pass
        if time.perf_counter() - t0 > 60:
            raise BenchError("no write 60 s after the cold start")
        time.sleep(0.01)
    join()
    ready_s = max(d.ready_s for d in c.members.values())
    while True:
        st = member_status(m1)
        if len(st) == 3 and all(s == "Online" for s, _ in st.values()):
            break
        if time.perf_counter() - t0 > 60:
            raise BenchError(f"members not Online after the cold start: {st}")
        time.sleep(0.005)
    online_s = time.perf_counter() - t0
    ctx.row("cluster: cold start (all 3 killed, started together) -> first "
            "write through m1", f"{write_s:.2f} s",
            f"all 3 ready {ready_s:.2f} s, 3 listed Online {online_s:.2f} s "
            "after the spawn")


BENCHMARKS = [
    bench_start_to_ready,
    bench_idle_rss,
    bench_get_server_1,
    bench_get_server_8,
    bench_rss_after_load,
    bench_profile_creates,
    bench_list_profiles,
    tls_load("server", "/1.0", 1),
    tls_load("server", "/1.0", 8),
    tls_load("certificates", "/1.0/certificates", 1),
    tls_load("certificates", "/1.0/certificates", 8),
    bench_tls_revoke,
    bench_cluster,
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
        if path == LOADGEN and ONLY.startswith("cluster"):
            continue
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
            if not name.startswith(ONLY):
                continue
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

"""Helpers for the integration suites: drive the real corrald and corral.

Everything talks to the daemon over its Unix socket with plain `socket`
and `http.client`, so tests control the raw bytes on the wire as well.

Later suites (several daemons, TLS, clusters) build on `Daemon` and
`DaemonFactory`; see conftest.py for the fixtures.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# CORRALD_BIN / CORRAL_BIN let `make` point the suite at another build
# variant (e.g. build/asan/bin) without editing the tests.
CORRALD_BIN = os.environ.get("CORRALD_BIN", os.path.join(REPO_ROOT, "bin", "corrald"))
CORRAL_BIN = os.environ.get("CORRAL_BIN", os.path.join(REPO_ROOT, "bin", "corral"))

MIB = 1024 * 1024
KIB = 1024

READY_TIMEOUT = 10.0
POLL_INTERVAL = 0.010


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket (Host header: unix.socket, like lxc)."""

    def __init__(self, path, timeout=5.0):
        super().__init__("unix.socket", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def parse_json(body):
    """Decode a response body, or return None when it is empty or not JSON."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


class RawResponse:
    """One HTTP response read off a raw connection."""

    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in wire order
        self.body = body
        self.raw = raw

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def json(self):
        return parse_json(self.body)

    def __repr__(self):
        return "RawResponse(%d %s, %r)" % (self.status, self.reason, self.body[:200])


class RawConnection:
    """A persistent Unix-socket connection for hand-crafted requests.

    `send()` writes bytes as they are; `read_response()` parses exactly one
    response (Content-Length, chunked, or until close), keeping any extra
    bytes buffered for the next call, so keep-alive and pipelining can be
    checked response by response.
    """

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except BaseException:
            self.sock.close()
            raise
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _read_until(self, marker):
        while marker not in self.buf:
            if not self._fill():
                raise EOFError("connection closed before %r (have %r)" % (marker, self.buf[:200]))
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed with %d of %d body bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def at_eof(self, wait=0.5):
        """True if the peer has closed the connection (waits up to `wait` s)."""
        if self.buf:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            return not self._fill()
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    def read_response(self, head_request=False):
        head = self._read_until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("bad status line %r" % lines[0])
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        hmap = {k.lower(): v for k, v in headers}
        raw = head
        if head_request or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in hmap.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size_line = self._read_until(b"\r\n")
                raw += size_line
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    trailer = self._read_until(b"\r\n")
                    raw += trailer
                    while trailer != b"\r\n":
                        trailer = self._read_until(b"\r\n")
                        raw += trailer
                    break
                data = self._read_exact(size + 2)
                raw += data
                body += data[:-2]
        elif "content-length" in hmap:
            body = self._read_exact(int(hmap["content-length"]))
            raw += body
        else:
            while self._fill():
                pass
            body, self.buf = self.buf, b""
            raw += body
        return RawResponse(status, reason, headers, body, raw)

    def request(self, method, path, body=None, headers=None):
        """Send one HTTP/1.1 request on this connection and read its response."""
        self.send(build_request(method, path, body, headers))
        return self.read_response(head_request=(method == "HEAD"))


def build_request(method, path, body=None, headers=None, version="HTTP/1.1"):
    """Serialise a request; a dict/list body is sent as JSON."""
    if body is not None and not isinstance(body, (bytes, bytearray)):
        if isinstance(body, str):
            body = body.encode()
        else:
            body = json.dumps(body).encode()
    hdrs = {"Host": "unix.socket"}
    if body is not None:
        hdrs["Content-Type"] = "application/json"
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    out = "%s %s %s\r\n" % (method, path, version)
    out += "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
    return out.encode("latin-1") + (body or b"")


class DaemonError(AssertionError):
    pass


class Daemon:
    """One real corrald process with its own temp directory.

    Layout: `<base>/state` is the state dir (created by corrald itself on
    first start), `<base>/corrald.log` the --log-file, `<base>/stderr.N`
    and `<base>/stdout.N` the captured output of the Nth start.

    `argv_prefix` runs corrald through a wrapper that execs it, e.g.
    ["ip", "netns", "exec", NS]: the process started is then corrald itself
    (same pid), so signals, stop() and kill() reach it directly.
    """

    def __init__(self, base=None, debug=False, log_file=True, group=None,
                 extra_args=(), env=None, binary=None, state_dir=None, umask=None,
                 pass_state_dir=True, argv_prefix=()):
        self.base = base or tempfile.mkdtemp(prefix="corral-it-")
        self.state_dir = state_dir or os.path.join(self.base, "state")
        self.socket_path = os.path.join(self.state_dir, "unix.socket")
        if log_file is True:
            log_file = os.path.join(self.base, "corrald.log")
        self.log_file = log_file or None
        self.debug = debug
        self.group = group
        self.extra_args = list(extra_args)
        self.env = env
        self.binary = binary or CORRALD_BIN
        self.umask = umask
        # False: no --state-dir flag (env must then give CORRAL_DIR=state_dir).
        self.pass_state_dir = pass_state_dir
        self.argv_prefix = list(argv_prefix)
        self.proc = None
        self.starts = 0
        self.stderr_path = None
        self.stdout_path = None
        self.all_pids = []

    # --- process control ---------------------------------------------------

    def argv(self):
        args = self.argv_prefix + [self.binary]
        if self.pass_state_dir:
            args += ["--state-dir", self.state_dir]
        if self.group is not None:
            args += ["--group", self.group]
        if self.debug:
            args.append("--debug")
        if self.log_file:
            args += ["--log-file", self.log_file]
        return args + self.extra_args

    def spawn(self):
        """Start the process without waiting for readiness."""
        if not os.path.exists(self.binary):
            raise DaemonError("daemon binary %s does not exist (run make)" % self.binary)
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        self.starts += 1
        self.stderr_path = os.path.join(self.base, "stderr.%d" % self.starts)
        self.stdout_path = os.path.join(self.base, "stdout.%d" % self.starts)
        env = dict(os.environ)
        env.pop("CORRAL_DIR", None)
        env.update(self.env or {})
        umask = self.umask

        def pre():
            if umask is not None:
                os.umask(umask)

        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=env, cwd=self.base,
                                         preexec_fn=pre if umask is not None else None)
        self.all_pids.append(self.proc.pid)
        return self.proc

    def start(self, ready_path="/1.0", timeout=READY_TIMEOUT):
        self.spawn()
        self.wait_ready(ready_path, timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, path="/1.0", timeout=READY_TIMEOUT):
        """Poll `GET path` every 10 ms until it answers 200.

        `path` is /1.0 for the listener alone; later suites pass
        /1.0/projects to wait for the database (503 until then).
        """
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while True:
            if self.proc.poll() is not None:
                raise DaemonError("corrald exited with %s before %s answered 200\n%s"
                                  % (self.proc.returncode, path, self.diagnostics()))
            try:
                status, _, body = self.request("GET", path, timeout=1.0)
                if status == 200:
                    return
                last = "HTTP %d %r" % (status, body)
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise DaemonError("corrald: GET %s not 200 after %.1fs (last: %s)\n%s"
                                  % (path, timeout, last, self.diagnostics()))
            time.sleep(POLL_INTERVAL)

    def wait_exit(self, timeout):
        """Wait for the process to exit; return its exit code (raises on timeout)."""
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=5.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DaemonError("corrald ignored SIGTERM for %.1fs\n%s" % (timeout, self.diagnostics()))

    def kill(self):
        """SIGKILL and reap; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        return self.proc.wait(timeout=10)

    def restart(self, ready_path="/1.0", timeout=READY_TIMEOUT):
        rc = self.stop()
        self.start(ready_path, timeout)
        return rc

    def cleanup(self, remove=True):
        """Kill the process and remove the temp dir; return leftover pids."""
        self.kill()
        alive = [p for p in self.all_pids if pid_alive(p)]
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)
        return alive

    # --- output ------------------------------------------------------------

    def stderr(self):
        return read_text(self.stderr_path)

    def stdout(self):
        return read_text(self.stdout_path)

    def log(self):
        return read_text(self.log_file) if self.log_file else ""

    def diagnostics(self):
        out = "--- argv: %s\n--- stderr:\n%s\n--- stdout:\n%s\n" % (
            " ".join(self.argv()), self.stderr()[-4000:], self.stdout()[-2000:])
        if self.log_file:
            out += "--- log:\n%s\n" % self.log()[-4000:]
        return out

    # --- HTTP ----------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=5.0):
        """One request on a fresh connection: (status, headers, parsed JSON or None).

        Header names in the returned object are case-insensitive
        (http.client.HTTPMessage).
        """
        conn = UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            data = None
            if body is not None:
                data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, resp.headers, parse_json(raw)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def connect(self, timeout=5.0):
        """A RawConnection (keep-alive / pipelining tests)."""
        return RawConnection(self.socket_path, timeout=timeout)

    def raw(self, data, responses=1, timeout=5.0):
        """Send hand-crafted bytes; return the raw bytes of `responses` responses
        (fewer if the daemon closes the connection first)."""
        with self.connect(timeout=timeout) as c:
            c.send(data)
            out = b""
            for _ in range(responses):
                try:
                    out += c.read_response().raw
                except EOFError:
                    out += c.buf
                    break
            return out

    def raw_responses(self, data, responses=1, timeout=5.0):
        """Like raw(), but parsed into RawResponse objects."""
        with self.connect(timeout=timeout) as c:
            c.send(data)
            return [c.read_response() for _ in range(responses)]

    # --- files ---------------------------------------------------------------

    def path(self, *names):
        return os.path.join(self.state_dir, *names)


class DaemonFactory:
    """Creates daemons for one test and guarantees their teardown.

    `new(**kw)` builds a Daemon (not started), `start(**kw)` builds and
    starts one, `track_process(p)` adopts any other subprocess.Popen so it
    is killed as well. `cleanup()` kills everything, removes every temp dir,
    and returns a description of processes that survived (empty if none).
    """

    def __init__(self):
        self.daemons = []
        self.procs = []

    def new(self, **kw):
        d = Daemon(**kw)
        self.daemons.append(d)
        return d

    def start(self, ready_path="/1.0", timeout=READY_TIMEOUT, **kw):
        d = self.new(**kw)
        d.start(ready_path, timeout)
        return d

    def track_process(self, proc):
        self.procs.append(proc)
        return proc

    def cleanup(self):
        leftovers = []
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if pid_alive(p.pid):
                leftovers.append("pid %d (%s)" % (p.pid, p.args))
        for d in self.daemons:
            for pid in d.cleanup(remove=True):
                leftovers.append("corrald pid %d" % pid)
        return leftovers


def pid_alive(pid):
    """True if a process (not a reaped zombie) with this pid exists."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def read_text(path):
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def wait_for(pred, timeout=2.0, interval=POLL_INTERVAL):
    """Poll pred() until it is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def run_cli(args, env=None, timeout=10.0, binary=None):
    """Run bin/corral; returns CompletedProcess with text stdout/stderr."""
    binary = binary or CORRAL_BIN
    assert os.path.exists(binary), "%s does not exist (run make)" % binary
    e = dict(os.environ)
    e.pop("CORRAL_DIR", None)
    e.update(env or {})
    return subprocess.run([binary] + list(args), env=e, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def send_in_background(sock, chunks):
    """Write `chunks` on a thread, ignoring a peer that hangs up early.

    Used for oversized bodies: the daemon may answer and close before the
    whole body is written."""
    result = {}

    def run():
        try:
            for c in chunks:
                sock.sendall(c)
            result["sent"] = True
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError) as e:
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result

"""
Shared helpers for crmgate's end-to-end tests. Python 3.11 standard library only.

Each test file builds a Suite, registers test functions with @suite.test and
calls suite.main(). A test usually opens `with suite.stack() as (sim, gw):`,
which starts a fresh crmsim (recording into the test's own temporary
directory) and a crmgate in front of it, both on 127.0.0.1 with ephemeral
ports, and on exit stops both with SIGTERM, asserting exit status 0 and
stderr free of sanitizer reports and of `crmgate[error]` lines.

start_sim(args=[...]) passes more options to crmsim (--fault, --tls-cert/--tls-key...; a TLS simulator's url
is https://localhost:PORT); a gateway whose configuration has tls: {cert, key} is found by its
"listening on https://" line (gw.scheme, gw.base https://localhost:PORT) and reached with curl(..., cacert=CA);
metrics(gw) reads the admin listener's /-/metrics.

Environment (set by ctest; the defaults let a file run directly):
  CRMGATE_BIN, CRMSIM_BIN   the binaries (default: <source>/build/...)
  CRMGATE_SOURCE_DIR        the source tree (default: two levels above this file)
  CRMGATE_TESTDATA          JSONTestSuite and naughty-strings (default: <source>/../shared/testdata)
  CRMGATE_SANITIZE          "1" for ASan+UBSan builds: sanitizer options are set, timeouts are tripled
  CRMGATE_E2E_KEEP          "1" keeps the temporary directories for inspection

Output: one "ok N - name" / "not ok N - name" / "ok N - name # SKIP why" line
per test (details as "# " comments), then the closing line "N passed, M failed"
(", K skipped" when any). Exit status: 0 all passed, 1 any failed, 77 all skipped.
"""
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CRMGATE_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
SOURCE_DIR = os.path.abspath(SOURCE_DIR)
# absolute, as some tests run crmgate in another working directory
CRMGATE_BIN = os.path.abspath(os.environ.get("CRMGATE_BIN") or os.path.join(SOURCE_DIR, "build", "crmgate"))
CRMSIM_BIN = os.path.abspath(os.environ.get("CRMSIM_BIN") or os.path.join(SOURCE_DIR, "build", "crmsim"))
TESTDATA = os.path.abspath(os.environ.get("CRMGATE_TESTDATA") or
                           os.path.join(os.path.dirname(SOURCE_DIR), "shared", "testdata"))
SANITIZE = os.environ.get("CRMGATE_SANITIZE", "") in ("1", "ON", "on", "TRUE", "true")
KEEP = os.environ.get("CRMGATE_E2E_KEEP", "") == "1"

# The ASan+UBSan build is about three times slower: every wait is scaled.
SLOW = 3.0 if SANITIZE else 1.0
RULES_DIR = os.path.join(SOURCE_DIR, "rules")
SHIPPED_CONFIG = os.path.join(SOURCE_DIR, "conf", "crmgate.yaml")

API = "/crmRestApi/resources/11.13.18.05"
INTERACTIONS = API + "/interactions"
# Oracle's documented example of creating an interaction.
EXAMPLE = b'{"ChannelTypeCd":"ORA_SVC_WEB"}'
JSON_CT = "Content-Type: application/json"

# crmsim frees everything at exit, so its leak checker stays on in sanitizer builds (crmgate's comes later).
SIM_LEAK_CHECK = True
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer")
GATEWAY_ERROR_MARKER = "crmgate[error]"


class Failure(AssertionError):
    pass


class Skip(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def eq(actual, expected, what):
    if actual != expected:
        raise Failure("%s: expected %r, got %r" % (what, expected, actual))


def timeout(seconds):
    """A wait bound, scaled for sanitizer builds."""
    return seconds * SLOW


def note(msg):
    for line in str(msg).splitlines() or [""]:
        print("# " + line)
    sys.stdout.flush()


def sanitizer_env(leaks=False):
    env = dict(os.environ)
    if SANITIZE:
        env["ASAN_OPTIONS"] = "detect_leaks=%d:abort_on_error=1" % (1 if leaks else 0)
        env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


def log_problems(text, allow_errors=False):
    """Sanitizer reports, and crmgate[error] lines unless allowed, found in a process's stderr."""
    problems = []
    for marker in SANITIZER_MARKERS:
        if marker in text:
            problems.append("sanitizer report (%s)" % marker)
    if not allow_errors:
        for line in text.splitlines():
            if GATEWAY_ERROR_MARKER in line:
                problems.append("error line: " + line.strip())
    return problems


def tail(text, lines=40):
    parts = text.splitlines()
    return "\n".join(parts[-lines:])


# ---- processes -------------------------------------------------------------


def import_h2():
    """Debian's python3-h2, also from an interpreter other than Debian's (the library is pure Python)."""
    try:
        import h2.connection  # noqa: F401
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import h2.connection  # noqa: F401
        except ImportError:
            return None
    import h2.config
    import h2.connection
    import h2.events
    return h2


class Proc:
    """A child process whose stdout and stderr go to files in workdir (never a pipe that could fill up)."""

    def __init__(self, name, argv, workdir, env=None, cwd=None):
        self.name = name
        self.argv = list(argv)
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd)
        self.pid = self.popen.pid
        self.stopped = False

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.popen.poll() is None

    def wait_for(self, pattern, seconds):
        """Polls stderr until the regex matches; fails with the stderr if the process exits or time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout(seconds)
        while True:
            m = regex.search(self.stderr())
            if m:
                return m
            if not self.alive():
                fail("%s exited with status %s before logging /%s/; stderr:\n%s"
                     % (self.name, self.popen.returncode, pattern, tail(self.stderr())))
            if time.monotonic() > deadline:
                self.kill()
                fail("%s did not log /%s/ within %.1f s; stderr:\n%s"
                     % (self.name, pattern, timeout(seconds), tail(self.stderr())))
            time.sleep(0.01)

    def kill(self):
        if self.alive():
            self.popen.kill()
            self.popen.wait(timeout=10)
        self.stopped = True

    def stop(self, expect_status=0, seconds=10):
        """SIGTERM, wait (bounded), SIGKILL if needed; asserts the exit status of a clean stop."""
        if self.stopped:
            return self.popen.returncode
        self.stopped = True
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout(seconds))
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
                fail("%s (pid %d) did not exit within %.1f s of SIGTERM; killed. stderr:\n%s"
                     % (self.name, self.pid, timeout(seconds), tail(self.stderr())))
        status = self.popen.returncode
        if expect_status is not None and status != expect_status:
            fail("%s exited with status %s after SIGTERM, expected %s; stderr:\n%s"
                 % (self.name, status, expect_status, tail(self.stderr())))
        return status


class Record:
    """One request as crmsim recorded it."""

    def __init__(self, meta, body):
        self.seq = meta["seq"]
        self.method = meta["method"]
        self.path = meta["path"]
        self.headers = [(h[0], h[1]) for h in meta["headers"]]
        self.body_length = meta["body_length"]
        self.body = body

    def header(self, name):
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name):
        name = name.lower()
        return [v for (n, v) in self.headers if n.lower() == name]

    def __repr__(self):
        return "<Record %d %s %s %d bytes>" % (self.seq, self.method, self.path, self.body_length)


class Sim:
    def __init__(self, workdir, name="crmsim", args=()):
        """args: more crmsim options (e.g. --fault MODE, --tls-cert F --tls-key F --tls-max-version 1.2)."""
        self.record_dir = os.path.join(workdir, name + "-records")
        os.makedirs(self.record_dir)
        self.proc = Proc(name, [CRMSIM_BIN, "--listen", "127.0.0.1:0", "--record", self.record_dir] + list(args),
                         workdir, env=sanitizer_env(leaks=SIM_LEAK_CHECK))
        m = self.proc.wait_for(r"crmsim: listening on 127\.0\.0\.1:(\d+)( \(tls\))?", 10)
        self.port = int(m.group(1))
        self.tls = m.group(2) is not None
        # a TLS simulator is addressed by the name its test certificates carry
        self.url = ("https://localhost:%d" if self.tls else "http://127.0.0.1:%d") % self.port
        self.allow_errors = False

    def _recorded_seqs(self):
        seqs = []
        for name in os.listdir(self.record_dir):
            m = re.fullmatch(r"(\d{6})\.json", name)
            if m:
                seqs.append(int(m.group(1)))
        return sorted(seqs)

    def _load(self, seq):
        with open(os.path.join(self.record_dir, "%06d.json" % seq), "rb") as f:
            meta = json.loads(f.read())
        with open(os.path.join(self.record_dir, "%06d.body" % seq), "rb") as f:
            body = f.read()
        check(meta["seq"] == seq, "crmsim record %06d.json says seq %r" % (seq, meta["seq"]))
        check(meta["body_length"] == len(body), "crmsim record %06d: body_length %d but the .body has %d bytes"
              % (seq, meta["body_length"], len(body)))
        return Record(meta, body)

    def records(self):
        """Every fully recorded request (the .json appears after its .body), in order."""
        return [self._load(seq) for seq in self._recorded_seqs()]

    def count(self):
        return len(self._recorded_seqs())

    def mark(self):
        """The number of requests recorded so far: pass it to since() later."""
        return self.count()

    def since(self, mark):
        """The requests recorded after mark() returned `mark`."""
        return [self._load(seq) for seq in self._recorded_seqs()[mark:]]

    def expect_nothing_since(self, mark, what):
        new = self.since(mark)
        check(not new, "%s: the simulator recorded %d request(s) that must never have arrived: %s"
              % (what, len(new), ", ".join("%s %s (%d bytes)" % (r.method, r.path, r.body_length) for r in new)))

    def expect_one_since(self, mark, what):
        new = self.since(mark)
        check(len(new) == 1, "%s: expected the simulator to record exactly 1 request, it recorded %d: %r"
              % (what, len(new), new))
        return new[0]

    def stop(self):
        self.proc.stop(0)
        text = self.proc.stderr()
        problems = log_problems(text, allow_errors=True)
        # a request the simulator failed to record would make "nothing arrived" checks vacuous
        problems += ["error line: " + line.strip() for line in text.splitlines() if "crmsim: cannot" in line]
        check(not problems, "crmsim stderr: %s\n%s" % ("; ".join(problems), tail(text)))


class Gateway:
    def __init__(self, workdir, upstream=None, config=None, args=(), admin=True, threads=2, rules=RULES_DIR,
                 name="crmgate", cwd=SOURCE_DIR, allow_errors=False):
        """upstream: a port number or URL. config: YAML text for -c (command-line overrides still apply)."""
        argv = [CRMGATE_BIN]
        if config is not None:
            self.config_path = os.path.join(workdir, name + ".yaml")
            with open(self.config_path, "w") as f:
                f.write(config)
            argv += ["-c", self.config_path]
        argv += ["--listen", "127.0.0.1:0", "--threads", str(threads)]
        if upstream is not None:
            argv += ["--upstream", upstream if isinstance(upstream, str) else "http://127.0.0.1:%d" % upstream]
        if rules is not None:
            argv += ["--rules", rules]
        argv += ["--admin", "127.0.0.1:0" if admin else "off"]
        argv += list(args)
        self.allow_errors = allow_errors
        self.proc = Proc(name, argv, workdir, env=sanitizer_env(leaks=True), cwd=cwd)  # the daemon exits leak-free
        m = self.proc.wait_for(r"crmgate\[info\]: listening on (https?)://127\.0\.0\.1:(\d+)", 10)
        self.scheme = m.group(1)  # "https" when the configuration has tls: {cert, key}
        self.port = int(m.group(2))
        self.admin_port = None
        if admin:
            m = self.proc.wait_for(r"crmgate\[info\]: admin listening on http://127\.0\.0\.1:(\d+)", 10)
            self.admin_port = int(m.group(1))
        # an https listener is addressed by the name its test certificate carries (localhost)
        self.base = ("https://localhost:%d" if self.scheme == "https" else "http://127.0.0.1:%d") % self.port

    def url(self, path=INTERACTIONS):
        return self.base + path

    def admin_url(self, path="/-/healthz"):
        check(self.admin_port is not None, "the admin listener is off")
        return "http://127.0.0.1:%d%s" % (self.admin_port, path)

    def stop(self, expect_status=0):
        self.proc.stop(expect_status)
        problems = log_problems(self.proc.stderr(), allow_errors=self.allow_errors)
        check(not problems, "crmgate stderr: %s\n%s" % ("; ".join(problems), tail(self.proc.stderr())))


def run_cli(args, stdin=None, cwd=SOURCE_DIR, seconds=20):
    """Runs crmgate to completion (e.g. -t, validate, --version); returns CompletedProcess with text output."""
    try:
        cp = subprocess.run([CRMGATE_BIN] + list(args), input=stdin, capture_output=True, cwd=cwd,
                            env=sanitizer_env(leaks=True), timeout=timeout(seconds))
    except subprocess.TimeoutExpired:
        fail("crmgate %s did not finish within %.1f s" % (" ".join(args), timeout(seconds)))
    cp.stdout_text = cp.stdout.decode("utf-8", "replace")
    cp.stderr_text = cp.stderr.decode("utf-8", "replace")
    problems = [p for p in log_problems(cp.stderr_text, allow_errors=True)]
    check(not problems, "crmgate %s: %s\n%s" % (" ".join(args), "; ".join(problems), tail(cp.stderr_text)))
    return cp


# ---- clients ---------------------------------------------------------------


class Response:
    def __init__(self, status, version, headers, body, rc, stderr):
        self.status = status
        self.version = version  # "1.1" or "2"
        self.headers = headers  # [(lower-case name, value)] in order
        self.body = body
        self.rc = rc
        self.stderr = stderr  # curl's diagnostics (its trace with verbose=True)

    def header(self, name):
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name):
        name = name.lower()
        return [v for (n, v) in self.headers if n == name]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            fail("response body is not JSON (%s): %r" % (e, self.body[:300]))

    def describe(self):
        return "HTTP/%s %s %s\n%s" % (self.version, self.status, self.headers, self.body[:600])


def _parse_header_file(raw):
    """The last response block of curl -D output (interim 1xx answers come first)."""
    text = raw.decode("iso-8859-1")
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    check(blocks, "curl wrote no response headers")
    lines = blocks[-1].splitlines()
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers


def curl(url, method=None, headers=(), data=None, data_file=None, http2=False, extra=(), seconds=30, verbose=False,
         expect_rc=0, cacert=None):
    """
    One curl request. data: bytes sent with --data-binary @file (byte-exact); headers: "Name: value" strings
    (curl's "Name:" removes a header it would add). Returns a Response; fails if curl's exit code is not
    expect_rc (None: any). For https:// URLs, cacert is the CA file to trust and http2 means HTTP/2 by ALPN.
    """
    with tempfile.TemporaryDirectory(prefix="crmgate-curl-") as tmp:
        body_path = os.path.join(tmp, "body")
        head_path = os.path.join(tmp, "headers")
        argv = ["curl", "-sS", "--max-time", str(timeout(seconds)), "-o", body_path, "-D", head_path,
                "-w", "%{http_code} %{http_version}"]
        if url.startswith("https:"):
            argv.append("--http2" if http2 else "--http1.1")
        else:
            argv.append("--http2-prior-knowledge" if http2 else "--http1.1")
        if cacert is not None:
            argv += ["--cacert", cacert]
        if verbose:
            argv.append("-v")
        if method is not None:
            argv += ["-X", method]
        for h in headers:
            argv += ["-H", h]
        if data is not None:
            data_file = os.path.join(tmp, "data")
            with open(data_file, "wb") as f:
                f.write(data)
        if data_file is not None:
            argv += ["--data-binary", "@" + data_file]
        argv += list(extra)
        argv.append(url)
        try:
            cp = subprocess.run(argv, capture_output=True, timeout=timeout(seconds) + 10)
        except subprocess.TimeoutExpired:
            fail("curl %s did not finish within %.1f s" % (url, timeout(seconds) + 10))
        stderr = cp.stderr.decode("utf-8", "replace")
        if expect_rc is not None and cp.returncode != expect_rc:
            fail("curl exited with %d (expected %d) for %s %s:\n%s"
                 % (cp.returncode, expect_rc, method or "", url, tail(stderr)))
        status, version, headers_out, body = 0, "", [], b""
        if os.path.exists(head_path) and os.path.getsize(head_path) > 0:
            _, headers_out = _parse_header_file(open(head_path, "rb").read())
        if os.path.exists(body_path):
            body = open(body_path, "rb").read()
        w = cp.stdout.decode().split()
        if len(w) == 2:
            status, version = int(w[0]), w[1]
        return Response(status, version, headers_out, body, cp.returncode, stderr)


def run_curl(argv, seconds=30):
    """curl with arbitrary arguments (e.g. several URLs with --next); returns CompletedProcess with text output."""
    full = ["curl", "--max-time", str(timeout(seconds))] + list(argv)
    try:
        cp = subprocess.run(full, capture_output=True, timeout=timeout(seconds) + 10)
    except subprocess.TimeoutExpired:
        fail("curl %s did not finish in time" % " ".join(argv))
    cp.stdout_text = cp.stdout.decode("utf-8", "replace")
    cp.stderr_text = cp.stderr.decode("utf-8", "replace")
    return cp


def post(gw, body, path=INTERACTIONS, headers=(JSON_CT,), **kw):
    return curl(gw.url(path), method="POST", headers=list(headers), data=body, **kw)


class Http1:
    """A persistent HTTP/1.1 connection (http.client) for bulk requests; reconnects if the server closed it."""

    def __init__(self, port, seconds=15):
        self.port = port
        self.seconds = timeout(seconds)
        self.conn = None
        self.reconnects = -1

    def request(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.seconds)
                self.reconnects += 1
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, resp.getheaders(), data
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as e:
                self.close()
                if attempt == 2:
                    raise Failure("%s %s: connection failed twice: %r" % (method, path, e))
            except socket.timeout:
                self.close()
                raise Failure("%s %s: no answer within %.1f s" % (method, path, self.seconds))

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def metrics(gw):
    """The admin listener's /-/metrics as {'name{labels}': value} (Prometheus text format; comments skipped)."""
    status, body = http_get(gw.admin_port, "/-/metrics")
    check(status == 200, "GET /-/metrics answered %d: %r" % (status, body[:200]))
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            fail("malformed metrics line: %r" % line)
    return out


def metric_deltas(before, after, names):
    """{name: after - before} for the given series (a series missing from a snapshot counts as 0)."""
    return {n: after.get(n, 0.0) - before.get(n, 0.0) for n in names}


def http_get(port, path, seconds=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout(seconds))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class TcpCounter:
    """A loopback TCP relay that counts the connections made through it (e.g. crmgate's upstream connections)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.lock = threading.Lock()
        self.sockets = []
        self.closed = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += 1
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.closed = True
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass


# ---- assertions shared by the test files -------------------------------------

TEXT_LINE = re.compile(r"^(CRMGATE-[A-Z0-9-]+) (\S+): (.+)$")


def assert_error_response(resp, status, what=""):
    """A response crmgate answered itself: status, X-Request-ID, a Content-Length that matches the body."""
    prefix = (what + ": ") if what else ""
    check(resp.rc == 0, "%scurl failed (exit %d): %s" % (prefix, resp.rc, tail(resp.stderr)))
    check(resp.status == status, "%sexpected status %d, got %s\n%s" % (prefix, status, resp.status, resp.describe()))
    ids = resp.header_all("x-request-id")
    check(len(ids) == 1 and ids[0], "%sexpected one X-Request-ID on the error response, got %r" % (prefix, ids))
    lengths = resp.header_all("content-length")
    check(len(lengths) == 1, "%sexpected one Content-Length, got %r\n%s" % (prefix, lengths, resp.describe()))
    check(int(lengths[0]) == len(resp.body),
          "%sContent-Length %s but the body has %d bytes" % (prefix, lengths[0], len(resp.body)))
    check(resp.header("server") == "crmgate" or resp.header("server") is None,
          "%sunexpected Server header %r" % (prefix, resp.header("server")))


def text_violations(resp):
    """[(code, pointer, detail)] of a text/plain rejection; every line must have the form CODE POINTER: detail."""
    ct = resp.header("content-type") or ""
    check(ct.startswith("text/plain"), "expected a text/plain error, got Content-Type %r\n%s" % (ct, resp.describe()))
    out = []
    check(resp.body.endswith(b"\n"), "the text error does not end with a newline: %r" % resp.body[-80:])
    for line in resp.text.splitlines():
        m = TEXT_LINE.match(line)
        check(m is not None, "text error line is not 'CODE POINTER: detail': %r" % line)
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


def oracle_violations(resp, status=400):
    """[(code, pointer, detail)] of an application/vnd.oracle.adf.error+json rejection, checking its shape."""
    ct = resp.header("content-type") or ""
    check(ct.split(";")[0].strip() == "application/vnd.oracle.adf.error+json",
          "expected Oracle's error media type, got %r\n%s" % (ct, resp.describe()))
    doc = resp.json()
    check(isinstance(doc, dict), "the error document is not an object: %r" % doc)
    check(isinstance(doc.get("title"), str) and doc["title"], "title missing: %r" % doc)
    check(doc.get("status") == str(status), "status must be the STRING %r, got %r" % (str(status), doc.get("status")))
    details = doc.get("o:errorDetails")
    check(isinstance(details, list) and details, "o:errorDetails must be a non-empty list: %r" % doc)
    out = []
    for d in details:
        check(isinstance(d, dict) and set(d) >= {"detail", "o:errorCode", "o:errorPath"},
              "o:errorDetails item lacks detail/o:errorCode/o:errorPath: %r" % d)
        check(isinstance(d["detail"], str) and d["detail"], "empty detail: %r" % d)
        out.append((d["o:errorCode"], d["o:errorPath"], d["detail"]))
    return out


def problem_violations(resp, status=400):
    """[(code, pointer, detail, limit)] of an application/problem+json rejection, checking its shape."""
    ct = resp.header("content-type") or ""
    check(ct.split(";")[0].strip() == "application/problem+json",
          "expected application/problem+json, got %r\n%s" % (ct, resp.describe()))
    doc = resp.json()
    check(doc.get("status") == status and isinstance(doc.get("status"), int),
          "status must be the NUMBER %d, got %r" % (status, doc.get("status")))
    check(isinstance(doc.get("title"), str) and doc["title"], "title missing: %r" % doc)
    check(doc.get("instance") == resp.header("x-request-id"),
          "instance %r is not the request id %r" % (doc.get("instance"), resp.header("x-request-id")))
    errors = doc.get("errors")
    check(isinstance(errors, list) and errors, "errors must be a non-empty list: %r" % doc)
    out = []
    for e in errors:
        check(isinstance(e, dict) and {"pointer", "code", "detail"} <= set(e), "errors item lacks pointer/code/detail: %r" % e)
        out.append((e["code"], e["pointer"], e["detail"], e.get("limit")))
    return out


# ---- the runner --------------------------------------------------------------


class Suite:
    def __init__(self, name):
        self.name = name
        self.tests = []
        self.root = tempfile.mkdtemp(prefix="crmgate-e2e-%s-" % name)
        self.current_dir = self.root
        self.live = []  # processes started by the running test and not stopped yet
        self.started = {}  # process names used by the running test
        self.skip_all_reason = None

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def skip_all(self, reason):
        """Every test of the file is skipped (exit 77)."""
        self.skip_all_reason = reason

    # processes, cleaned up after each test even when it failed

    def workdir(self):
        return self.current_dir

    def _unique(self, name):
        """crmsim, crmsim-2, ...: several processes of one test keep separate logs and records."""
        n = self.started.get(name, 0) + 1
        self.started[name] = n
        return name if n == 1 else "%s-%d" % (name, n)

    def start_sim(self, name="crmsim", args=()):
        sim = Sim(self.current_dir, self._unique(name), args=args)
        self.live.append(sim)
        return sim

    def start_gateway(self, upstream=None, name="crmgate", **kw):
        gw = Gateway(self.current_dir, upstream=upstream, name=self._unique(name), **kw)
        self.live.append(gw)
        return gw

    def stop(self, thing, expect_status=0):
        """Stops a Sim or Gateway now, asserting a clean exit and clean stderr."""
        if thing in self.live:
            self.live.remove(thing)
        if isinstance(thing, Gateway):
            thing.stop(expect_status)
        else:
            thing.stop()

    @contextlib.contextmanager
    def stack(self, config=None, **gateway_kw):
        """A fresh crmsim and a crmgate in front of it; both stopped (exit 0, clean logs) at the end."""
        sim = self.start_sim()
        gw = self.start_gateway(sim.port, config=config, **gateway_kw)
        yield sim, gw
        self.stop(gw)
        self.stop(sim)

    def _cleanup(self):
        problems = []
        for thing in reversed(self.live):
            try:
                if isinstance(thing, Gateway):
                    thing.stop(0)
                else:
                    thing.stop()
            except Exception as e:  # report every one, not just the first
                problems.append(str(e))
        self.live = []
        return problems

    def main(self):
        passed = failed = skipped = 0
        started = time.monotonic()
        print("TAP version 13")
        print("1..%d" % len(self.tests))
        note("%s: crmgate=%s crmsim=%s sanitize=%s" % (self.name, CRMGATE_BIN, CRMSIM_BIN, SANITIZE))
        if self.skip_all_reason is None:
            for path in (CRMGATE_BIN, CRMSIM_BIN):
                if not os.access(path, os.X_OK):
                    print("Bail out! %s is not an executable; build it first" % path)
                    print("0 passed, 1 failed")
                    sys.exit(1)
        for i, fn in enumerate(self.tests, 1):
            name = fn.__name__
            if self.skip_all_reason is not None:
                print("ok %d - %s # SKIP %s" % (i, name, self.skip_all_reason))
                skipped += 1
                continue
            self.current_dir = os.path.join(self.root, "%02d-%s" % (i, name))
            os.makedirs(self.current_dir)
            self.started = {}
            t0 = time.monotonic()
            error = None
            skip_reason = None
            try:
                fn()
            except Skip as e:
                skip_reason = str(e)
            except Exception:
                error = traceback.format_exc()
            cleanup_problems = self._cleanup()
            if cleanup_problems and error is None:
                error = "\n".join(cleanup_problems)
            elif cleanup_problems:
                error += "\nwhile cleaning up:\n" + "\n".join(cleanup_problems)
            dt = time.monotonic() - t0
            if error is not None:
                failed += 1
                print("not ok %d - %s (%.2f s)" % (i, name, dt))
                note(error.rstrip())
                note("process logs: " + self.current_dir)
            elif skip_reason is not None:
                skipped += 1
                print("ok %d - %s # SKIP %s" % (i, name, skip_reason))
            else:
                passed += 1
                print("ok %d - %s (%.2f s)" % (i, name, dt))
            sys.stdout.flush()
        note("%s: %.1f s" % (self.name, time.monotonic() - started))
        if failed == 0 and not KEEP:
            shutil.rmtree(self.root, ignore_errors=True)
        elif failed:
            note("kept " + self.root)
        summary = "%d passed, %d failed" % (passed, failed)
        if skipped:
            summary += ", %d skipped" % skipped
        print(summary)
        sys.stdout.flush()
        if failed:
            sys.exit(1)
        if skipped and not passed:
            sys.exit(77)
        sys.exit(0)

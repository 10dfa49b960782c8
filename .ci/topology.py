"""Shared helpers for the multi-process checks: .ci/e2e.py, .ci/faults.py and scripts/chaos.py.

A `Topology` is one production-like deployment on this machine: its own PostgreSQL database
(created through an admin URL and dropped at the end), its own `redis-server` on a free port (so
it can be stopped, flushed or restarted), its own test SMTP server (.ci/smtp_server.py), the
`server` binary and, on demand, `worker` processes. Every process it starts is stopped by
`close()`; use it in a try/finally.

Also here: HTTP helpers (`register`, `confirm`, `request`), a paced registration load
(`Load`), readers for the SMTP server's maildir (`MailIndex`, `maildir_messages`) and its
attempts log (`read_attempts`), `psql`, and a private PostgreSQL cluster (`PrivatePostgres`).
"""

import concurrent.futures
import datetime
import email
import email.policy
import glob
import http.client as httplib
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
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SMTP_SERVER = os.path.join(HERE, "smtp_server.py")
LINK = re.compile(r"http://127\.0\.0\.1:(\d+)/confirm/[A-Za-z0-9_.\-]+")
STREAM = "confirm:jobs"  # the Redis stream the server publishes to (crates/queue)

_tag = ["e2e"]


def set_tag(tag):
    """The prefix of every line `log` and `fail` print: `[tag] ...`."""
    _tag[0] = tag


def log(msg):
    print(f"[{_tag[0]}] {msg}", flush=True)


def fail(msg):
    """Prints the failure and raises SystemExit(1) (callers may catch it to go on)."""
    print(f"[{_tag[0]}] FAILED: {msg}", flush=True)
    raise SystemExit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    fail(f"timed out after {timeout}s waiting for {what}")


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


class Proc:
    """A child process with its output in a log file under `logdir`."""

    def __init__(self, name, cmd, env, logdir):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}-{int(time.time() * 1000)}.log")
        self.env = env
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.p.pid

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if not self.log.closed:
            self.log.close()
        return self.p.returncode

    def alive(self):
        return self.p.poll() is None

    def tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


# --- HTTP -------------------------------------------------------------------------------------

def request(port, method, path, body=None, timeout=30, cookie=None, headers=None, source=None):
    """(status, headers as a lower-case dict, body text). `headers`: extra request headers;
    `source`: the loopback address to send from (a distinct client IP, e.g. 127.0.0.7)."""
    c = httplib.HTTPConnection("127.0.0.1", port, timeout=timeout,
                               source_address=(source, 0) if source else None)
    extra = headers or {}
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        headers.update(extra)
        if cookie:
            headers["Cookie"] = cookie
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        got = {}
        for k, v in r.getheaders():
            k = k.lower()
            # Several Set-Cookie headers (the flash and the pending address) are all kept.
            got[k] = f"{got[k]}\n{v}" if k == "set-cookie" and k in got else v
        return r.status, got, text
    finally:
        c.close()


def http(port, method, path, body=None):
    status, headers, _ = request(port, method, path, body)
    return status, headers.get("set-cookie", "")


_csrf = {}


def csrf(port):
    """(cookie, token) from the home page, as a browser gets them: the CSRF cookie and the form's
    hidden token. Cached per port; both stay valid across server restarts (same SECRET_KEY)."""
    if port not in _csrf:
        status, headers, body = request(port, "GET", "/")
        cookie = re.search(r"(csrf=[A-Za-z0-9_-]+)", headers.get("set-cookie", ""))
        token = re.search(r'name="csrf_token" value="([^"]+)"', body)
        if status != 200 or not cookie or not token:
            fail(f"home page answered {status} without a CSRF cookie and token")
        _csrf[port] = (cookie.group(1), token.group(1))
    return _csrf[port]


def post_form(port, path, address, timeout=30, headers=None):
    """A form post with the CSRF cookie and token, as the browser sends it. The address is
    remembered for `log_leaks`."""
    remember(addresses=[address])
    cookie, token = csrf(port)
    body = urllib.parse.urlencode({"email": address, "csrf_token": token})
    return request(port, "POST", path, body, timeout=timeout, cookie=cookie, headers=headers)


def post_registration(port, address, timeout=30, headers=None):
    return post_form(port, "/", address, timeout=timeout, headers=headers)


def register(port, address, headers=None):
    """Registers `address` (303 with the `registered` flash, or fails); returns the request id
    the server answered with (its `X-Request-Id`)."""
    status, headers, _ = post_registration(port, address, headers=headers)
    cookie = headers.get("set-cookie", "")
    if status != 303 or "flash=registered" not in cookie:
        fail(f"registration answered {status} {cookie!r}")
    return headers.get("x-request-id")


def confirm(port, link):
    """Opens an emailed link as a person does: the page (GET, which changes nothing), then its
    "Confirm my account" button (a POST with the site's CSRF cookie and token)."""
    remember(links=[link])
    path = urllib.parse.urlparse(link).path
    status, _, body = request(port, "GET", path)
    if status != 200 or "Confirm my account" not in body:
        fail(f"confirmation page answered {status}")
    cookie, token = csrf(port)
    form = urllib.parse.urlencode({"csrf_token": token})
    status, headers, _ = request(port, "POST", path, form, cookie=cookie)
    flash = headers.get("set-cookie", "")
    if status != 303 or "flash=confirmed" not in flash:
        fail(f"confirmation button answered {status} {flash!r}")


class Load:
    """Registers `addresses` at a steady `rate` per second from a background thread, each request
    on its own pool thread (a slow answer does not slow the pace). Every outcome is recorded in
    `results`: dicts with address, sent (UTC datetime), status (None on a client error),
    retry_after, elapsed (s), registered (303 with the `registered` flash) and error."""

    def __init__(self, port, addresses, rate, timeout=30, threads=64):
        self.port = port
        self.addresses = list(addresses)
        self.rate = rate
        self.timeout = timeout
        self.results = []
        self.lock = threading.Lock()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.done = threading.Event()

    def start(self):
        csrf(self.port)  # fetched once, before the load (and any fault) begins
        self.thread.start()
        return self

    def _one(self, address):
        sent = utc_now()
        t0 = time.monotonic()
        row = {"address": address, "sent": sent, "status": None, "retry_after": None,
               "registered": False, "error": None, "body": ""}
        try:
            status, headers, body = post_registration(self.port, address, self.timeout)
            row.update(status=status, retry_after=headers.get("retry-after"), body=body[:2000],
                       registered=status == 303 and "flash=registered" in headers.get("set-cookie", ""))
        except Exception as e:  # noqa: BLE001 - recorded and judged by the caller
            row["error"] = repr(e)
        row["elapsed"] = time.monotonic() - t0
        with self.lock:
            self.results.append(row)

    def _run(self):
        start = time.monotonic()
        futures = []
        for i, address in enumerate(self.addresses):
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(self.pool.submit(self._one, address))
        concurrent.futures.wait(futures)
        self.pool.shutdown()
        self.done.set()

    def wait(self, timeout=None):
        if not self.done.wait(timeout):
            fail("the registration load did not finish in time")
        return sorted(self.results, key=lambda r: r["sent"])


# --- the SMTP server's maildir and attempts log ------------------------------------------------

def text_of(raw_bytes):
    msg = email.message_from_bytes(raw_bytes, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain",))
    return msg, (part.get_content() if part else "")


class MailIndex:
    """recipient (lower-case) -> list of links, one entry per stored copy; parses each file of
    DIR/new once, so it can be polled cheaply while thousands of messages arrive."""

    def __init__(self, maildir):
        self.new = os.path.join(maildir, "new")
        self.seen = set()
        self.by_recipient = {}

    def scan(self):
        names = os.listdir(self.new) if os.path.isdir(self.new) else []
        for name in names:
            if name in self.seen:
                continue
            self.seen.add(name)
            with open(os.path.join(self.new, name), "rb") as f:
                msg, text = text_of(f.read())
            to = str(msg["To"]).strip().lower()
            links = [m.group(0) for m in LINK.finditer(text)]
            remember(links=links)
            self.by_recipient.setdefault(to, []).append(links[0] if links else None)
        return self.by_recipient

    def copies(self, addresses):
        """address -> number of stored copies (0 when not delivered), for `addresses`."""
        got = self.scan()
        return {a.lower(): len(got.get(a.lower(), [])) for a in addresses}


CODE = re.compile(r"/code instead:\r?\n(\d{6})\r?\n")


def codes_at(maildir):
    """recipient (lower-case) -> the six-digit code of each stored email to it."""
    found = {}
    new = os.path.join(maildir, "new")
    for name in os.listdir(new) if os.path.isdir(new) else []:
        with open(os.path.join(new, name), "rb") as f:
            msg, text = text_of(f.read())
        m = CODE.search(text)
        if m:
            found.setdefault(str(msg["To"]).strip().lower(), []).append(m.group(1))
    return found


def maildir_messages(maildir):
    """recipient -> list of links, from every message the SMTP server accepted."""
    found = {}
    for to, links in MailIndex(maildir).scan().items():
        found[to] = [link for link in links if link]
    return found


def read_attempts(maildir):
    """The SMTP server's attempts.log as dicts: at (UTC datetime), stage (RCPT/DATA), code (int),
    rcpt (lower-case), note."""
    rows = []
    path = os.path.join(maildir, "attempts.log")
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4:
                continue
            at = datetime.datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc)
            rows.append({"at": at, "stage": parts[1], "code": int(parts[2]),
                         "rcpt": parts[3].lower(), "note": " ".join(parts[4:])})
    return rows


def first_accepted(maildir):
    """recipient -> time of its first accepted DATA at the SMTP server."""
    first = {}
    for row in read_attempts(maildir):
        if row["stage"] == "DATA" and row["code"] == 250:
            first.setdefault(row["rcpt"], row["at"])
    return first


def addresses(prefix, n):
    """`n` fresh addresses `prefix-i-tag@example.com` (the tag differs on every call)."""
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{i}-{tag}@example.com" for i in range(n)]


def wait_settled(top, index, addrs, timeout, extra=1.0):
    """Waits until every address has at least one copy and no message is owed any more (all rows
    `sent`), then `extra` seconds for sends still in flight; returns address -> copies."""
    wanted = [a.lower() for a in addrs]

    def done():
        copies = index.copies(wanted)
        if any(v == 0 for v in copies.values()):
            return None
        return top.sql("select count(*) from email_messages where status <> 'sent'") == "0"

    try:
        wait_until(f"{len(wanted)} emails delivered and recorded sent", done, timeout, interval=0.2)
    except SystemExit:
        copies = index.copies(wanted)
        missing = [a for a, v in copies.items() if v == 0]
        states = top.sql("select status, count(*), max(attempts) from email_messages group by status")
        log(f"missing {len(missing)} of {len(wanted)} (e.g. {missing[:3]}); rows by status: {states!r}")
        raise
    time.sleep(extra)
    return index.copies(wanted)


def tally(copies):
    delivered = sum(1 for v in copies.values() if v > 0)
    dupes = sum(v - 1 for v in copies.values() if v > 1)
    return delivered, dupes


# --- PostgreSQL -------------------------------------------------------------------------------

def db_url(admin_url, db):
    return re.sub(r"/[^/?]*(\?|$)", f"/{db}\\1", admin_url, count=1)


def psql(admin_url, db, sql):
    out = subprocess.run(["psql", db_url(admin_url, db), "-Atc", sql], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def pg_bin(name):
    """A PostgreSQL server program (initdb, pg_ctl): the newest /usr/lib/postgresql/*/bin, then
    `pg_config --bindir`, then PATH."""
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if versions:
        return versions[-1]
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                check=True).stdout.strip()
        if os.path.exists(os.path.join(bindir, name)):
            return os.path.join(bindir, name)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = shutil.which(name)
    if not found:
        fail(f"{name} not found (install the PostgreSQL server package)")
    return found


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port, so that a test can stop and restart it
    without touching the shared server. initdb and postgres refuse to run as root, so as root
    they run as the `postgres` OS user (the cluster directory is given to that user)."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="faults-pg-")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([pg_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust",
                   "--no-sync", "-E", "UTF8"])
        self.admin_url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False
        self.start()

    def _run(self, argv):
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{' '.join(argv)}: {r.stdout}{r.stderr}")
        return r

    def start(self):
        opts = (f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                f"-c fsync=off -c max_connections=100")
        self._run([pg_bin("pg_ctl"), "-D", self.data, "-l", self.logfile, "-o", opts, "-w",
                   "-t", "60", "start"])
        self.running = True

    def stop(self, mode="fast"):
        self._run([pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"])
        self.running = False

    def close(self):
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, n=20):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


# --- the topology -----------------------------------------------------------------------------

class Topology:
    """server (+ workers on demand) over a fresh database, a Redis and an SMTP server of its own.

    `env` overrides the settings both binaries get; `smtp_args` are extra arguments for the SMTP
    server; `admin_url` is the PostgreSQL admin URL (default TEST_DATABASE_URL); `redis_tls_dir`
    (a directory made by .ci/make-test-ca) makes the Redis TLS-only, reached as
    rediss://localhost with REDIS_TLS_CA_FILE. `redis_url` uses a Redis started elsewhere (a
    Cluster, a Sentinel set) instead of one of its own. `db_port` sends the binaries' database
    connections through that port on 127.0.0.1 (a PgBouncer in front of the admin URL's server);
    `server migrate` still goes straight to PostgreSQL, as migrations should."""

    def __init__(self, bin_dir, tmp, env=None, smtp_args=(), admin_url=None, db_prefix="e2e",
                 start_server=True, redis_tls_dir=None, redis_url=None, db_port=None):
        self.bin_dir = bin_dir
        self.tmp = tmp
        self.admin = admin_url or os.environ["TEST_DATABASE_URL"]
        self.db = f"{db_prefix}_{uuid.uuid4().hex[:12]}"
        self.redis = self.smtp = self.server = self.worker = None
        self.workers = []  # every worker started, for log tails
        self.servers = []  # every server started, for the log checks
        self.db_created = False
        self.redis_tls_dir = redis_tls_dir
        self.redis_url = redis_url
        self.redis_port = free_port()
        self.smtp_port = free_port()
        self.web_port = free_port()
        self.ops_port = free_port()  # the server's OPS_ADDR: /metrics and the detailed /readyz
        self.maildir = os.path.join(tmp, "maildir")
        try:
            subprocess.run(["psql", self.admin, "-qc", f"CREATE DATABASE {self.db}"], check=True,
                           capture_output=True)
            self.db_created = True
            self.db_url = db_url(self.admin, self.db)
            direct_url = self.db_url
            if db_port is not None:
                self.db_url = re.sub(r"@[^/]*/", f"@127.0.0.1:{db_port}/", self.db_url, count=1)
            self.smtp = Proc("smtp", [sys.executable, SMTP_SERVER, "--host", "127.0.0.1",
                                      "--port", str(self.smtp_port), "--maildir", self.maildir,
                                      *smtp_args], os.environ.copy(), tmp)
            if redis_url is None:
                self.start_redis()
            self.base_env = {
                **os.environ,
                "APP_ENV": "production",
                "SECRET_KEY": "e2e-secret-key-0123456789abcdef0123456789",
                "DATABASE_URL": self.db_url,
                **self._redis_settings(),
                "LISTEN_ADDR": f"127.0.0.1:{self.web_port}",
                "OPS_ADDR": f"127.0.0.1:{self.ops_port}",
                "BASE_URL": f"http://127.0.0.1:{self.web_port}",
                "SWEEP_INTERVAL": "1s",
                "SEND_LEASE": "3s",
                "WORKER_CONCURRENCY": "8",
                # Every registration and link comes from this one client: lift the per-IP limits.
                "RATE_LIMIT_PER_IP": "0",
                "LINK_RATE_LIMIT_PER_IP": "0",
                "RUST_LOG": "info",
                **(env or {}),
            }
            # Only the worker sends; the server keeps its default mailer.
            self.worker_env = {"MAILER": "smtp", "SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}"}
            wait_until("the SMTP server", lambda: self._port_open(self.smtp_port), 20)
            r = subprocess.run([self.bin("server"), "migrate"],
                               env={**self.base_env, "DATABASE_URL": direct_url},
                               capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"server migrate: {r.stdout}{r.stderr}")
            if start_server:
                self.start_server()
        except BaseException:
            self.close()
            raise

    def bin(self, name):
        return os.path.join(self.bin_dir, name)

    @staticmethod
    def _port_open(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def start_server(self, **extra):
        self.server = Proc("server", [self.bin("server")], {**self.base_env, **extra}, self.tmp)
        self.servers.append(self.server)
        wait_until("the server", lambda: self.web_ok(), 60)

    def add_server(self, **extra):
        """Another server process on ports of its own, sharing everything else; returns its
        port. (`self.server` stays the first one.)"""
        port, ops = free_port(), free_port()
        proc = Proc(f"server{len(self.servers) + 1}", [self.bin("server")],
                    {**self.base_env, "LISTEN_ADDR": f"127.0.0.1:{port}", "OPS_ADDR": f"127.0.0.1:{ops}",
                     **extra}, self.tmp)
        self.servers.append(proc)

        def ready():
            if not proc.alive():
                fail(f"{proc.name} exited:\n" + proc.tail())
            try:
                return http(port, "GET", "/readyz")[0] == 200
            except OSError:
                return False
        wait_until(proc.name, ready, 60)
        return port

    def web_ok(self):
        """The server serves its pages: /readyz answers 200 (a server still waiting for its
        database or queue answers /healthz 200 already, but everything else 503)."""
        try:
            return http(self.web_port, "GET", "/readyz")[0] == 200
        except OSError:
            if not self.server.alive():
                fail("server exited:\n" + self.server.tail())
            return False

    def _redis_settings(self):
        if self.redis_url is not None:
            return {"REDIS_URL": self.redis_url}
        if self.redis_tls_dir is None:
            return {"REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}
        return {"REDIS_URL": f"rediss://localhost:{self.redis_port}/0",
                "REDIS_TLS_CA_FILE": os.path.join(self.redis_tls_dir, "ca.pem")}

    def redis_cli(self, *args):
        tls = []
        if self.redis_tls_dir is not None:
            tls = ["--tls", "--cacert", os.path.join(self.redis_tls_dir, "ca.pem"), "-h", "localhost"]
        return subprocess.run(["redis-cli", *tls, "-p", str(self.redis_port), *args],
                              capture_output=True, text=True).stdout.strip()

    def start_redis(self):
        port = ["--port", str(self.redis_port)]
        if self.redis_tls_dir is not None:
            d = self.redis_tls_dir
            port = ["--port", "0", "--tls-port", str(self.redis_port),
                    "--tls-cert-file", os.path.join(d, "localhost.pem"),
                    "--tls-key-file", os.path.join(d, "localhost.key"),
                    "--tls-ca-cert-file", os.path.join(d, "ca.pem"), "--tls-auth-clients", "no"]
        self.redis = Proc("redis", ["redis-server", *port, "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no"], os.environ.copy(), self.tmp)
        wait_until("redis", lambda: self.redis_cli("ping") == "PONG", 20)

    def stop_redis(self, sig=signal.SIGTERM):
        self.redis.stop(sig)

    def start_worker(self, **extra):
        self.worker = Proc("worker", [self.bin("worker")], {**self.base_env, **self.worker_env, **extra},
                           self.tmp)
        self.workers.append(self.worker)
        time.sleep(0.2)
        if not self.worker.alive():
            fail("worker exited at start:\n" + self.worker.tail())
        return self.worker

    def worker_cli(self, *args, timeout=60):
        """Runs `worker ARGS...` to completion with the topology's settings."""
        return subprocess.run([self.bin("worker"), *args], env={**self.base_env, **self.worker_env, "RUST_LOG": "warn"},
                              capture_output=True, text=True, timeout=timeout)

    def sql(self, query):
        return psql(self.admin, self.db, query)

    def counts(self):
        return self.sql("select count(*) filter (where confirmed), count(*) filter (where email_sent), "
                        "count(*) from users")

    def tails(self, n=30):
        out = []
        procs = [self.server] + self.workers[-3:]
        for p in procs:
            if p is not None:
                out.append(f"--- {p.name} (pid {p.pid}) log tail: {p.log_path} ---\n{p.tail(n)}")
        return "\n".join(out)

    def close(self):
        for p in [*self.workers, *self.servers, self.redis, self.smtp]:
            if p is not None:
                p.stop()
        if self.db_created:
            subprocess.run(["psql", self.admin, "-qc", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)"],
                           capture_output=True)
            self.db_created = False


# --- what the logs hold -----------------------------------------------------------------------

_remembered = {"addresses": set(), "tokens": set()}
_remembered_lock = threading.Lock()

# Settings whose values are secrets, and URL settings whose password is one.
SECRET_SETTINGS = ("SECRET_KEY", "SECRET_KEY_FALLBACKS")
URL_SETTINGS = ("DATABASE_URL", "REDIS_URL", "SMTP_URL")


def remember(addresses=(), links=(), secrets=()):
    """Notes addresses posted, confirmation links seen (in emails, or confirmed) and other
    secrets (passwords, session cookies, reset tokens), for `log_leaks`. `post_form`, `confirm`
    and `MailIndex` call it."""
    tokens = [link.split("/confirm/", 1)[1] for link in links if link and "/confirm/" in link]
    tokens += [s for s in secrets if s]
    with _remembered_lock:
        _remembered["addresses"].update(a for a in addresses if a)
        _remembered["tokens"].update(t for t in tokens if t)


def service_procs(tops):
    """Every server and worker process these topologies started."""
    return [p for top in tops for p in [*top.servers, *top.workers]]


def _secrets_of(procs):
    found = set()
    for p in procs:
        env = p.env or {}
        for name in SECRET_SETTINGS:
            found.update(v.strip() for v in env.get(name, "").split(",") if v.strip())
        for name in URL_SETTINGS:
            try:
                password = urllib.parse.urlsplit(env.get(name, "")).password
            except ValueError:
                password = None
            if password:
                found.add(urllib.parse.unquote(password))
    return {s for s in found if len(s) >= 6}


def _mask_address(address):
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else f"{local[:1]}***"


def log_leaks(tops, addresses=(), tokens=(), secrets=(), limit=20):
    """Scans the log file of every server and worker of `tops` for an address (every one posted
    with `post_form`, plus `addresses`; in any case, and its local part alone), a confirmation
    token (every one seen in an email or confirmed, plus `tokens`) or a secret (SECRET_KEY and its
    fallbacks and the URL passwords the processes ran with, plus `secrets`). Returns (the
    offending lines, at most `limit`, masked, as `file:line: text` -- [] when the logs are clean
    --, a summary of what was looked for)."""
    procs = service_procs(tops)
    with _remembered_lock:
        addresses = {a.lower() for a in [*_remembered["addresses"], *addresses]}
        tokens = set(_remembered["tokens"]) | set(tokens)
    secrets = _secrets_of(procs) | set(secrets)
    # (needle as searched, lower-cased search?, replacement)
    needles = []
    for a in addresses:
        needles.append((a, True, _mask_address(a)))
        local = a.partition("@")[0]
        if len(local) >= 6:
            needles.append((local, True, f"{local[:1]}***"))
    needles += [(t, False, "<token>") for t in tokens if len(t) >= 8]
    needles += [(s, False, "<secret>") for s in secrets]
    leaks, lines_read = [], 0
    for p in procs:
        try:
            with open(p.log_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        lines_read += text.count("\n")
        lower = text.lower()
        hits = [n for n in needles if n[0] in (lower if n[1] else text)]
        if not hits:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            bad = [n for n in hits if n[0] in (line.lower() if n[1] else line)]
            if not bad:
                continue
            masked = line
            for needle, fold, replacement in sorted(bad, key=lambda n: -len(n[0])):
                masked = re.sub(re.escape(needle), replacement, masked, flags=re.I if fold else 0)
            leaks.append(f"{os.path.basename(p.log_path)}:{number}: {masked[:400]}")
            if len(leaks) >= limit:
                break
        if len(leaks) >= limit:
            break
    summary = (f"{lines_read} lines of {len(procs)} server/worker logs; {len(addresses)} addresses, "
               f"{len(tokens)} tokens, {len(secrets)} secrets looked for")
    return leaks, summary


def check_logs(tops, **kwargs):
    """`log_leaks`, failing (with the masked lines) if any line holds an address, a token or a
    secret; returns the summary."""
    leaks, summary = log_leaks(tops, **kwargs)
    if leaks:
        fail(f"log lines hold an address, a confirmation token or a secret ({summary}):\n"
             + "\n".join(f"  {line}" for line in leaks))
    log(f"logs clean: {summary}")
    return summary


def json_log_lines(proc):
    """`proc`'s log lines parsed as JSON objects (LOG_FORMAT=json); fails on a line that is not
    one. An unterminated last line (still being written) is left out."""
    import json

    with open(proc.log_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    lines = text.split("\n")
    lines.pop()  # "" after the last newline, or the unterminated line
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except ValueError as e:
            fail(f"{os.path.basename(proc.log_path)}:{number} is not JSON ({e}): {line[:300]!r}")
        if not isinstance(value, dict):
            fail(f"{os.path.basename(proc.log_path)}:{number} is not a JSON object: {line[:300]!r}")
        parsed.append(value)
    return parsed


def json_lines_of_request(lines, request_id, message):
    """The JSON log lines with this message whose span (or a parent span) has this request id."""
    def ids(line):
        spans = [line.get("span") or {}, *(line.get("spans") or [])]
        return {s.get("request_id") for s in spans if isinstance(s, dict)}

    return [line for line in lines
            if (line.get("fields") or {}).get("message") == message and request_id in ids(line)]

#!/usr/bin/env python3
"""The benchmark driver behind bench/run (which installs the tools, builds, and calls this).

Starts the release `server` and `worker` in production configuration on a fresh PostgreSQL
database and a Redis database of their own, runs each load for BENCH_DURATION seconds, measures
the machine's limit for each figure in the same run, and prints and writes BENCHMARKS.md.
Everything it starts (processes, databases, Redis keys) is recorded under --run-dir so that
bench/run's trap can remove it even if this script dies; it also cleans up itself.

Settings (environment):
  BENCH_DURATION            seconds per load (default 20)
  BENCH_CONFIRM_CONNS       connections of the confirmation load (default 32)
  BENCH_E2E_RATE            registrations/s of the end-to-end latency load (default 200)
  BENCH_BACKLOG             owed emails the worker drains (default 20000)
  BENCH_WORKER_CONCURRENCY  WORKER_CONCURRENCY of the workers (default 256, four times the
                            service's default; the backlog is also drained once at the default)
  BENCH_PG                  PostgreSQL server (default postgres://postgres@127.0.0.1:5432)
  BENCH_REDIS               Redis server (default redis://127.0.0.1:6379); a free database
                            number (15 down to 1) is used and only this run's keys are deleted
  BENCH_OUTPUT              where to write the table (default <repo>/BENCHMARKS.md)
  BENCH_SKIP_CRITERION=1    skip `cargo bench -p domain --bench tokens`
  BENCH_ONLY                comma-separated loads to run alone (register, confirm, e2e, drain,
                            drain_default, home): for profiling; prints the raw results, writes no table
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import random
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
DURATION = int(os.environ.get("BENCH_DURATION", "20"))
CONFIRM_CONNS = int(os.environ.get("BENCH_CONFIRM_CONNS", "32"))
E2E_RATE = float(os.environ.get("BENCH_E2E_RATE", "200"))
BACKLOG = int(os.environ.get("BENCH_BACKLOG", "20000"))
WORKER_CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "256"))
PG = urllib.parse.urlparse(os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
REDIS = urllib.parse.urlparse(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379"))
THREADS = 2  # wrk -t2 / pgbench -j2: one per core of the target machine
# Figure 8: users, sent emails and attempts filled in by SQL (each this many).
HISTORY_ROWS = int(os.environ.get("BENCH_HISTORY_ROWS", "2000000"))
# The server's scrape-time gauges are cached this long (web::ops::GAUGES_TTL).
GAUGES_TTL_S = 5.0
OWED = "('queued','sending','retrying')"
# How long the worker may take to send what a registration load owed before it is discarded.
DRAIN_WAIT = float(os.environ.get("BENCH_DRAIN_WAIT", str(max(30, 2 * DURATION))))

# The worker's target, as a share of smtp-source's rate (issue 19 lowered it from 50%: simpler
# code is worth more than the last tenth).
WORKER_TARGET = 0.4

# The original Flask + RQ app on this machine, from issue 7.
ORIGINAL = {
    "register": "~500/s (gunicorn, 4 workers)",
    "confirm": "~800/s",
    "worker": "~22/s (RQ)",
    "rss_worker": "~75 MB per worker process",
    "home10": "~1,000/s",
    "home10k": "~9/s",
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# Bookkeeping of what this run started, for cleanup (here and in bench/run's trap)
# ----------------------------------------------------------------------------------------------


class Registry:
    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.procs: dict[int, subprocess.Popen] = {}
        self.dbs: list[str] = []
        self.redis_db: int | None = None

    def _write(self, name: str, lines) -> None:
        path = os.path.join(self.run_dir, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("".join(f"{line}\n" for line in lines))
        os.replace(path + ".tmp", path)

    def add_proc(self, proc: subprocess.Popen) -> None:
        self.procs[proc.pid] = proc
        self._write("pids", self.procs)

    def drop_proc(self, proc: subprocess.Popen) -> None:
        self.procs.pop(proc.pid, None)
        self._write("pids", self.procs)

    def add_db(self, name: str) -> None:
        self.dbs.append(name)
        self._write("dbs", self.dbs)

    def set_redis(self, db: int) -> None:
        self.redis_db = db
        self._write("redis", [f"redis://{REDIS.hostname}:{REDIS.port or 6379} {db}"])

    def set_redis_keys(self, keys) -> None:
        self._write("redis_keys", sorted(keys))


# ----------------------------------------------------------------------------------------------
# Small clients: psql, Redis (RESP), HTTP
# ----------------------------------------------------------------------------------------------


def psql(db: str, sql: str, timeout: float = 600) -> str:
    cmd = ["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-h", PG.hostname or "127.0.0.1",
           "-p", str(PG.port or 5432), "-U", PG.username or "postgres", "-d", db, "-c", sql]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError(f"psql failed ({sql[:120]}...): {done.stderr.strip()}")
    return done.stdout.strip()


def db_url(db: str) -> str:
    user = PG.username or "postgres"
    auth = f"{user}:{PG.password}@" if PG.password else f"{user}@"
    return f"postgres://{auth}{PG.hostname or '127.0.0.1'}:{PG.port or 5432}/{db}"


class Redis:
    """Just enough RESP for SELECT, DBSIZE, KEYS, TYPE, XRANGE, XADD pipelines and DEL."""

    def __init__(self, db: int = 0) -> None:
        self.sock = socket.create_connection((REDIS.hostname or "127.0.0.1", REDIS.port or 6379))
        self.file = self.sock.makefile("rb")
        if REDIS.password:
            self.cmd("AUTH", *( [REDIS.username] if REDIS.username else []), REDIS.password)
        self.cmd("SELECT", db)

    @staticmethod
    def encode(*args) -> bytes:
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
        return b"".join(parts)

    def read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BenchError(f"Redis error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise BenchError(f"unexpected Redis reply {line!r}")

    def cmd(self, *args):
        self.sock.sendall(self.encode(*args))
        return self.read()

    def pipeline(self, commands, chunk: int = 2000) -> list:
        replies = []
        for i in range(0, len(commands), chunk):
            part = commands[i:i + chunk]
            self.sock.sendall(b"".join(self.encode(*c) for c in part))
            replies.extend(self.read() for _ in part)
        return replies

    def close(self) -> None:
        self.sock.close()


def http_status(url: str, timeout: float = 2) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"nothing listens on port {port} after {timeout}s")


# ----------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------


def vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Harness:
    def __init__(self, args) -> None:
        self.args = args
        self.run_dir = args.run_dir
        self.reg = Registry(self.run_dir)
        self.run_id = secrets.token_hex(3)
        self.db = f"bench_{self.run_id}"
        self.home_db = f"bench_{self.run_id}_home"
        self.secret = secrets.token_hex(32)
        self.results: dict = {"cpu": []}
        self.roles: dict[int, str] = {}  # pid -> role, for the CPU split
        self.server = None
        self.worker = None
        self.worker_hwm: dict[str, int] = {}
        self.server_hwm: dict[str, int] = {}

    # -- processes ---------------------------------------------------------------------------

    def start(self, role: str, argv, env=None, log_name=None, stdout=None) -> subprocess.Popen:
        log_path = os.path.join(self.run_dir, f"{log_name or role}.log")
        logf = open(log_path, "ab")
        proc = subprocess.Popen(argv, env=env, cwd=self.run_dir, stdin=subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else logf, stderr=logf,
                                start_new_session=True)
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.reg.add_proc(proc)
        self.roles[proc.pid] = role
        return proc

    def stop(self, proc, timeout: float = 40) -> None:
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.reg.drop_proc(proc)

    def app_env(self, **extra) -> dict:
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
        env.update({
            "APP_ENV": "production",
            "SECRET_KEY": self.secret,
            "DATABASE_URL": db_url(self.db),
            "REDIS_URL": f"redis://{REDIS.hostname or '127.0.0.1'}:{REDIS.port or 6379}/{self.reg.redis_db}",
            "MAILER": "smtp",
            "SMTP_URL": f"smtp://127.0.0.1:{self.sink_port}",
            "MAIL_FROM": "Confirmation Service <no-reply@example.com>",
            "LISTEN_ADDR": f"127.0.0.1:{self.http_port}",
            "BASE_URL": f"http://127.0.0.1:{self.http_port}",
            # The limits raised, through their documented settings: the per-IP form and link
            # limits (every request of a load generator comes from 127.0.0.1).
            "RATE_LIMIT_PER_IP": "0",
            "LINK_RATE_LIMIT_PER_IP": "0",
            # The confirmation load measures the store's confirm path with one request per
            # link, as before the button page (the tutorial's one-click link).
            "CONFIRM_ON_GET": "true",
        })
        # Raised through its documented setting, like the per-IP limit: on a mail server as
        # fast as smtp-sink, 64 jobs in flight leave it idle while they wait for the database.
        env["WORKER_CONCURRENCY"] = str(WORKER_CONCURRENCY)
        if os.environ.get("BENCH_SMTP_CONNECTIONS"):
            env["SMTP_MAX_CONNECTIONS"] = os.environ["BENCH_SMTP_CONNECTIONS"]
        if os.environ.get("BENCH_RUST_LOG"):
            env["RUST_LOG"] = os.environ["BENCH_RUST_LOG"]
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start_server(self, name: str, **extra) -> None:
        # /metrics is on the server's ops listener (OPS_ADDR), a port of its own per server.
        self.ops_port = free_port()
        extra.setdefault("OPS_ADDR", f"127.0.0.1:{self.ops_port}")
        self.server = self.start("server", [self.bin("server")], self.app_env(**extra), name)
        self.wait_ready(self.server, f"http://127.0.0.1:{self.http_port}/readyz")
        self.server_name = name

    def stop_server(self) -> None:
        if self.server is not None:
            self.server_hwm[self.server_name] = vm_hwm_kb(self.server.pid)
            self.stop(self.server)
            self.server = None

    def start_worker(self, name: str, smtp_port: int, **extra) -> None:
        port = free_port()
        env = self.app_env(SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
                           WORKER_METRICS_ADDR=f"127.0.0.1:{port}", **extra)
        self.worker = self.start("worker", [self.bin("worker")], env, name)
        self.wait_ready(self.worker, f"http://127.0.0.1:{port}/readyz")
        self.worker_name = name

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker_hwm[self.worker_name] = max(vm_hwm_kb(self.worker.pid),
                                                    self.worker_hwm.get(self.worker_name, 0))
            self.stop(self.worker)
            self.worker = None

    def wait_ready(self, proc, url: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"{proc.args[0]} exited with {proc.returncode}; see {proc.log_path}")
            if http_status(url) == 200:
                return
            time.sleep(0.1)
        raise BenchError(f"{url} not ready after {timeout}s; see {proc.log_path}")

    def bin(self, name: str) -> str:
        return os.path.join(self.run_dir, "bin", name)

    # -- measurement helpers -----------------------------------------------------------------

    def checkpoint(self) -> None:
        """Each load starts from a clean WAL state: less noise from a checkpoint mid-load."""
        psql(self.db, "CHECKPOINT")
        time.sleep(0.5)

    def cpu_window(self, label: str, duration: float):
        """Samples CPU time per role from 1 s after now to 1 s before `duration` ends."""
        holder: dict = {}

        def sample():
            lead = 1.0 if duration >= 4 else 0.2
            time.sleep(lead)
            a = cpu_snapshot()
            time.sleep(max(0.5, duration - 2 * lead))
            b = cpu_snapshot()
            holder["split"] = cpu_split(a, b, self.roles)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()

        def finish():
            thread.join()
            split = holder.get("split")
            if split:
                split["load"] = label
                self.results["cpu"].append(split)
            return split

        return finish

    def wrk(self, label: str, conns: int, duration: int, *script_args) -> dict:
        url = f"http://127.0.0.1:{self.http_port}"
        argv = ["wrk", f"-t{THREADS}", f"-c{conns}", f"-d{duration}s", "--timeout", "10s",
                "-s", os.path.join(BENCH_DIR, "wrk.lua"), url, "--", *script_args]
        finish = self.cpu_window(label, duration)
        out_path = os.path.join(self.run_dir, f"wrk-{label}.out")
        with open(out_path, "w", encoding="utf-8") as out:
            proc = self.start("load generator", argv, os.environ.copy(), f"wrk-{label}", stdout=out)
            proc.wait(duration + 60)
            self.reg.drop_proc(proc)
        finish()
        text = open(out_path, encoding="utf-8").read()
        match = re.search(r"^BENCH (\{.*\})$", text, re.M)
        if proc.returncode != 0 or not match:
            raise BenchError(f"wrk failed ({label}): {text[-2000:]}")
        r = json.loads(match.group(1))
        secs = r["duration_us"] / 1e6
        r.update(rate=r["requests"] / secs, seconds=secs, p50_ms=r["p50_us"] / 1000,
                 p99_ms=r["p99_us"] / 1000, conns=conns,
                 errors=r["connect_errors"] + r["read_errors"] + r["write_errors"]
                 + r["status_errors"] + r["timeouts"])
        log(f"{label}: {r['rate']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"{r['errors']} errors")
        if r["errors"]:
            log(f"  wrk errors ({label}): {text[-600:]}")
        return r

    def pgbench(self, label: str, script: str, clients: int, duration: int, *extra) -> dict:
        argv = ["pgbench", "-n", "-f", os.path.join(BENCH_DIR, script), f"-c{clients}",
                f"-j{THREADS}", f"-T{duration}", "-h", PG.hostname or "127.0.0.1",
                "-p", str(PG.port or 5432), "-U", PG.username or "postgres", *extra, self.db]
        finish = self.cpu_window(label, duration)
        out_path = os.path.join(self.run_dir, f"pgbench-{label}.out")
        with open(out_path, "w", encoding="utf-8") as out:
            proc = self.start("load generator", argv, os.environ.copy(), f"pgbench-{label}",
                              stdout=out)
            proc.wait(duration + 60)
            self.reg.drop_proc(proc)
        finish()
        text = open(out_path, encoding="utf-8").read()
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
        lat = re.search(r"latency average = ([\d.]+) ms", text)
        failed = re.search(r"number of failed transactions: (\d+)", text)
        if proc.returncode != 0 or not tps:
            raise BenchError(f"pgbench failed ({label}): {text[-2000:]}"
                             f"{open(proc.log_path, encoding='utf-8').read()[-2000:]}")
        r = {"rate": float(tps.group(1)), "latency_ms": float(lat.group(1)) if lat else None,
             "failed": int(failed.group(1)) if failed else 0, "clients": clients}
        log(f"{label}: {r['rate']:.0f} tps, latency avg {r['latency_ms']} ms")
        return r

    def metric(self, name: str) -> dict:
        """The server's counter `name` by label set, from its /metrics."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/metrics",
                                        timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return {}
        values = {}
        for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M):
            values[m.group(1) or ""] = float(m.group(2))
        return values

    def stuck_transactions(self, after: str) -> int:
        """Connections of the service left inside a transaction once a load is over (checked
        when nothing should be running). A statement run on such a connection is not committed."""
        time.sleep(1)
        n = int(psql(self.db, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                              f"current_database() AND pid <> pg_backend_pid() "
                              "AND state LIKE 'idle in transaction%'"))
        if n:
            log(f"  warning: {n} database connection(s) of the service left idle in a transaction "
                f"after {after}")
        self.results.setdefault("stuck", {})[after] = n
        return n

    def owed(self) -> tuple[int, int]:
        row = psql(self.db, f"SELECT count(*) FILTER (WHERE status IN {OWED}), "
                            "count(*) FILTER (WHERE status = 'dead') FROM email_messages")
        owed, dead = row.split("|")
        return int(owed), int(dead)

    def wait_drained(self, what: str, timeout: float = 600) -> float:
        start = time.time()
        while True:
            owed, _ = self.owed()
            if owed == 0:
                took = time.time() - start
                if took > 1:
                    log(f"worker finished the emails owed by {what} in {took:.1f}s")
                return took
            if time.time() - start > timeout:
                raise BenchError(f"{owed} emails still owed {timeout}s after {what}")
            time.sleep(0.25)

    # -- setup -------------------------------------------------------------------------------

    def setup(self) -> None:
        # Redis: a database number nobody uses (empty), so every key in it is ours.
        probe = Redis(0)
        chosen = None
        for n in range(15, 0, -1):
            probe.cmd("SELECT", n)
            if probe.cmd("DBSIZE") == 0:
                chosen = n
                break
        probe.close()
        if chosen is None:
            raise BenchError("no empty Redis database (1-15) to run in")
        self.reg.set_redis(chosen)
        log(f"Redis database {chosen}; PostgreSQL database {self.db}")

        self.reg.add_db(self.db)
        psql("postgres", f'CREATE DATABASE "{self.db}"')
        self.sink_port = free_port()
        self.e2e_port = free_port()
        self.http_port = free_port()

        # smtp-sink: the fast sink (-c: a running count of messages on stdout).
        self.sink_out = os.path.join(self.run_dir, "smtp-sink.out")
        self.sink = self.start("sink", ["smtp-sink", "-u", "nobody", "-c",
                                        f"127.0.0.1:{self.sink_port}", "1024"],
                               os.environ.copy(), "smtp-sink", stdout=open(self.sink_out, "w"))
        wait_port(self.sink_port)
        # The timestamping sink for the end-to-end latency.
        self.arrivals = os.path.join(self.run_dir, "arrivals.txt")
        self.e2e_sink = self.start("sink", [sys.executable, os.path.join(BENCH_DIR, "e2e.py"),
                                            "sink", "--port", str(self.e2e_port),
                                            "--out", self.arrivals],
                                   os.environ.copy(), "e2e-sink")
        wait_port(self.e2e_port)

        done = subprocess.run([self.bin("server"), "migrate"], env=self.app_env(),
                              cwd=self.run_dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"server migrate failed: {done.stderr[-2000:]}")
        with open(os.path.join(BENCH_DIR, "schema.sql"), encoding="utf-8") as f:
            psql(self.db, f.read())
        self.check_bench_users_shape()

        self.start_server("server")
        self.csrf_cookie, self.csrf_token = self.get_csrf()

        # One registration before any worker runs: proves the CSRF pair works, and shows the
        # queue's stream key and job format (used to enqueue the backlog like the server does).
        status = self.post_register(f"probe-{self.run_id}@example.com")
        if status != 303:
            raise BenchError(f"probe registration answered {status}, expected 303")
        r = Redis(self.reg.redis_db)
        streams = [k for k in r.cmd("KEYS", "*") if r.cmd("TYPE", k) == "stream"]
        if len(streams) != 1:
            raise BenchError(f"expected one Redis stream after a registration, found {streams}")
        self.stream = streams[0]
        entry = r.cmd("XRANGE", self.stream, "-", "+", "COUNT", 1)[0]
        fields = entry[1]
        self.job_field = None
        for name, value in zip(fields[::2], fields[1::2]):
            try:
                job = json.loads(value)
            except ValueError:
                continue
            if isinstance(job, dict) and "message_id" in job:
                self.job_field, self.job_template = name, job
        if self.job_field is None:
            raise BenchError(f"cannot read the job format from {fields}")
        self.job_template.pop("request_id", None)  # as the sweeper publishes: no request id
        self.reg.set_redis_keys(r.cmd("KEYS", "*"))
        r.close()
        self.message_kind = psql(self.db, "SELECT kind FROM email_messages LIMIT 1")

        self.start_worker("worker (registrations, confirmations)", self.sink_port)
        self.wait_drained("the probe registration", 30)

    def check_bench_users_shape(self) -> None:
        q = ("SELECT string_agg(column_name || ' ' || data_type || ' ' || "
             "coalesce(character_maximum_length::text, '') || ' ' || is_nullable || ' ' || "
             "coalesce(column_default, '') || ' ' || is_identity || ' ' || "
             "coalesce(identity_generation, ''), ', ' "
             "ORDER BY ordinal_position) FROM information_schema.columns "
             "WHERE table_schema = 'public' AND table_name = '{}'")
        users, bench = psql(self.db, q.format("users")), psql(self.db, q.format("bench_users"))
        if users != bench:
            raise BenchError(f"bench_users does not have the shape of users:\n  users: {users}\n"
                             f"  bench_users: {bench}\nupdate bench/schema.sql")
        idx = ("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
               "WHERE c.relname = '{}' AND i.indisunique")
        if psql(self.db, idx.format("users")) != psql(self.db, idx.format("bench_users")):
            raise BenchError("bench_users does not have the unique indexes of users")

    def get_csrf(self) -> tuple[str, str]:
        jar = os.path.join(self.run_dir, "cookies.txt")
        html = subprocess.run(["curl", "-sf", "-c", jar, f"http://127.0.0.1:{self.http_port}/"],
                              capture_output=True, text=True, check=True).stdout
        token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        cookie = None
        for line in open(jar, encoding="utf-8"):
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 7 and parts[5] == "csrf":
                cookie = parts[6]
        if not token or not cookie:
            raise BenchError("GET / gave no CSRF token or cookie")
        return cookie, token.group(1)

    def post_register(self, address: str) -> int:
        done = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-b",
             f"csrf={self.csrf_cookie}", "--data-urlencode", f"csrf_token={self.csrf_token}",
             "--data-urlencode", f"email={address}", "--data-urlencode", "website=",
             f"http://127.0.0.1:{self.http_port}/"],
            capture_output=True, text=True, check=False)
        return int(done.stdout or 0)

    # -- 1. registrations ------------------------------------------------------------------------

    def registrations(self) -> None:
        # The worker does not run during these loads: on this 2-core machine it would take the
        # CPU the registrations are measured on (delivery is figure 3, measured on its own). The
        # jobs wait in Redis, and the worker, started after each load, delivers them. A third
        # load at 32 connections with the worker delivering meanwhile is reported for reference.
        worker_name = self.worker_name
        for conns, with_worker in ((8, False), (32, False), (32, True)):
            if with_worker:
                if self.worker is None:
                    self.start_worker(worker_name, self.sink_port)
            else:
                self.stop_worker()
            self.checkpoint()
            label = f"register-c{conns}" + ("-worker" if with_worker else "")
            prefix = f"r{self.run_id}c{conns}{'w' if with_worker else ''}"
            r = self.wrk(label, conns, DURATION, "register", prefix,
                         self.csrf_cookie, self.csrf_token)
            stored = int(psql(self.db, f"SELECT count(*) FROM users "
                                       f"WHERE email_key LIKE '{prefix}-%'"))
            msgs = int(psql(self.db, "SELECT count(*) FROM email_messages m JOIN users u "
                                     f"ON u.id = m.user_id WHERE u.email_key LIKE '{prefix}-%'"))
            r["stored_users"], r["stored_messages"] = stored, msgs
            if stored < r["requests"] or msgs != stored:
                log(f"  warning: {r['requests']} responses but {stored} users, {msgs} messages")
            if self.worker is None:
                self.start_worker(worker_name, self.sink_port)
            r.update(self.settle_registrations(conns))
            self.stuck_transactions(f"registrations at {conns} connections")
            if with_worker:
                self.results[f"register_c{conns}_worker"] = r
                continue
            self.results[f"register_c{conns}"] = r
            self.checkpoint()
            self.results[f"pg_insert_c{conns}"] = self.pgbench(
                f"pgbench-insert-c{conns}", "insert.sql", conns, DURATION)

    def settle_registrations(self, conns: int) -> dict:
        """Lets the worker send what a registration load owed, for at most DRAIN_WAIT seconds;
        whatever is still owed then is discarded (rows and queue), so that the next load starts
        with an idle worker. The worker's own rate is measured by the backlog load."""
        owed_at_end, _ = self.owed()
        start = time.time()
        owed = owed_at_end
        while owed and time.time() - start < DRAIN_WAIT:
            time.sleep(0.5)
            owed, _ = self.owed()
        waited = time.time() - start
        if owed == 0:
            if waited > 1:
                log(f"worker finished the emails owed by registrations at {conns} connections "
                    f"in {waited:.1f}s")
            return {"owed_at_end": owed_at_end, "drain_s": waited, "discarded": 0}
        name = self.worker_name
        self.stop_worker()
        owed, _ = self.owed()
        psql(self.db, f"DELETE FROM email_messages WHERE status IN {OWED}")
        r = Redis(self.reg.redis_db)
        r.cmd("DEL", self.stream)
        r.close()
        log(f"  {owed} emails still owed {waited:.0f}s after registrations at {conns} connections "
            f"(worker {(owed_at_end - owed) / waited:.0f}/s meanwhile): discarded")
        self.start_worker(name, self.sink_port)
        return {"owed_at_end": owed_at_end, "drain_s": waited, "discarded": owed}

    # -- 2. confirmations ------------------------------------------------------------------------

    def confirmations(self) -> None:
        rows = int(psql(self.db, "SELECT count(*) FROM bench_users"))
        if rows < 1000:
            psql(self.db, "INSERT INTO bench_users (email, email_key, registered_on, mailbox_key) "
                          "SELECT 'pgb-' || g || '@example.com', 'pgb-' || g || '@example.com', now(), "
                          "'pgb-' || g || '@example.com' FROM generate_series(1, 100000) g")
        psql(self.db, "VACUUM ANALYZE bench_users")
        maxid = int(psql(self.db, "SELECT max(id) FROM bench_users"))
        self.checkpoint()
        limit = self.pgbench(f"pgbench-update-c{CONFIRM_CONNS}", "update.sql", CONFIRM_CONNS,
                             DURATION, "-D", f"maxid={maxid}")
        self.results["pg_update"] = limit

        # Enough distinct tokens that the server does not run out. Twice what pgbench's rate
        # would use: the server commits confirmations in batches, so it can confirm faster than
        # one UPDATE per transaction, and on a host with CPU steal pgbench can come out low (a
        # run at 1.3 times ran out: 7,027 confirmations/s against pgbench's 5,219/s).
        count = max(5000, int(limit["rate"] * DURATION * 2))
        prefix = f"c{self.run_id}"
        log(f"creating {count} unconfirmed users and their tokens (Python itsdangerous)")
        psql(self.db, "INSERT INTO users (email, email_key, confirmed, email_sent, registered_on, mailbox_key) "
                      f"SELECT '{prefix}-' || g || '@example.com', '{prefix}-' || g || '@example.com', "
                      f"false, true, now(), '{prefix}-' || g || '@example.com' FROM generate_series(1, {count}) g")
        psql(self.db, "VACUUM ANALYZE users")
        time.sleep(1.1)  # tokens signed strictly after the accounts were registered
        tokens_path = os.path.join(self.run_dir, "tokens.txt")
        make_tokens(self.secret, [f"{prefix}-{i}@example.com" for i in range(1, count + 1)],
                    tokens_path)
        self.checkpoint()
        r = self.wrk(f"confirm-c{CONFIRM_CONNS}", CONFIRM_CONNS, DURATION, "confirm", tokens_path,
                     str(THREADS))
        if r["exhausted"]:
            raise BenchError(f"the confirmation load ran out of tokens ({count})")
        r["outcomes"] = self.metric("confirmations_total")
        r["confirmed"] = int(psql(self.db, "SELECT count(*) FROM users WHERE confirmed "
                                           f"AND email_key LIKE '{prefix}-%'"))
        self.stuck_transactions("confirmations")
        if r["confirmed"] < r["requests"] * 0.99:
            log(f"  warning: {r['requests']} responses but only {r['confirmed']} confirmed; "
                f"server's confirmations_total: {r['outcomes']}")
        self.results["confirm"] = r

    # -- 4. end-to-end latency -----------------------------------------------------------------

    def end_to_end(self) -> None:
        self.stop_worker()
        self.start_worker("worker (end-to-end)", self.e2e_port)
        open(self.arrivals, "w").close()
        prefix = f"e{self.run_id}"
        out = os.path.join(self.run_dir, "e2e-responses.txt")
        self.checkpoint()
        finish = self.cpu_window(f"end-to-end {E2E_RATE:.0f}/s", DURATION)
        load = self.start("load generator", [
            sys.executable, os.path.join(BENCH_DIR, "e2e.py"), "load", "--port",
            str(self.http_port), "--rate", str(E2E_RATE), "--duration", str(DURATION),
            # `=`: a nonce or token may start with "-".
            "--conns", "8", f"--cookie={self.csrf_cookie}", f"--token={self.csrf_token}",
            f"--prefix={prefix}", f"--out={out}"], os.environ.copy(), "e2e-load")
        load.wait(DURATION + 120)
        self.reg.drop_proc(load)
        finish()
        if load.returncode != 0:
            raise BenchError(f"e2e load failed; see {load.log_path}")
        self.wait_drained("the end-to-end load", 900)
        self.stuck_transactions("the end-to-end load")
        time.sleep(0.5)
        responses = {}
        http_ms = []
        bad = 0
        for line in open(out, encoding="utf-8"):
            address, sent, received, status = line.split()
            if status != "303":
                bad += 1
                continue
            responses[address.lower()] = float(received)
            http_ms.append((float(received) - float(sent)) * 1000)
        latencies, sizes = [], []
        for line in open(self.arrivals, encoding="utf-8"):
            at, rcpt, size = line.split()
            sizes.append(int(size))
            if rcpt in responses:
                latencies.append((float(at) - responses.pop(rcpt)) * 1000)
        if not latencies:
            raise BenchError("no email of the end-to-end load reached the sink")
        latencies.sort()
        http_ms.sort()
        self.message_size = int(sorted(sizes)[len(sizes) // 2])
        self.results["e2e"] = {
            "requests": len(http_ms) + bad, "non_303": bad, "delivered": len(latencies),
            "missing": len(responses), "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99),
            "max_ms": latencies[-1], "min_ms": latencies[0],
            "http_p50_ms": pct(http_ms, 50), "http_p99_ms": pct(http_ms, 99),
            "rate": E2E_RATE, "message_bytes": self.message_size,
        }
        e = self.results["e2e"]
        log(f"end-to-end: p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms over {e['delivered']} "
            f"emails ({e['missing']} missing); HTTP p50 {e['http_p50_ms']:.1f} ms")
        self.stop_worker()

    # -- 3. worker backlog and smtp-source -------------------------------------------------------

    def drain_at_default(self) -> None:
        """The backlog again, with the service's default WORKER_CONCURRENCY (no limit run)."""
        self.drain("drain_default", default_worker_concurrency(self.args.repo))

    def drain(self, key: str = "drain", concurrency: int | None = None) -> None:
        """Drains BACKLOG owed emails into smtp-sink with one worker (WORKER_CONCURRENCY
        `concurrency`, else the harness's), results under `key`; the "drain" run then measures
        the limit, smtp-source."""
        concurrency = concurrency or WORKER_CONCURRENCY
        # Owe BACKLOG emails as the server does (user + queued message, then a job on the queue),
        # in bulk, while no worker runs (a partial run can come here with one still running).
        self.stop_worker()
        prefix = f"{'b' if key == 'drain' else 'd'}{self.run_id}"
        ids = psql(self.db, f"""
            WITH u AS (
                INSERT INTO users (email, email_key, confirmed, email_sent, registered_on, mailbox_key)
                SELECT '{prefix}-' || g || '@example.com', '{prefix}-' || g || '@example.com',
                       false, false, now(), '{prefix}-' || g || '@example.com'
                FROM generate_series(1, {BACKLOG}) g
                RETURNING id, email)
            INSERT INTO email_messages (user_id, kind, recipient, status, attempts,
                                        next_attempt_at, created_at, updated_at)
            SELECT id, '{self.message_kind}', email, 'queued', 0, now(), now(), now() FROM u
            RETURNING id""").split()
        ids = [int(i) for i in ids]
        lo, hi = min(ids), max(ids)
        psql(self.db, "VACUUM ANALYZE users")
        psql(self.db, "VACUUM ANALYZE email_messages")
        r = Redis(self.reg.redis_db)
        commands = []
        for message_id in ids:
            job = dict(self.job_template, message_id=message_id)
            commands.append(("XADD", self.stream, "*", self.job_field,
                             json.dumps(job, separators=(",", ":"))))
        r.pipeline(commands)
        depth = r.cmd("XLEN", self.stream)
        r.close()
        log(f"backlog: {len(ids)} owed emails in the database, stream length {depth}")
        sink_before = sink_count(self.sink_out)
        self.checkpoint()

        holder: dict = {}
        start = time.time()
        stop_sampling = threading.Event()

        def sample():
            time.sleep(1.0)
            holder["a"], holder["ta"] = cpu_snapshot(), time.time()
            stop_sampling.wait()

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        self.start_worker("worker (backlog)", self.sink_port, WORKER_CONCURRENCY=concurrency)
        ready = time.time()
        # Progress from the stream's length on one open Redis connection (the worker deletes a
        # job when it acknowledges it, after recording the send). Polling with psql would start
        # a psql (through Debian's Perl wrapper) and a PostgreSQL backend ten times a second,
        # ~10% of this machine's CPU, taken from the load being measured; the worker's /metrics
        # runs database counts. The database is asked only once the stream is empty, and the
        # time is taken when it shows every message sent.
        r = Redis(self.reg.redis_db)
        left = len(ids)
        while left > 0:
            left = int(r.cmd("XLEN", self.stream))
            if left > 0 and time.time() - start > 900:
                raise BenchError(f"backlog: {left} of {len(ids)} jobs still queued after 900 s")
            if "a" in holder and "b" not in holder and left < len(ids) * 0.1:
                holder["b"] = cpu_snapshot()
            if left > 0:
                time.sleep(0.05)
        r.close()
        recorded = 0
        while recorded < len(ids):
            recorded = int(psql(self.db, "SELECT count(*) FROM email_messages "
                                         f"WHERE status = 'sent' AND id BETWEEN {lo} AND {hi}"))
            if recorded < len(ids) and time.time() - start > 900:
                raise BenchError(f"backlog: only {recorded} of {len(ids)} recorded as sent")
            if recorded < len(ids):
                time.sleep(0.05)
        end = time.time()
        stop_sampling.set()
        if "a" in holder and "b" in holder:
            split = cpu_split(holder["a"], holder["b"], self.roles)
            split["load"] = ("worker backlog" if key == "drain"
                             else f"worker backlog, concurrency {concurrency}")
            self.results["cpu"].append(split)
        span = float(psql(self.db, "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) "
                                   f"FROM email_messages WHERE id BETWEEN {lo} AND {hi}"))
        dead = int(psql(self.db, "SELECT count(*) FROM email_messages WHERE status <> 'sent' "
                                 f"AND id BETWEEN {lo} AND {hi}"))
        # smtp-sink's running count reaches its file through a buffer: while the worker's
        # connections stay open it can show up to ~66 messages fewer than it received. Give it
        # up to 5 s (with the worker stopped, so its connections close) to catch up.
        self.stop_worker()
        sink_delta = wait_sink_count(self.sink_out, sink_before, len(ids))
        connections = smtp_connections(self.args.repo)
        self.results[key] = {
            "messages": len(ids), "seconds": end - start, "rate": len(ids) / (end - start),
            "startup_s": ready - start, "sent_at_span_s": span,
            "rate_sent_at": len(ids) / span if span > 0 else None, "not_sent": dead,
            "sink_counted": sink_delta, "concurrency": concurrency,
            "connections": connections,
        }
        d = self.results[key]
        log(f"backlog, concurrency {concurrency}: {d['messages']} sent in {d['seconds']:.2f}s = "
            f"{d['rate']:.0f}/s (sent_at span {span:.2f}s; sink counted {sink_delta})")
        if key != "drain":
            return

        # The limit: the same sink, the same number of connections, postfix's own client.
        size = getattr(self, "message_size", 2000)
        argv = ["smtp-source", "-d", "-s", str(connections), "-m", str(BACKLOG), "-l", str(size),
                "-f", "no-reply@example.com", "-t", "limit@example.com",
                f"127.0.0.1:{self.sink_port}"]
        before = sink_count(self.sink_out)
        finish = self.cpu_window("smtp-source", 2)
        t0 = time.time()
        proc = self.start("load generator", argv, os.environ.copy(), "smtp-source")
        proc.wait(900)
        t1 = time.time()
        self.reg.drop_proc(proc)
        finish()
        if proc.returncode != 0:
            raise BenchError(f"smtp-source failed; see {proc.log_path}")
        counted = wait_sink_count(self.sink_out, before, BACKLOG)
        # Both together, read last: the sink's file has caught up with the worker's messages by
        # now (the figures above can each be off by the part still in its buffer).
        self.results["drain"]["sink_counted_both"] = wait_sink_count(
            self.sink_out, sink_before, len(ids) + BACKLOG)
        self.results["smtp_source"] = {"messages": BACKLOG, "seconds": t1 - t0,
                                       "rate": BACKLOG / (t1 - t0), "sessions": connections,
                                       "size": size, "sink_counted": counted}
        log(f"smtp-source -s {connections}: {BACKLOG / (t1 - t0):.0f} messages/s "
            f"({size} bytes each; sink counted {counted})")

    # -- 6. GET / with 10 and 10,000 users -------------------------------------------------------

    def new_database(self, db: str) -> None:
        """Creates and migrates database `db` (removed at the end) and makes it, on a free
        port of its own, the one the next server started uses."""
        self.reg.add_db(db)
        psql("postgres", f'CREATE DATABASE "{db}"')
        self.db, self.http_port = db, free_port()
        done = subprocess.run([self.bin("server"), "migrate"], env=self.app_env(),
                              cwd=self.run_dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"server migrate failed: {done.stderr[-2000:]}")

    def home_page(self) -> None:
        """Two databases (10 and 10,000 users), a server with SHOW_USERS=true on each, and the
        two loads interleaved in four slices (10, 10k, 10, 10k; DURATION/2 each) so that a
        drift of the machine's speed during the run does not land on one side of the ratio."""
        self.stop_server()
        main_db, main_port = self.db, self.http_port
        insert = ("INSERT INTO users (email, email_key, confirmed, email_sent, registered_on, mailbox_key) "
                  "SELECT 'home-' || g || '@example.com', 'home-' || g || '@example.com', "
                  "g % 2 = 0, true, now() - make_interval(secs => {total} - g), 'home-' || g || '@example.com' "
                  "FROM generate_series(1, {total}) g")
        servers = {}
        try:
            for users, db in ((10, self.home_db), (10000, f"{self.home_db}10k")):
                self.new_database(db)
                psql(db, insert.format(total=users))
                psql(db, "VACUUM ANALYZE users")
                name = f"server (SHOW_USERS=true, {users:,} users)"
                self.start_server(name, SHOW_USERS="true")
                servers[users] = (db, self.http_port, self.server, name)
                shown = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{self.http_port}/"],
                                       capture_output=True, text=True, check=True).stdout
                if f"home-{users}@example.com" not in shown:
                    raise BenchError("SHOW_USERS=true but GET / does not list the users")
            slices: dict[int, list] = {10: [], 10000: []}
            half = max(1, DURATION // 2)
            for _ in range(2):
                for users in (10, 10000):
                    self.db, self.http_port, self.server, self.server_name = servers[users]
                    self.checkpoint()
                    slices[users].append(self.wrk(f"home-{users}-users", 8, half, "get"))
            for users, key in ((10, "home_10"), (10000, "home_10k")):
                runs = slices[users]
                requests = sum(r["requests"] for r in runs)
                seconds = sum(r["seconds"] for r in runs)
                self.results[key] = {
                    "rate": requests / seconds, "requests": requests, "seconds": seconds,
                    "slices": [round(r["rate"]) for r in runs],
                    "p50_ms": max(r["p50_ms"] for r in runs),
                    "p99_ms": max(r["p99_ms"] for r in runs),
                    "bytes_per_response": sum(r["bytes"] for r in runs) / requests,
                }
                merge_cpu(self.results["cpu"], f"home-{users}-users")
            log(f"GET /: {self.results['home_10']['rate']:.0f}/s with 10 users, "
                f"{self.results['home_10k']['rate']:.0f}/s with 10,000 "
                f"(slices {self.results['home_10']['slices']} / "
                f"{self.results['home_10k']['slices']})")
        finally:
            for db, port, server, name in servers.values():
                self.server, self.server_name = server, name
                self.stop_server()
            self.db, self.http_port = main_db, main_port

    # -- 8. history: costs that do not grow with it ------------------------------------------------

    def history(self) -> None:
        """Two databases, one empty and one holding HISTORY_ROWS users with as many sent emails
        and attempts (filled by SQL), a server on each (ADMIN_TOKEN, OPS_ADDR) and no worker:
        first /metrics (each scrape after the gauges' 5 s cache), the dashboard's first page, an
        address search and `worker stats` (the whole command, process start included) on each,
        then registrations/s interleaved in four slices as for GET /."""
        self.stop_server()
        self.stop_worker()
        main_db, main_port = self.db, self.http_port
        admin = secrets.token_hex(24)
        self.last_stats_sent = ""
        servers = {}
        fill = (
            "INSERT INTO users (email, email_key, confirmed, email_sent, registered_on, confirmed_on, "
            "mailbox_key) SELECT 'hist-' || g || '@example.com', 'hist-' || g || '@example.com', true, "
            "true, now() - make_interval(secs => {n} - g), now() - make_interval(secs => {n} - g), "
            "'hist-' || g || '@example.com' FROM generate_series(1, {n}) g; "
            "INSERT INTO email_messages (user_id, kind, recipient, status, attempts, next_attempt_at, "
            "created_at, updated_at, sent_at, provider_message_id) SELECT id, 'confirm', email, 'sent', "
            "1, registered_on, registered_on, registered_on, registered_on, '<' || id || '@bench>' "
            "FROM users; "
            "INSERT INTO email_attempts (message_id, attempt, outcome, provider_message_id, finished_at) "
            "SELECT id, 1, 'sent', provider_message_id, sent_at FROM email_messages"
        )
        try:
            for rows, db in ((0, f"{self.home_db}hist0"), (HISTORY_ROWS, f"{self.home_db}hist")):
                self.new_database(db)
                if rows:
                    t0 = time.time()
                    psql(db, fill.format(n=rows), timeout=3600)
                    psql(db, "VACUUM ANALYZE", timeout=3600)
                    log(f"history: {rows:,} users, sent emails and attempts filled in "
                        f"{time.time() - t0:.0f}s")
                name = f"server ({rows:,} rows of history)"
                self.start_server(name, ADMIN_TOKEN=admin)
                servers[rows] = (db, self.http_port, self.server, name, self.ops_port)
            # The reads first, on the history alone: the registration load below leaves its
            # emails owed (no worker runs), and owed rows are counted exactly, as they must be.
            out = {}
            for rows in (0, HISTORY_ROWS):
                db, port, _, _, ops_port = servers[rows]
                self.db = db
                probe = "hist-1@example.com" if rows else "nobody@example.com"
                out[rows] = {
                    "metrics_ms": self.timed_gets(f"http://127.0.0.1:{ops_port}/metrics", 5,
                                                  wait=GAUGES_TTL_S + 0.2),
                    "admin_ms": self.timed_gets(f"http://127.0.0.1:{port}/admin", 20,
                                                token=admin),
                    "search_ms": self.timed_gets(
                        f"http://127.0.0.1:{port}/admin?email={urllib.parse.quote(probe)}", 20,
                        token=admin),
                    "stats_s": self.timed_worker_stats(5),
                    "sent_line": self.last_stats_sent,
                }
            slices: dict[int, list] = {0: [], HISTORY_ROWS: []}
            half = max(1, DURATION // 2)
            for turn in range(2):
                for rows in (0, HISTORY_ROWS):
                    self.db, self.http_port, self.server, self.server_name, _ = servers[rows]
                    self.checkpoint()
                    prefix = f"h{self.run_id}r{rows}t{turn}"
                    slices[rows].append(self.wrk(f"register-history-{rows}", 32, half, "register",
                                                 prefix, *self.get_csrf()))
            for rows in (0, HISTORY_ROWS):
                runs = slices[rows]
                requests = sum(r["requests"] for r in runs)
                seconds = sum(r["seconds"] for r in runs)
                o = out[rows]
                o["register_rate"] = requests / seconds
                o["register_slices"] = [round(r["rate"]) for r in runs]
                log(f"history {rows:,}: {o['register_rate']:.0f} registrations/s "
                    f"{o['register_slices']}, /metrics {o['metrics_ms']['p50']:.1f} ms, /admin "
                    f"{o['admin_ms']['p50']:.1f} ms, search {o['search_ms']['p50']:.1f} ms, "
                    f"worker stats {o['stats_s']['p50']:.2f} s ({o['sent_line']})")
                merge_cpu(self.results["cpu"], f"register-history-{rows}")
            self.results["history"] = {"rows": HISTORY_ROWS, "empty": out[0],
                                       "full": out[HISTORY_ROWS]}
        finally:
            for db, port, server, name, _ in servers.values():
                self.server, self.server_name = server, name
                self.stop_server()
            self.db, self.http_port = main_db, main_port

    def timed_gets(self, url: str, n: int, token: str | None = None, wait: float = 0.0) -> dict:
        """`n` GETs of `url` one after the other (after `wait` seconds each): median and
        worst, in ms. Each must answer 200."""
        times = []
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for _ in range(n):
            if wait:
                time.sleep(wait)
            request = urllib.request.Request(url, headers=headers)
            t0 = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()
                if answer.status != 200:
                    raise BenchError(f"GET {url} answered {answer.status}")
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        return {"p50": pct(times, 50), "max": times[-1], "n": n}

    def timed_worker_stats(self, n: int) -> dict:
        """`worker stats` on the current database, `n` times: median and worst, in seconds."""
        times = []
        env = self.app_env()
        for _ in range(n):
            t0 = time.perf_counter()
            done = subprocess.run([self.bin("worker"), "stats"], env=env, cwd=self.run_dir,
                                  capture_output=True, text=True, check=False, timeout=120)
            times.append(time.perf_counter() - t0)
            if done.returncode != 0:
                raise BenchError(f"worker stats failed: {done.stderr[-1000:]}")
            sent = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
            self.last_stats_sent = (f"sent {sent.get('sent')}, estimate "
                                    f"{sent.get('sent_is_estimate')}")
        times.sort()
        return {"p50": pct(times, 50), "max": times[-1], "n": n}

    # -- 7. token sign / verify -----------------------------------------------------------------

    def token_bench(self) -> None:
        if os.environ.get("BENCH_SKIP_CRITERION") == "1":
            return
        argv = ["cargo", "bench", "-p", "domain", "--bench", "tokens", "--", "--noplot"]
        if DURATION < 10:
            argv += ["--warm-up-time", "1", "--measurement-time", "2"]
        log("cargo bench -p domain --bench tokens")
        done = subprocess.run(argv, cwd=self.args.repo, capture_output=True, text=True,
                              check=False)
        with open(os.path.join(self.run_dir, "criterion.out"), "w", encoding="utf-8") as f:
            f.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise BenchError(f"cargo bench failed: {done.stderr[-2000:]}")
        try:
            self.results["tokens"] = parse_criterion(done.stdout)
        except BenchError:
            self.results["tokens"] = criterion_estimates(self.args.repo)
        self.results["tokens_python"] = python_token_rates()

    # -- all -------------------------------------------------------------------------------------

    def run(self) -> None:
        started = datetime.datetime.now(datetime.timezone.utc)
        self.results["started"] = started
        self.setup()
        only = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
        if only:
            # A partial run for profiling: the chosen loads only, no table (BENCHMARKS.md keeps
            # the last full run).
            steps = {"register": self.registrations, "confirm": self.confirmations,
                     "e2e": self.end_to_end, "drain": self.drain,
                     "drain_default": self.drain_at_default, "home": self.home_page,
                     "history": self.history}
            for name in only:
                if name not in steps:
                    raise BenchError(f"BENCH_ONLY: unknown load {name!r} (one of {', '.join(steps)})")
                steps[name]()
            self.cleanup()
            log("BENCH_ONLY: partial run, BENCHMARKS.md not written")
            print(json.dumps(self.results, default=str, indent=1))
            return
        self.registrations()
        self.confirmations()
        self.end_to_end()
        self.drain()
        self.drain_at_default()
        self.home_page()
        self.history()
        self.results["server_hwm"] = self.server_hwm
        self.results["worker_hwm"] = self.worker_hwm
        self.cleanup()
        self.token_bench()
        self.results["finished"] = datetime.datetime.now(datetime.timezone.utc)
        report(self.results, self.args)

    def cleanup(self) -> None:
        for proc in list(self.reg.procs.values()):
            self.stop(proc, 40)
        for db in list(self.reg.dbs):
            try:
                psql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                self.reg.dbs.remove(db)
                self.reg._write("dbs", self.reg.dbs)
            except BenchError as e:
                log(f"could not drop {db}: {e}")
        if self.reg.redis_db is not None:
            r = Redis(self.reg.redis_db)
            keys = r.cmd("KEYS", "*")
            if keys:
                r.cmd("DEL", *keys)
            r.close()
            self.reg.set_redis_keys([])


# ----------------------------------------------------------------------------------------------
# Helpers: tokens, CPU split, sink counter, criterion
# ----------------------------------------------------------------------------------------------


def _sign_chunk(args) -> list[str]:
    secret, emails = args
    from itsdangerous import URLSafeTimedSerializer
    s = URLSafeTimedSerializer(secret)
    return [s.dumps(e, salt="email-confirm-salt") for e in emails]


def make_tokens(secret: str, emails: list[str], path: str) -> None:
    chunks = [(secret, emails[i:i + 20000]) for i in range(0, len(emails), 20000)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        tokens = [t for part in pool.map(_sign_chunk, chunks) for t in part]
    random.shuffle(tokens)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")


def python_token_rates() -> dict:
    """The original app's codec on this machine (itsdangerous, one core), for reference."""
    from itsdangerous import URLSafeTimedSerializer
    s = URLSafeTimedSerializer("a-long-random-primary-secret-key-0123456789")
    rates = {}
    token = s.dumps("someone@example.com", salt="email-confirm-salt")
    for name, fn in (("sign", lambda: s.dumps("someone@example.com", salt="email-confirm-salt")),
                     ("verify", lambda: s.loads(token, salt="email-confirm-salt", max_age=3600))):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            for _ in range(200):
                fn()
            n += 200
        rates[name] = n / (time.perf_counter() - t0)
    return rates


def cpu_snapshot() -> dict:
    procs = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rp = data.rfind(b")")
        comm = data[data.find(b"(") + 1:rp].decode(errors="replace")
        fields = data[rp + 2:].split()
        # (comm, utime + stime, start time): the start time tells a reused pid apart (kernel
        # workers rename themselves, so the name cannot).
        procs[int(pid)] = (comm, int(fields[11]) + int(fields[12]), fields[19])
    with open("/proc/stat", encoding="utf-8") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return {"procs": procs, "cpu": cpu, "t": time.time()}


def cpu_split(a: dict, b: dict, roles: dict) -> dict:
    tick = os.sysconf("SC_CLK_TCK")
    secs = b["t"] - a["t"]
    groups: dict[str, float] = {}
    for pid, (comm, ticks, started) in b["procs"].items():
        before = a["procs"].get(pid)
        used = ticks - (before[1] if before and before[2] == started else 0)
        if used <= 0:
            continue
        role = roles.get(pid)
        if role is None:
            role = {"postgres": "postgres", "redis-server": "redis"}.get(comm, "other")
        groups[role] = groups.get(role, 0) + used / tick / secs * 100
    da = [y - x for x, y in zip(a["cpu"], b["cpu"])]
    total = sum(da[:8]) or 1
    idle, iowait, steal = da[3], da[4], da[7]
    return {"seconds": secs, "groups": groups,
            "busy_pct": (total - idle - iowait - steal) / total * 100,
            "iowait_pct": iowait / total * 100, "steal_pct": steal / total * 100}


def merge_cpu(splits: list, label: str) -> None:
    """Replaces the CPU samples labelled `label` by their time-weighted average."""
    parts = [x for x in splits if x["load"] == label]
    if len(parts) < 2:
        return
    total = sum(p["seconds"] for p in parts)
    merged = {"load": label, "seconds": total, "groups": {}}
    for key in ("busy_pct", "iowait_pct", "steal_pct"):
        merged[key] = sum(p.get(key, 0) * p["seconds"] for p in parts) / total
    for p in parts:
        for group, value in p["groups"].items():
            merged["groups"][group] = merged["groups"].get(group, 0) + value * p["seconds"] / total
    index = splits.index(parts[0])
    for p in parts:
        splits.remove(p)
    splits.insert(index, merged)


def wait_sink_count(path: str, before: int, expected: int, timeout: float = 5.0) -> int:
    """The sink's count since `before`, read until it reaches `expected` or `timeout` passes."""
    deadline = time.time() + timeout
    while True:
        counted = sink_count(path) - before
        if counted >= expected or time.time() > deadline:
            return counted
        time.sleep(0.1)


def sink_count(path: str) -> int:
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return 0
    counts = re.findall(r"mesg=(\d+)", text)
    return int(counts[-1]) if counts else 0


def configured(repo: str, env_var: str, key: str) -> int:
    """A setting of the service as the benchmark runs it: the BENCH_ override, else the
    default in config/default.toml."""
    if env_var and os.environ.get(env_var):
        return int(os.environ[env_var])
    text = open(os.path.join(repo, "config", "default.toml"), encoding="utf-8").read()
    return int(re.search(rf"^{key}\s*=\s*(\d+)", text, re.M).group(1))


def default_worker_concurrency(repo: str) -> int:
    """The service's default WORKER_CONCURRENCY (config/default.toml)."""
    return configured(repo, "", "worker_concurrency")


def smtp_connections(repo: str) -> int:
    return configured(repo, "BENCH_SMTP_CONNECTIONS", "smtp_max_connections")


UNITS = {"elem/s": 1, "Kelem/s": 1e3, "Melem/s": 1e6, "Gelem/s": 1e9}


def parse_criterion(text: str) -> dict:
    rates = {}
    name = None
    for line in text.splitlines():
        head = re.match(r"^(\S+/\S+)", line)
        if head and not line.startswith(("Benchmarking", "Found", "Gnuplot")):
            name = head.group(1)
        m = re.search(r"thrpt:\s*\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if m and name:
            rates[name] = float(m.group(1)) * UNITS[m.group(2)]
    if not rates:
        raise BenchError("no throughput in the criterion output")
    return rates


def criterion_estimates(repo: str) -> dict:
    """Fallback: criterion's own files (one token per iteration, so tokens/s = 1e9 / ns)."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(repo, "target")
    rates = {}
    for group in ("sign", "verify"):
        base = os.path.join(target, "criterion", group)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            path = os.path.join(base, name, "new", "estimates.json")
            if os.path.exists(path):
                est = json.load(open(path, encoding="utf-8"))
                ns = (est.get("slope") or est["mean"])["point_estimate"]
                rates[f"{group}/{name}"] = 1e9 / ns
    if not rates:
        raise BenchError("no throughput in the criterion output or files")
    return rates


def pct(sorted_values: list, p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def sh(*argv) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
        return (done.stdout or done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_info(repo: str) -> dict:
    cpu = "?"
    for line in sh("lscpu").splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    mem_kb = 0
    for line in open("/proc/meminfo", encoding="utf-8"):
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    redis = Redis(0)
    redis.sock.sendall(Redis.encode("INFO", "server"))
    info = redis.read()
    redis.close()
    redis_version = re.search(r"redis_version:(\S+)", info).group(1)
    os_name = "?"
    if os.path.exists("/etc/os-release"):
        m = re.search(r'^PRETTY_NAME="?([^"\n]+)', open("/etc/os-release").read(), re.M)
        os_name = m.group(1) if m else "?"
    dirty = sh("git", "-C", repo, "--no-optional-locks", "status", "--porcelain",
               "--untracked-files=no")
    try:
        import importlib.metadata as md
        aiosmtpd_v = md.version("aiosmtpd")
        itsd_v = md.version("itsdangerous")
    except Exception:  # noqa: BLE001
        aiosmtpd_v = itsd_v = "?"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gib": mem_kb / 1024 / 1024,
        "os": f"{os_name}, Linux {platform.release()}",
        "rustc": sh("rustc", "-V"),
        "postgres": psql("postgres", "SELECT version()").split(" on ")[0],
        "pg_settings": psql("postgres", "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) "
                                        "FROM pg_settings WHERE name IN ('synchronous_commit', "
                                        "'fsync', 'shared_buffers', 'max_connections', 'wal_level')"),
        "redis": redis_version,
        "wrk": sh("wrk", "-v").splitlines()[0].split(" Copyright")[0],
        "pgbench": sh("pgbench", "--version"),
        "postfix": sh("dpkg-query", "-W", "-f", "${Version}", "postfix"),
        "python": platform.python_version(), "itsdangerous": itsd_v, "aiosmtpd": aiosmtpd_v,
        "commit": sh("git", "-C", repo, "rev-parse", "--short=12", "HEAD")
        + (" + uncommitted changes" if dirty.strip() else ""),
    }


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}/s"


def report(res: dict, args) -> None:
    m = machine_info(args.repo)
    conc = res.get("drain", {}).get("concurrency", "?")
    default_conc = res.get("drain_default", {}).get("concurrency", "?")
    rows = []  # (figure, measured, limit, ratio, target, met, original)

    def ratio_row(fig, value, limit, limit_desc, target_ratio, original="", lost=""):
        ratio = value / limit if limit else float("nan")
        met = "yes" if ratio >= target_ratio else "**no**"
        if lost:
            met = f"**no**: {lost}"
        rows.append((fig, fmt_rate(value), f"{fmt_rate(limit)} ({limit_desc})", f"{ratio:.0%}",
                     f"≥ {target_ratio:.0%} of limit", met, original))

    def bound_row(fig, value, unit, bound, original=""):
        ratio = value / bound
        met = "yes" if value <= bound else "**no**"
        rows.append((fig, f"{value:,.1f} {unit}", f"{bound:g} {unit} (target as bound)",
                     f"{ratio:.2f}×", f"≤ {bound:g} {unit}", met, original))

    for c in (8, 32):
        r, limit = res.get(f"register_c{c}"), res.get(f"pg_insert_c{c}")
        if r and limit:
            lost = ""
            if r["stored_users"] < r["requests"] or r["stored_messages"] != r["stored_users"]:
                lost = (f"{r['requests']:,} answered, {r['stored_users']:,} users and "
                        f"{r['stored_messages']:,} messages stored")
            ratio_row(f"1. registrations/s, {c} connections", r["rate"], limit["rate"],
                      f"pgbench 1-INSERT tx, -c{c} -j{THREADS}", 0.5,
                      ORIGINAL["register"] if c == 32 else "", lost)
            rows.append((f"1. registration latency p50 / p99, {c} conns",
                         f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} ms",
                         f"pgbench avg tx latency {limit['latency_ms']:.2f} ms", "—",
                         "p99 ≤ 20 ms" if c == 32 else "—",
                         ("yes" if r["p99_ms"] <= 20 else "**no**") if c == 32 else "—", ""))
    rw, limit = res.get("register_c32_worker"), res.get("pg_insert_c32")
    if rw and limit:
        rows.append(("1. (reference) registrations/s, 32 conns, worker delivering meanwhile",
                     f"{fmt_rate(rw['rate'])} (p50 / p99 {rw['p50_ms']:.2f} / {rw['p99_ms']:.2f} ms)",
                     f"{fmt_rate(limit['rate'])} (pgbench, as above)",
                     f"{rw['rate'] / limit['rate']:.0%}", "— (no target)", "—", ""))
    if "confirm" in res:
        r, limit = res["confirm"], res["pg_update"]
        lost = ""
        if r["confirmed"] < r["requests"] * 0.99:
            lost = (f"{r['requests']:,} answered, only {r['confirmed']:,} confirmed in the "
                    "database")
        ratio_row(f"2. first-time confirmations/s, {CONFIRM_CONNS} conns", r["rate"], limit["rate"],
                  f"pgbench 1-UPDATE tx, -c{CONFIRM_CONNS} -j{THREADS}", 0.5, ORIGINAL["confirm"],
                  lost)
        rows.append((f"2. confirmation latency p50 / p99, {CONFIRM_CONNS} conns",
                     f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} ms",
                     f"pgbench avg tx latency {limit['latency_ms']:.2f} ms", "—", "—", "—", ""))
    if "drain" in res:
        d, s = res["drain"], res["smtp_source"]
        ratio_row(f"3. worker emails/s, backlog of {d['messages']:,}, 1 worker, concurrency {conc}, "
                  f"{d.get('connections', '?')} SMTP connections",
                  d["rate"], s["rate"], f"smtp-source -s {s['sessions']} -d, {s['size']} B",
                  WORKER_TARGET, ORIGINAL["worker"])
    if "drain_default" in res and "drain" in res:
        d, s = res["drain_default"], res["smtp_source"]
        ratio = d["rate"] / s["rate"] if s["rate"] else float("nan")
        rows.append((f"3. (reference) worker emails/s, the same backlog, concurrency {default_conc} "
                     "(the service's default)", fmt_rate(d["rate"]),
                     f"{fmt_rate(s['rate'])} (smtp-source, as above)", f"{ratio:.0%}",
                     "— (no target)", "—", ""))
    if "e2e" in res:
        e = res["e2e"]
        bound_row(f"4. end-to-end latency p50 at {e['rate']:.0f} reg/s", e["p50_ms"], "ms", 10)
        bound_row(f"4. end-to-end latency p99 at {e['rate']:.0f} reg/s", e["p99_ms"], "ms", 50)
    hwm = res.get("server_hwm", {})
    if hwm:
        name, kb = max(hwm.items(), key=lambda kv: kv[1])
        bound_row("5. server peak RSS (VmHWM), whole run", kb / 1024, "MB", 30)
    whwm = res.get("worker_hwm", {})
    if whwm:
        name, kb = max(whwm.items(), key=lambda kv: kv[1])
        bound_row(f"5. worker peak RSS (VmHWM), {name.split('(')[-1].rstrip(')')}", kb / 1024,
                  "MB", 30, ORIGINAL["rss_worker"])
    if "home_10k" in res:
        h10, h10k = res["home_10"], res["home_10k"]
        rows.append(("6. GET / with 10 users (SHOW_USERS=true), 8 conns", fmt_rate(h10["rate"]),
                     "—", "—", "—", "—", ORIGINAL["home10"]))
        ratio_row("6. GET / with 10,000 users, 8 conns", h10k["rate"], h10["rate"],
                  "GET / with 10 users", 0.8, ORIGINAL["home10k"])
    if "history" in res:
        h = res["history"]
        empty, full, n = h["empty"], h["full"], h["rows"]
        ratio_row(f"8. registrations/s, 32 conns, with {n:,} users and sent emails (and attempts)",
                  full["register_rate"], empty["register_rate"],
                  "the same on an empty database", 0.8)
        bound_row(f"8. GET /metrics after its 5 s cache, {n:,} rows (empty: "
                  f"{empty['metrics_ms']['p50']:.1f} ms)", full["metrics_ms"]["p50"], "ms", 50)
        bound_row(f"8. GET /admin first page, {n:,} rows (empty: {empty['admin_ms']['p50']:.1f} ms)",
                  full["admin_ms"]["p50"], "ms", 100)
        bound_row(f"8. GET /admin address search, {n:,} rows (empty: "
                  f"{empty['search_ms']['p50']:.1f} ms)", full["search_ms"]["p50"], "ms", 100)
        bound_row(f"8. `worker stats` (the whole command), {n:,} rows (empty: "
                  f"{empty['stats_s']['p50']:.2f} s)", full["stats_s"]["p50"], "s", 0.5)
    if "tokens" in res:
        py = res.get("tokens_python", {})
        for name, rate in sorted(res["tokens"].items()):
            ref = py.get("sign" if name.startswith("sign") else "verify")
            rows.append((f"7. token {name} (criterion, 1 core)", fmt_rate(rate),
                         f"{fmt_rate(ref)} (Python itsdangerous 2.2.0, 1 core)" if ref else "—",
                         f"{rate / ref:.1f}×" if ref else "—", "— (no target)", "—", ""))

    command = args.command
    env_prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                          if k.startswith("BENCH_") and k not in ("BENCH_COMMAND_LINE",))
    if env_prefix:
        command = f"{env_prefix} {command}"

    header = ("| figure | measured | limit (same run) | ratio | target | met | Flask original |\n"
              "| --- | --- | --- | --- | --- | --- | --- |\n")
    table = header + "".join("| " + " | ".join(r) + " |\n" for r in rows)

    cpu_rows = ""
    roles = ["server", "worker", "postgres", "redis", "load generator", "sink", "other"]
    for split in res["cpu"]:
        g = split["groups"]
        cpu_rows += (f"| {split['load']} | " + " | ".join(f"{g.get(k, 0):.0f}" for k in roles)
                     + f" | {split['busy_pct']:.0f}% | {split['iowait_pct']:.0f}% "
                     f"| {split.get('steal_pct', 0):.0f}% |\n")
    cpu_table = ("| load | " + " | ".join(roles) + " | machine busy | iowait | steal |\n"
                 "| --- | " + " | ".join("---" for _ in roles) + " | --- | --- | --- |\n"
                 + cpu_rows)

    def per_request_row(label: str, rate: float, g: dict, last: str) -> str:
        """CPU µs per request of each process group; `last` the last column's group."""
        return (f"| {label} | {fmt_rate(rate)} | "
                f"{g.get('server', 0) * 10_000 / rate:.0f} | "
                f"{g.get('postgres', 0) * 10_000 / rate:.0f} | "
                f"{g.get('worker', 0) * 10_000 / rate:.0f} | "
                f"{g.get('redis', 0) * 10_000 / rate:.0f} | "
                f"{g.get(last, 0) * 10_000 / rate:.0f}"
                + (" (sink)" if last == "sink" else "") + " |\n")

    per_request = ""
    for key, label in (("register_c8", "register-c8"), ("register_c32", "register-c32"),
                       ("register_c32_worker", "register-c32-worker"),
                       (f"confirm", f"confirm-c{CONFIRM_CONNS}"),
                       ("home_10", "home-10-users"), ("home_10k", "home-10000-users")):
        split = next((s for s in res["cpu"] if s["load"] == label), None)
        if key in res and split:
            per_request += per_request_row(label, res[key]["rate"], split["groups"],
                                           "load generator")
    # The backlog's CPU samples fall between its first and last send: its rate over that span.
    for key in ("drain", "drain_default"):
        d = res.get(key)
        label = ("worker backlog" if key == "drain"
                 else f"worker backlog, concurrency {d['concurrency']}") if d else ""
        split = next((s for s in res["cpu"] if s["load"] == label), None)
        if d and split and d.get("rate_sent_at"):
            per_request += per_request_row(f"{label} (rate: first to last `sent_at`)",
                                           d["rate_sent_at"], split["groups"], "sink")
    for key, label in (("pg_insert_c8", "pgbench-insert-c8"), ("pg_insert_c32", "pgbench-insert-c32"),
                       ("pg_update", f"pgbench-update-c{CONFIRM_CONNS}")):
        split = next((s for s in res["cpu"] if s["load"] == label), None)
        if key in res and split:
            rate = res[key]["rate"]
            g = split["groups"]
            per_request += (f"| {label} | {fmt_rate(rate)} | — | "
                            f"{g.get('postgres', 0) * 10_000 / rate:.0f} | — | — | "
                            f"{g.get('load generator', 0) * 10_000 / rate:.0f} |\n")

    details = []
    for c, key in ((8, "register_c8"), (32, "register_c32"), (32, "register_c32_worker")):
        r = res.get(key)
        if r:
            details.append(f"registrations at {c} connections"
                           + (" (worker delivering meanwhile)" if key.endswith("worker") else
                              " (worker stopped)")
                           + f": {r['requests']:,} responses in "
                           f"{r['seconds']:.1f} s, {r['errors']} errors, {r['stored_users']:,} users "
                           f"and {r['stored_messages']:,} owed messages committed; "
                           + (f"the worker sent them all {r['drain_s']:.1f} s after the load ended"
                              if not r["discarded"] else
                              f"{r['owed_at_end']:,} emails still owed when the load ended, "
                              f"{r['discarded']:,} still owed {r['drain_s']:.0f} s later "
                              f"(discarded before the next load)"))
    if "confirm" in res:
        r = res["confirm"]
        details.append(f"confirmations: {r['requests']:,} responses, {r['errors']} errors, "
                       f"{r['confirmed']:,} accounts confirmed in the database (each token used "
                       f"once); the server counted confirmations_total {r.get('outcomes')}")
    stuck = {k: v for k, v in res.get("stuck", {}).items() if v}
    if stuck:
        details.append("**service connections left idle in a transaction** once a load was over "
                       "(pg_stat_activity; anything later run on such a connection is never "
                       "committed): " + "; ".join(f"after {k}: {v}" for k, v in stuck.items()))
    if "e2e" in res:
        e = res["e2e"]
        details.append(f"end-to-end: {e['requests']:,} registrations at {e['rate']:.0f}/s over 8 "
                       f"connections, {e['delivered']:,} emails paired with their response, "
                       f"{e['missing']} missing, {e['non_303']} non-303; latency min "
                       f"{e['min_ms']:.1f} ms, max {e['max_ms']:.1f} ms; the HTTP response itself "
                       f"took p50 {e['http_p50_ms']:.2f} / p99 {e['http_p99_ms']:.2f} ms; "
                       f"message size {e['message_bytes']:,} bytes")
    if "drain" in res:
        d = res["drain"]
        s = res["smtp_source"]
        details.append(f"worker backlog: {d['messages']:,} messages in {d['seconds']:.2f} s from "
                       f"starting the worker (ready after {d['startup_s']:.2f} s; first to last "
                       f"`sent_at` {d['sent_at_span_s']:.2f} s = "
                       f"{(d['rate_sent_at'] or 0):,.0f}/s); not sent: {d['not_sent']}; the sink "
                       f"counted {d['sink_counted']:,} when the worker was done. smtp-source: "
                       f"{s['messages']:,} messages in {s['seconds']:.2f} s. The sink counted "
                       f"{d.get('sink_counted_both', 0):,} for the two together, read last "
                       f"(smtp-sink's count reaches its file through a buffer, so a count read "
                       f"while it is busy can be a few dozen short)")
    if "home_10k" in res:
        h10, h10k = res["home_10"], res["home_10k"]
        details.append(f"GET /: with 10 users {h10['requests']:,} responses in {h10['seconds']:.1f} s "
                       f"(slices {h10['slices']}/s), {h10['bytes_per_response']:,.0f} bytes each; "
                       f"with 10,000 users {h10k['requests']:,} in {h10k['seconds']:.1f} s (slices "
                       f"{h10k['slices']}/s), {h10k['bytes_per_response']:,.0f} bytes each (50 "
                       f"users listed)")
    if res.get("server_hwm") or res.get("worker_hwm"):
        parts = [f"{k}: {v / 1024:.1f} MB" for k, v in {**res.get("server_hwm", {}),
                                                         **res.get("worker_hwm", {})}.items()]
        details.append("peak RSS per process (VmHWM): " + "; ".join(parts))

    started = res["started"].strftime("%Y-%m-%d %H:%M UTC")
    took = (res["finished"] - res["started"]).total_seconds()
    body = f"""# Benchmarks

Written by `bench/run` (issue 7); every figure below comes from one run of it. Re-run with the
command shown; the table is regenerated, and the notes after the marker at the end are kept.

## Run

| | |
| --- | --- |
| date | {started} ({took / 60:.1f} min) |
| command | `{command}` |
| load duration | {DURATION} s per load |
| commit | {m['commit']} |
| machine | {m['cpu']}, {m['cores']} cores, {m['ram_gib']:.1f} GiB RAM; {m['os']} |
| rustc | {m['rustc']} |
| PostgreSQL | {m['postgres']} ({m['pg_settings']}) |
| Redis | {m['redis']} |
| wrk | {m['wrk']} |
| pgbench | {m['pgbench']} |
| smtp-sink / smtp-source | postfix {m['postfix']} |
| Python | {m['python']}, itsdangerous {m['itsdangerous']}, aiosmtpd {m['aiosmtpd']} |
| service settings | `APP_ENV=production`, 64-char `SECRET_KEY`, `DATABASE_URL` a fresh PostgreSQL database, `REDIS_URL` a database of its own, `MAILER=smtp` to smtp-sink on 127.0.0.1, `RATE_LIMIT_PER_IP=0`, `WORKER_CONCURRENCY={conc}`, `SMTP_MAX_CONNECTIONS={res.get("drain", {}).get("connections", "?")}`; everything else default (CSRF on, `RUST_LOG=info`) |

## Results

{table}
Ratios: a throughput divided by its limit measured in the same run; a latency or size divided by
its target. "Flask original" is the issue's figure for the tutorial app on this machine.

## Where the CPU goes

CPU time per process group in % of one core (the machine has {m['cores']}), from `/proc/<pid>/stat`
over the middle of each load (1 s trimmed at each end). `postgres` is every PostgreSQL process
of the cluster, `other` everything else on the machine.

{cpu_table}
CPU microseconds per request (or per transaction), from the same samples:

| load | rate | server µs | postgres µs | worker µs | redis µs | load generator µs |
| --- | --- | --- | --- | --- | --- | --- |
{per_request}
## Details

{"".join(f"- {d}." + chr(10) for d in details)}
## Method

1. **Registrations**: `wrk -t{THREADS} -c8` then `-c32`, `POST /` with one CSRF cookie and token
   pair fetched by curl from `GET /`, a unique address per request (`bench/wrk.lua`: thread id +
   counter). The worker is stopped during these two loads: on 2 cores it would take CPU from
   the registrations (delivery is load 3, measured on its own); the jobs wait in Redis. Checked
   afterwards: every response is a user and an owed message in the database. The worker is then
   started and gets {DRAIN_WAIT:.0f} s to send what the load owed; anything still owed after that
   is discarded so that the next load starts with an idle worker. A third load (`-c32`, marked
   "reference") runs with the worker delivering to smtp-sink meanwhile, as when both share one
   small machine. Limit: `pgbench -n -f
   bench/insert.sql -c<same> -j{THREADS}`, one single-row INSERT per transaction into
   `bench_users`, a table with the columns and constraints of `users` (`bench/schema.sql`,
   compared with `users` at start). A registration commits the user and its owed email in one
   transaction, then publishes the job to Redis: more work than the limit's single INSERT.
2. **Confirmations**: unconfirmed users created by SQL, their links signed with Python
   itsdangerous (`URLSafeTimedSerializer(SECRET_KEY).dumps(email, salt="email-confirm-salt")`),
   shuffled, and each used once by `wrk -t{THREADS} -c{CONFIRM_CONNS}` (`GET /confirm/<token>`);
   checked afterwards: as many accounts confirmed as responses. Limit: `pgbench -f
   bench/update.sql -c{CONFIRM_CONNS}`, one single-row UPDATE by primary key per transaction.
3. **Worker**: with no worker running, {BACKLOG:,} users and `queued` messages inserted by SQL
   and their jobs added to the Redis stream as the server publishes them; then one `worker`
   starts, and the time runs from its start until the database shows all of them `sent`.
   Limit: `smtp-source -d -s <SMTP_MAX_CONNECTIONS> -m {BACKLOG} -l <the real email's size>`
   against the same smtp-sink. Every worker of the run has `WORKER_CONCURRENCY={WORKER_CONCURRENCY}`
   (its documented setting; 64 jobs in flight leave a mail server as fast as smtp-sink idle while
   they wait for the database); a second backlog, drained at the service's default, is the
   reference row.
4. **End-to-end**: `bench/e2e.py load` posts {E2E_RATE:.0f} registrations/s (open loop, 8
   keep-alive connections) while the worker delivers to `bench/e2e.py sink`, an aiosmtpd server
   stamping each recipient's arrival; latency = arrival − the registration's HTTP response,
   paired by address.
5. **Peak RSS**: `VmHWM` of each server and worker process, read just before it is stopped (so
   under the loads it served: the first server runs loads 1, 2 and 4; workers: registrations
   and confirmations, end-to-end, backlog); the table shows the largest of each binary.
6. **Home page**: two more databases, with 10 and with 10,000 users, each served by a server
   with `SHOW_USERS=true` (the page lists the newest 50); `wrk -t{THREADS} -c8 GET /` in four
   interleaved slices of {max(1, DURATION // 2)} s (10, 10k, 10, 10k), so that a drift in the
   machine's speed does not fall on one side of the ratio.
7. **Tokens**: `cargo bench -p domain --bench tokens` (criterion; one token per iteration, so
   `thrpt` is tokens/s on one core), next to Python itsdangerous 2.2.0 on the same machine.

Server and worker are the release binaries, started directly (not through cargo). Before each
load PostgreSQL gets a `CHECKPOINT`, so no load starts with a checkpoint pending from the one
before.
"""
    out_path = os.environ.get("BENCH_OUTPUT") or os.path.join(args.repo, "BENCHMARKS.md")
    marker = "<!-- notes: kept by bench/run -->"
    notes = f"\n{marker}\n"
    if os.path.exists(out_path):
        old = open(out_path, encoding="utf-8").read()
        if marker in old:
            notes = "\n" + old[old.index(marker):]
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(body + notes)
    print()
    print(f"## Results ({started}, {DURATION} s per load, `{command}`)\n")
    print(table)
    print(cpu_table)
    print("| load | rate | server µs | postgres µs | worker µs | redis µs | load generator µs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(per_request)
    for d in details:
        print(f"- {d}")
    print(f"\nwritten to {out_path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--command", default="bench/run")
    args = parser.parse_args()
    harness = Harness(args)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # Also SIGINT: a background job of a script starts with it ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def clean() -> None:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        harness.cleanup()

    try:
        harness.run()
    except (BenchError, KeyboardInterrupt, subprocess.SubprocessError) as e:
        log(f"failed: {e}")
        clean()
        sys.exit(1)
    except BaseException:
        clean()
        raise


if __name__ == "__main__":
    main()

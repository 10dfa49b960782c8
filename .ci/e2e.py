#!/usr/bin/env python3
"""End-to-end check of the production topology, with real processes and real services.

`server` and `worker` run as separate processes over PostgreSQL, a Redis of our own (so it can be
restarted), a real SMTP server (.ci/smtp_server.py, aiosmtpd) and moto's SES v2 server. Scenarios:

  smtp     N registrations through POST / reach the SMTP server; every link confirms its user
           (users.confirmed and users.email_sent true for all).
  kill     the worker is SIGKILLed while sending and started again: every email is still
           delivered, duplicates at most the sends in flight at the kill.
  redis    Redis is restarted (empty) under a running worker: it recovers by itself and later
           registrations are delivered.
  ses      the same flow with MAILER=ses against moto: moto records the emails, their links work.

Usage: python3 .ci/e2e.py --bin-dir target/debug [--count 200] [--scenarios smtp,kill,redis,ses]
Needs: TEST_DATABASE_URL (an admin URL of a PostgreSQL server), TEST_SES_ENDPOINT (moto), the
`redis-server` binary, Python packages aiosmtpd and boto3. Exits non-zero on any failure.
"""

import argparse
import email
import email.policy
import http.client as httplib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
LINK = re.compile(r"http://127\.0\.0\.1:(\d+)/confirm/[A-Za-z0-9_.\-]+")


def log(msg):
    print(f"[e2e] {msg}", flush=True)


def fail(msg):
    print(f"[e2e] FAILED: {msg}", flush=True)
    sys.exit(1)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    fail(f"timed out after {timeout}s waiting for {what}")


class Proc:
    def __init__(self, name, cmd, env, logdir):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}-{int(time.time() * 1000)}.log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode

    def alive(self):
        return self.p.poll() is None

    def tail(self, n=30):
        with open(self.log_path) as f:
            return "".join(f.readlines()[-n:])


def http(port, method, path, body=None):
    c = httplib.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, r.getheader("Set-Cookie") or ""


def register(port, address):
    status, cookie = http(port, "POST", "/", urllib.parse.urlencode({"email": address}))
    if status != 303 or "flash=registered" not in cookie:
        fail(f"registration answered {status} {cookie!r}")


def confirm(port, link):
    path = urllib.parse.urlparse(link).path
    status, cookie = http(port, "GET", path)
    if status != 303 or "flash=confirmed" not in cookie:
        fail(f"confirmation link answered {status} {cookie!r}")


def text_of(raw_bytes):
    msg = email.message_from_bytes(raw_bytes, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain",))
    return msg, (part.get_content() if part else "")


def maildir_messages(maildir):
    """recipient -> list of links, from every message the SMTP server accepted."""
    found = {}
    new = os.path.join(maildir, "new")
    for name in os.listdir(new) if os.path.isdir(new) else []:
        with open(os.path.join(new, name), "rb") as f:
            msg, text = text_of(f.read())
        to = str(msg["To"]).strip().lower()
        found.setdefault(to, []).extend(m.group(0) for m in LINK.finditer(text))
    return found


def psql(admin_url, db, sql):
    url = re.sub(r"/[^/?]*(\?|$)", f"/{db}\\1", admin_url, count=1)
    out = subprocess.run(["psql", url, "-Atc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Topology:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.admin = os.environ["TEST_DATABASE_URL"]
        self.db = f"e2e_{uuid.uuid4().hex[:12]}"
        subprocess.run(["psql", self.admin, "-qc", f"CREATE DATABASE {self.db}"], check=True)
        self.db_url = re.sub(r"/[^/?]*(\?|$)", f"/{self.db}\\1", self.admin, count=1)
        self.redis_port = free_port()
        self.smtp_port = free_port()
        self.web_port = free_port()
        self.maildir = os.path.join(tmp, "maildir")
        self.redis = None
        self.smtp = Proc(
            "smtp",
            [sys.executable, os.path.join(HERE, "smtp_server.py"), "--host", "127.0.0.1",
             "--port", str(self.smtp_port), "--maildir", self.maildir],
            os.environ.copy(), tmp)
        self.start_redis()
        self.base_env = {
            **os.environ,
            "APP_ENV": "production",
            "SECRET_KEY": "e2e-secret-key-0123456789abcdef0123456789",
            "DATABASE_URL": self.db_url,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "LISTEN_ADDR": f"127.0.0.1:{self.web_port}",
            "BASE_URL": f"http://127.0.0.1:{self.web_port}",
            "SWEEP_INTERVAL": "1s",
            "SEND_LEASE": "3s",
            "WORKER_CONCURRENCY": "8",
            "RUST_LOG": "info",
        }
        self.bin = lambda name: os.path.join(args.bin_dir, name)
        r = subprocess.run([self.bin("server"), "migrate"], env=self.base_env, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"server migrate: {r.stdout}{r.stderr}")
        self.server = Proc("server", [self.bin("server")], self.base_env, tmp)
        wait_until("the server", lambda: self.web_ok(), 60)
        self.worker = None

    def web_ok(self):
        try:
            return http(self.web_port, "GET", "/healthz")[0] == 200
        except OSError:
            if not self.server.alive():
                fail("server exited:\n" + self.server.tail())
            return False

    def start_redis(self):
        self.redis = Proc("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no"], os.environ.copy(), self.tmp)
        wait_until("redis", lambda: subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG", 20)

    def start_worker(self, **extra):
        env = {**self.base_env, "MAILER": "smtp", "SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}", **extra}
        self.worker = Proc("worker", [self.bin("worker")], env, self.tmp)
        time.sleep(0.2)
        if not self.worker.alive():
            fail("worker exited at start:\n" + self.worker.tail())

    def counts(self):
        return psql(self.admin, self.db,
                    "select count(*) filter (where confirmed), count(*) filter (where email_sent), count(*) from users")

    def close(self):
        for p in (self.worker, self.server, self.redis, self.smtp):
            if p is not None:
                p.stop()
        subprocess.run(["psql", self.admin, "-qc", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)"])


def deliver_and_confirm(top, addresses, expect_max_dupes=0, timeout=120):
    wanted = {a.lower() for a in addresses}

    def arrived():
        got = maildir_messages(top.maildir)
        return got if wanted <= set(got) else None

    got = wait_until(f"{len(wanted)} emails at the SMTP server", arrived, timeout)
    dupes = sum(len(got[a]) - 1 for a in wanted)
    if dupes > expect_max_dupes:
        fail(f"{dupes} duplicate emails (at most {expect_max_dupes} allowed)")
    for a in sorted(wanted):
        confirm(top.web_port, got[a][0])
    return dupes


def scenario_smtp(top, n):
    addresses = [f"smtp-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(n)]
    t0 = time.monotonic()
    for a in addresses:
        register(top.web_port, a)
    log(f"smtp: {n} registrations in {time.monotonic() - t0:.2f}s")
    deliver_and_confirm(top, addresses)
    confirmed, sent, total = map(int, top.counts().split("|"))
    if not (confirmed == sent == total >= n):
        fail(f"users: confirmed={confirmed} email_sent={sent} total={total}")
    log(f"smtp: {n} emails delivered exactly once, {n} links confirmed; users confirmed={confirmed} email_sent={sent}")


def scenario_kill(top, n):
    # `slow` recipients take 250 ms each at the SMTP server, so sends are in flight at the kill.
    addresses = [f"slow-kill-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(n)]
    top.worker.stop(signal.SIGTERM)
    for a in addresses:
        register(top.web_port, a)
    top.start_worker()
    # Kill as soon as some, but not all, have been sent.
    wait_until("the first emails", lambda: len(set(maildir_messages(top.maildir)) & {a.lower() for a in addresses}) >= 20, 60)
    top.worker.stop(signal.SIGKILL)
    before = len(set(maildir_messages(top.maildir)) & {a.lower() for a in addresses})
    log(f"kill: worker SIGKILLed after {before}/{n} emails")
    top.start_worker()
    dupes = deliver_and_confirm(top, addresses, expect_max_dupes=8)
    log(f"kill: all {n} delivered after the restart, {dupes} duplicate(s) (limit: 8 in flight)")


def scenario_redis(top, n):
    first = [f"redis-a-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(n)]
    for a in first:
        register(top.web_port, a)
    deliver_and_confirm(top, first)
    top.redis.stop(signal.SIGKILL)
    log("redis: killed; registering while it is down")
    during = [f"redis-b-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(5)]
    for a in during:
        register(top.web_port, a)
    top.start_redis()
    log("redis: restarted empty")
    after = [f"redis-c-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(n)]
    for a in after:
        register(top.web_port, a)
    deliver_and_confirm(top, during + after, timeout=90)
    if not top.worker.alive():
        fail("worker died during the Redis restart:\n" + top.worker.tail())
    log(f"redis: worker recovered by itself; {len(during)} registered during the outage and {n} after were delivered")


def scenario_ses(top, n):
    import boto3

    endpoint = os.environ["TEST_SES_ENDPOINT"].rstrip("/")
    sender = f"sender-{uuid.uuid4().hex[:6]}@example.com"
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    boto3.client("sesv2", endpoint_url=endpoint, **creds).create_email_identity(EmailIdentity=sender)
    top.worker.stop(signal.SIGTERM)
    top.start_worker(MAILER="ses", SES_REGION="us-east-1", SES_EMAIL_SOURCE=sender,
                     AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    addresses = [f"ses-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(n)]
    for a in addresses:
        register(top.web_port, a)
    wanted = {a.lower() for a in addresses}

    def recorded():
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10) as r:
            data = json.load(r)
        links = {}
        # Walk every recorded message and pick the links per recipient.
        def walk(node):
            if isinstance(node, dict):
                yield node
                for v in node.values():
                    yield from walk(v)
            elif isinstance(node, list):
                for v in node:
                    yield from walk(v)
        for node in walk(data):
            raw = node.get("raw_data") or node.get("body") or ""
            dest = json.dumps(node.get("destinations") or node.get("destination") or "").lower()
            if not isinstance(raw, str):
                continue
            for a in wanted:
                if a in dest or a in raw.lower():
                    m = LINK.search(raw.replace("=\r\n", "").replace("=\n", ""))
                    if m:
                        links.setdefault(a, m.group(0))
        return links if wanted <= set(links) else None

    links = wait_until(f"{n} emails recorded by moto", recorded, 90)
    for a in sorted(wanted):
        confirm(top.web_port, links[a])
    with_id = int(psql(top.admin, top.db,
        "select count(*) from email_messages where status = 'sent' and provider_message_id is not null "
        "and recipient like 'ses-%'"))
    if with_id != n:
        fail(f"{with_id} of {n} SES messages have a provider message id")
    log(f"ses: {n} emails recorded by moto's SES v2, {n} links confirmed, SES message ids recorded")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--scenarios", default="smtp,kill,redis,ses")
    args = ap.parse_args()
    for var in ("TEST_DATABASE_URL", "TEST_SES_ENDPOINT"):
        if not os.environ.get(var):
            fail(f"{var} is not set")
    with tempfile.TemporaryDirectory(prefix="e2e-") as tmp:
        top = Topology(args, tmp)
        try:
            top.start_worker()
            for name in args.scenarios.split(","):
                n = args.count if name in ("smtp", "kill") else max(20, args.count // 10)
                log(f"scenario {name} ({n})")
                globals()[f"scenario_{name}"](top, n)
            code = top.worker.stop(signal.SIGTERM)
            if code != 0:
                fail(f"worker exited {code} on SIGTERM:\n{top.worker.tail()}")
            log("worker stopped on SIGTERM with exit 0")
        except SystemExit:
            for p in (top.server, top.worker):
                if p is not None:
                    print(f"--- {p.name} log tail ---\n{p.tail()}")
            raise
        finally:
            top.close()
    print("e2e: all scenarios passed")


if __name__ == "__main__":
    main()

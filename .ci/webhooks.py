#!/usr/bin/env python3
"""Webhooks end to end: the release binaries in the production topology (PostgreSQL, a Redis of
our own, the test SMTP server, a separate worker) deliver signed events to two in-process HTTP
receivers while faults are injected, and every delivery is checked.

  receivers  A (WEBHOOK_URL's first endpoint) answers 204, or 503 on demand, or is stopped
             (its socket closed: connection refused) and started again on the same port; it
             verifies every request with standardwebhooks holding only the SECOND of the two
             WEBHOOK_SECRET secrets (key rotation). B (the second endpoint) always answers 410
             and verifies with the FIRST secret. Every request is recorded: webhook-id,
             webhook-timestamp, the raw body, the answer, and whether each secret verifies it.
  phases     each with its own registrations (alternately POST / and POST /api/v1/registrations)
             and about half of them confirmed with the emailed token (POST /api/v1/confirmations;
             one per phase through the page's button):
               baseline  no fault; one `reject-` address is refused 550 by the SMTP server, so
                         its email goes dead (email.failed); one unconfirmed address's stop link
                         suppresses its mailbox (email.suppressed, source stop_link);
               outage    A answers 503 for --outage-503 s, then is down (connection refused) for
                         --outage-down s, then back; B must get its events meanwhile;
               kill      A answers slowly (deliveries in flight) and the worker is SIGKILLed
                         mid-run, then a new one started;
               redis     Redis is stopped (SIGTERM) while registrations go on, then started
                         again, empty (as .ci/faults.py b).
             After each fault: the time until everything owed so far is delivered ("drain").
  checks     every request to A verifies with the second secret, to B with the first, and each
             carries a valid signature for both; one webhook-id always carries byte-identical
             bodies (ids stable across retries) and a fresh webhook-timestamp per attempt;
             deduplicated by id, the (type, email) pairs A accepted (2xx) are exactly the
             expected ones -- account.registered for every address, email.sent for every email
             delivered, account.confirmed for each confirmation, email.failed for the dead one
             -- one id each; B got each event exactly once (a second copy only for a delivery
             in flight at the SIGKILL); payloads well-formed (timestamps RFC 3339, data.email,
             message ids and times agreeing with the database); in the database every webhook
             row to A is `sent`, every row to B `cancelled`, none owed, each with its
             webhook_deliveries row; nothing arrives once settled; no address, token or secret
             in the server and worker logs.

Settings as .ci/faults.py (its FAST) plus RETRY_MAX_ATTEMPTS=30 (so the retry budget, about a
minute, outlasts A's outage), WEBHOOK_URL, WEBHOOK_SECRET (two whsec_ secrets made for the run),
WEBHOOK_TIMEOUT=2s and API_KEYS.

Usage: python3 .ci/webhooks.py --bin-dir target/release [--count 40] [--keep]
       python3 .ci/webhooks.py --self-test    (the receivers alone, signed by standardwebhooks)
Needs: TEST_DATABASE_URL, redis-server, psql, aiosmtpd, standardwebhooks (PyPI).
"""

import argparse
import base64
import collections
import datetime
import http.client as httplib
import http.server
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

sys.dont_write_bytecode = True  # no __pycache__ for the shared modules
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api  # noqa: E402 - after the path set-up; its call, token_of and API_KEY
import faults  # noqa: E402 - its FAST settings and seconds()
import hostile  # noqa: E402 - its stop_links
from topology import (  # noqa: E402
    MailIndex, Topology, check_logs, confirm, csrf, fail, free_port, log, register, request, set_tag,
    wait_until,
)

set_tag("webhooks")

try:
    from standardwebhooks.webhooks import Webhook
except ImportError:  # pragma: no cover - reported by main()
    Webhook = None

SETTINGS = {
    **faults.FAST,
    # The webhooks share the email retry policy: with RETRY_MAX_DELAY=4s, 30 attempts take at
    # least ~55 s, longer than A's outage, so no delivery to A goes dead.
    "RETRY_MAX_ATTEMPTS": "30",
    "WEBHOOK_TIMEOUT": "2s",
}
TYPES = {
    "account.registered": ("email", "registered_at"),
    "account.confirmed": ("email", "confirmed_at"),
    "email.sent": ("email", "message_id", "sent_at", "provider_message_id"),
    "email.failed": ("email", "message_id", "failed_at", "error"),
    "email.suppressed": ("email", "source", "suppressed_at"),
}
TIME_FIELDS = {"registered_at", "confirmed_at", "sent_at", "failed_at", "suppressed_at"}
OWED = "('queued', 'sending', 'retrying')"
RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def parse_rfc3339(text):
    """An aware datetime, or None when `text` is not an RFC 3339 date-time with an offset."""
    m = RFC3339.match(text) if isinstance(text, str) else None
    if not m:
        return None
    frac = "." + (m.group(3) or "0")[:6].ljust(6, "0")
    tz = "+00:00" if m.group(4) in "Zz" else m.group(4)
    try:
        return datetime.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{frac}{tz}")
    except ValueError:
        return None


# --- the receivers ---------------------------------------------------------------------------

def read_body(h):
    """The request body, with Content-Length or chunked transfer encoding."""
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(h.rfile.read(size))
            h.rfile.readline()
    n = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(n) if n else b""


class Receiver:
    """A webhook endpoint on 127.0.0.1 (a threaded http.server, HTTP/1.0: one request per
    connection, so stopping it leaves no kept-alive connection behind). Verifies every request
    with standardwebhooks and `secret`, notes which of `all_secrets` verify it, records it, then
    answers `status` (after `delay` seconds)."""

    def __init__(self, name, path, secret, all_secrets, status):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.path = path
        self.webhook = Webhook(secret)
        self.each = [Webhook(s) for s in all_secrets]
        self.status = status
        self.delay = 0.0
        self.records = []
        self.lock = threading.Lock()
        self.server = None

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                receiver._handle(self)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

            def log_message(self, *_):
                pass

        deadline = time.monotonic() + 10
        while True:
            try:
                self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    fail(f"receiver {self.name} cannot listen on port {self.port} again")
                time.sleep(0.1)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self):
        """Closes the listening socket: connections are refused until `start()`."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _handle(self, h):
        body = read_body(h)
        headers = {k.lower(): v for k, v in h.headers.items()}
        rec = {"at": time.monotonic(), "wall": time.time(), "method": h.command, "path": h.path,
               "id": headers.get("webhook-id"), "ts": headers.get("webhook-timestamp"),
               "signature": headers.get("webhook-signature", ""),
               "content_type": headers.get("content-type", ""), "body": body,
               "verified": False, "error": None, "signed_by": [], "doc": None,
               "type": None, "email": None}
        try:
            self.webhook.verify(body, headers, json_parse=False)
            rec["verified"] = True
        except Exception as e:  # noqa: BLE001 - any refusal is a failure, recorded
            rec["error"] = f"{type(e).__name__}: {e}"
        for wh in self.each:
            try:
                wh.verify(body, headers, json_parse=False)
                rec["signed_by"].append(True)
            except Exception:  # noqa: BLE001
                rec["signed_by"].append(False)
        try:
            doc = json.loads(body)
            rec["doc"] = doc
            if isinstance(doc, dict):
                rec["type"] = doc.get("type")
                data = doc.get("data")
                if isinstance(data, dict) and isinstance(data.get("email"), str):
                    rec["email"] = data["email"].lower()
        except ValueError:
            pass
        with self.lock:
            status, delay = self.status, self.delay
            rec["status"] = status
            self.records.append(rec)
        if delay:
            time.sleep(delay)
        try:
            h.send_response(status)
            if status == 204:
                h.end_headers()
            else:
                text = b"" if 200 <= status < 300 else b"no\n"
                h.send_header("Content-Type", "text/plain")
                h.send_header("Content-Length", str(len(text)))
                h.end_headers()
                h.wfile.write(text)
        except OSError:
            pass  # the client gave up (its timeout): recorded anyway

    def set(self, status=None, delay=None):
        with self.lock:
            if status is not None:
                self.status = status
            if delay is not None:
                self.delay = delay

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def events(self, accepted_only=False):
        """(type, email) of the recorded requests (only those answered 2xx if asked)."""
        return {(r["type"], r["email"]) for r in self.snapshot()
                if r["type"] and (not accepted_only or 200 <= r["status"] < 300)}

    def by_id(self):
        out = collections.defaultdict(list)
        for r in self.snapshot():
            out[r["id"]].append(r)
        return out


# --- the flow --------------------------------------------------------------------------------

class Flow:
    def __init__(self, top, a, b, args):
        self.top, self.a, self.b, self.args = top, a, b, args
        self.index = MailIndex(top.maildir)
        self.tag = uuid.uuid4().hex[:6]
        self.registered = {}  # address -> (phase, via)
        self.confirmed = {}  # address -> via
        self.dead = set()  # addresses whose email must go dead
        self.suppressed = set()  # addresses whose mailbox was suppressed through the stop link
        self.drains = {}  # phase -> seconds from the fault's end to everything delivered
        self.notes = {}  # phase -> summary text
        self.kill_at = self.restart_at = None
        self.start_wall = time.time()

    # helpers

    def sql(self, query):
        try:
            return self.top.sql(query)
        except Exception as e:  # noqa: BLE001 - CalledProcessError: show psql's message
            fail(f"SQL failed: {query}\n{getattr(e, 'stderr', '') or e}")

    def endpoint_rows(self, receiver, statuses=OWED):
        return int(self.sql(
            "select count(*) from email_messages m join webhook_deliveries d on d.message_id = m.id "
            f"where m.kind = 'webhook' and d.endpoint like '%:{receiver.port}/%' and m.status in {statuses}"))

    def addresses(self, phase, n):
        return [f"wh-{phase}-{i}-{self.tag}@example.com" for i in range(n)]

    def register(self, phase, address, via):
        if via == "api":
            status, _, doc = api.call(self.top, "POST", "/api/v1/registrations", {"email": address})
            if status != 202 or doc.get("created") is not True:
                fail(f"API registration of {address}: {status} {doc}")
        else:
            register(self.top.web_port, address)
        self.registered[address] = (phase, via)

    def register_all(self, phase, addrs, spread=0.0):
        """Alternately by form and by API; `spread` seconds between registrations."""
        for i, a in enumerate(addrs):
            self.register(phase, a, "form" if i % 2 == 0 else "api")
            if spread:
                time.sleep(spread)

    def links(self, addrs, timeout=90):
        def got():
            found = self.index.scan()
            links = {a: next((x for x in found.get(a, []) if x), None) for a in addrs}
            return links if all(links.values()) else None
        return wait_until(f"the emails of {len(addrs)} addresses", got, timeout, 0.2)

    def confirm_half(self, addrs):
        """Confirms every other address with its emailed token: the first through the page's
        button, the others through POST /api/v1/confirmations."""
        chosen = addrs[::2]
        links = self.links(chosen)
        for i, a in enumerate(chosen):
            if i == 0:
                confirm(self.top.web_port, links[a])
                self.confirmed[a] = "button"
                continue
            status, _, account = api.call(self.top, "POST", "/api/v1/confirmations",
                                          {"token": api.token_of(links[a])})
            if status != 200 or account.get("confirmed") is not True:
                fail(f"API confirmation of {a}: {status} {account}")
            self.confirmed[a] = "api"
        return chosen

    def expected(self):
        """The (type, email) events owed for what has happened so far, and whether every email
        has had its outcome (delivered, or for the dead ones recorded dead)."""
        want = set()
        live = [a for a in self.registered if a not in self.dead]
        copies = self.index.copies(live)
        for a in self.registered:
            want.add(("account.registered", a))
            if a in self.dead:
                want.add(("email.failed", a))
            elif copies[a] > 0:
                want.add(("email.sent", a))
        want.update(("account.confirmed", a) for a in self.confirmed)
        want.update(("email.suppressed", a) for a in self.suppressed)
        return want, all(copies.values())

    def settled(self):
        want, mailed = self.expected()
        if not mailed or not want <= self.a.events(accepted_only=True) or not want <= self.b.events():
            return None
        if self.sql(f"select count(*) from email_messages where status in {OWED}") != "0":
            return None
        return want

    def drain(self, phase, since, timeout=None):
        """Waits until everything owed so far is delivered; records the seconds since `since`."""
        try:
            wait_until(f"the webhooks of phase {phase} delivered", self.settled,
                       timeout or self.args.timeout, 0.25)
        except SystemExit:
            self.diagnose()
            raise
        took = time.monotonic() - since
        self.drains[phase] = took
        return took

    def diagnose(self):
        want, _ = self.expected()
        got_a, got_b = self.a.events(accepted_only=True), self.b.events()
        log(f"missing at A: {len(want - got_a)} {sorted(want - got_a)[:6]}")
        log(f"missing at B: {len(want - got_b)} {sorted(want - got_b)[:6]}")
        log(f"requests: A {len(self.a.snapshot())} for {len(self.a.by_id())} ids, "
            f"B {len(self.b.snapshot())} for {len(self.b.by_id())} ids")
        log("rows by kind/status: " + self.sql(
            "select kind, status, count(*), max(attempts) from email_messages group by 1, 2 order by 1, 2"
        ).replace("\n", "; "))
        log("last errors of owed webhook rows: " + self.sql(
            f"select left(coalesce(last_error, ''), 120) from email_messages where kind = 'webhook' "
            f"and status in {OWED} limit 3").replace("\n", "; "))


# --- the phases ------------------------------------------------------------------------------

def phase_baseline(flow, n):
    """No fault; includes the address whose email goes dead."""
    t0 = time.monotonic()
    dead = f"reject-wh-{flow.tag}@example.com"  # the SMTP server refuses `reject...` with 550
    flow.dead.add(dead)
    flow.register("baseline", dead, "form")
    addrs = flow.addresses("base", n)
    flow.register_all("baseline", addrs)
    flow.confirm_half(addrs)
    took = flow.drain("baseline", t0)
    # The stop link's button on one unconfirmed address: its mailbox suppressed, an
    # email.suppressed event owed (source stop_link).
    stopped = next(a for a in addrs if a not in flow.confirmed)
    link = hostile.stop_links(flow.top.maildir)[stopped.lower()][0]
    path = urllib.parse.urlparse(link).path
    port = flow.top.web_port
    status, _, page = request(port, "GET", path)
    if status != 200 or "Stop emails to this address" not in page:
        fail(f"stop page answered {status}")
    cookie, token = csrf(port)
    status, _, _ = request(port, "POST", path, urllib.parse.urlencode({"csrf_token": token}), cookie=cookie)
    if status != 200:
        fail(f"the stop button answered {status}")
    flow.suppressed.add(stopped)
    flow.drain("baseline", t0)
    flow.notes["baseline"] = (f"{n + 1} registered (1 to go dead), everything delivered in {took:.1f}s; "
                              f"one mailbox suppressed through its stop link")


def phase_outage(flow, n):
    """A answers 503, then is down (connection refused), then back."""
    args, a = flow.args, flow.a
    first, second = flow.addresses("outage", n)[: n // 2], flow.addresses("outage", n)[n // 2:]
    log(f"outage: A answers 503 for {args.outage_503:g}s")
    a.set(status=503)
    t0 = time.monotonic()
    flow.register_all("outage", first)
    flow.confirm_half(first)
    wait_until("A's first 503", lambda: any(r["status"] == 503 for r in a.snapshot()), 20)
    time.sleep(max(0.0, args.outage_503 - (time.monotonic() - t0)))
    answered_503 = sum(r["status"] == 503 for r in a.snapshot())
    log(f"outage: A down (connection refused) for {args.outage_down:g}s")
    a.stop()
    a.set(status=204)
    down_at = time.monotonic()
    seen_before = set(a.by_id())
    flow.register_all("outage", second)
    flow.confirm_half(second)
    # One endpoint down must not hold back the other: B gets this phase's account events now.
    phase_accounts = {("account.registered", x) for x in first + second} | {
        ("account.confirmed", x) for x in flow.confirmed if x in first + second}
    wait_until("B's events while A is down", lambda: phase_accounts <= flow.b.events(), 30, 0.2)
    time.sleep(max(0.0, args.outage_down - (time.monotonic() - down_at)))
    owed_a = flow.endpoint_rows(a)
    if owed_a == 0:
        fail("no delivery to A owed at the end of its outage (were the refused connections retried?)")
    down_for = time.monotonic() - down_at
    a.start()
    back = time.monotonic()
    log(f"outage: A back after {down_for:.1f}s down, {owed_a} deliveries to it owed")
    took = flow.drain("outage", back)
    after = set(a.by_id()) - seen_before
    if not after:
        fail("A got no new webhook-id after its outage")
    flow.notes["outage"] = (f"A answered 503 x{answered_503} over {args.outage_503:g}s, then refused "
                            f"connections for {down_for:.1f}s ({owed_a} owed to it, B served meanwhile); "
                            f"drained {took:.1f}s after A was back")


def phase_kill(flow, n):
    """The worker is SIGKILLed while deliveries to A are in flight, then a new one started."""
    top, a = flow.top, flow.a
    addrs = flow.addresses("kill", n)
    a.set(delay=0.3)  # slow answers: deliveries are in flight at the kill
    flow.register_all("kill", addrs)
    mine = {("account.registered", x) for x in addrs} | {("email.sent", x) for x in addrs}
    wait_until("A's first events of the kill phase", lambda: len(mine & a.events()) >= 3, 60, 0.02)
    sending = int(flow.sql("select count(*) from email_messages where kind = 'webhook' and status = 'sending'"))
    at_a = len(mine & a.events(accepted_only=True))
    top.worker.stop(signal.SIGKILL)
    flow.kill_at = time.monotonic()
    log(f"kill: worker SIGKILLed with {at_a} of this phase's {len(mine)} registration/sent events at A, "
        f"{sending} webhook rows 'sending'")
    time.sleep(1)
    top.start_worker()
    flow.restart_at = time.monotonic()
    flow.confirm_half(addrs)
    took = flow.drain("kill", flow.restart_at)
    a.set(delay=0.0)
    flow.notes["kill"] = (f"SIGKILL with {at_a}/{len(mine)} of the phase's events at A and {sending} "
                          f"webhook rows sending; drained {took:.1f}s after the new worker started")


def phase_redis(flow, n):
    """Redis stopped while registrations go on, then started again (empty)."""
    args, top = flow.args, flow.top
    addrs = flow.addresses("redis", n)
    k = max(1, n // 3)
    before, during, after = addrs[:k], addrs[k:2 * k], addrs[2 * k:]
    flow.register_all("redis", before)
    top.stop_redis(signal.SIGTERM)
    down_at = time.monotonic()
    log(f"redis: stopped; {len(during)} registrations over {args.redis_down:g}s")
    flow.register_all("redis", during, spread=args.redis_down / max(1, len(during)))
    time.sleep(max(0.0, args.redis_down - (time.monotonic() - down_at)))
    top.start_redis()
    up = time.monotonic()
    log(f"redis: started again (empty) after {up - down_at:.1f}s")
    flow.register_all("redis", after)
    flow.confirm_half(addrs)
    took = flow.drain("redis", up)
    if not top.worker.alive():
        fail("the worker died during the Redis restart")
    flow.notes["redis"] = (f"down {up - down_at:.1f}s with {len(during)} registered meanwhile; "
                           f"drained {took:.1f}s after Redis was back")


# --- the checks ------------------------------------------------------------------------------

class Problems(list):
    def add(self, message, examples=()):
        examples = list(examples)
        self.append(message + (f": {examples[:4]}" if examples else ""))


def check_receiver(flow, rx, secret_no, problems):
    """Signatures, headers, ids, bodies of every request `rx` recorded; returns (type, email)
    -> set of ids."""
    recs = rx.snapshot()
    label = f"{rx.name} ({'second' if secret_no == 2 else 'first'} secret)"
    bad = [(r["id"], r["error"]) for r in recs if not r["verified"]]
    if bad:
        problems.add(f"{len(bad)} of {len(recs)} requests to {label} not verified by standardwebhooks", bad)
    unsigned = [(r["id"], r["signed_by"], r["signature"].count("v1,")) for r in recs if not all(r["signed_by"])]
    if unsigned:
        problems.add(f"{len(unsigned)} requests to {rx.name} not signed with every WEBHOOK_SECRET", unsigned)
    wrong = [(r["method"], r["path"], r["content_type"]) for r in recs
             if r["method"] != "POST" or r["path"] != rx.path
             or not r["content_type"].lower().startswith("application/json")]
    if wrong:
        problems.add(f"{len(wrong)} requests to {rx.name} not a POST of application/json to {rx.path}", wrong)
    late = [(r["id"], r["ts"], round(r["wall"])) for r in recs
            if not (r["ts"] or "").isdigit() or abs(r["wall"] - int(r["ts"])) > 15]
    if late:
        problems.add(f"{len(late)} requests to {rx.name} whose webhook-timestamp is not the attempt's time", late)

    ids_of = collections.defaultdict(set)
    for wid, rs in rx.by_id().items():
        if not wid:
            problems.add(f"{len(rs)} requests to {rx.name} without a webhook-id")
            continue
        if len({r["body"] for r in rs}) > 1:
            problems.add(f"{rx.name}: webhook-id {wid} carried {len({r['body'] for r in rs})} different bodies")
        stamps = [int(r["ts"]) for r in rs if (r["ts"] or "").isdigit()]
        if stamps != sorted(stamps) or (rs[-1]["at"] - rs[0]["at"] >= 3 and len(set(stamps)) < 2):
            problems.add(f"{rx.name}: webhook-id {wid}'s attempts do not carry their own timestamps",
                         [(round(r["at"] - rs[0]["at"], 1), r["ts"]) for r in rs])
        problems.extend(payload_problems(flow, rx, wid, rs[0]))
        ids_of[(rs[0]["type"], rs[0]["email"])].add(wid)
    twice = {k: sorted(v) for k, v in ids_of.items() if len(v) > 1}
    if twice:
        problems.add(f"{len(twice)} events reached {rx.name} under more than one webhook-id", twice.items())
    return ids_of


def payload_problems(flow, rx, wid, rec):
    doc = rec["doc"]
    where = f"{rx.name} {wid}"
    if not isinstance(doc, dict):
        return [f"{where}: the body is not a JSON object: {rec['body'][:200]!r}"]
    out = []
    kind, data = doc.get("type"), doc.get("data")
    if kind not in TYPES:
        return [f"{where}: unknown type {kind!r}"]
    if set(doc) - {"type", "timestamp", "data"} and not flow.notes.get("extra_envelope"):
        flow.notes["extra_envelope"] = f"extra envelope keys {sorted(set(doc) - {'type', 'timestamp', 'data'})}"
    at = parse_rfc3339(doc.get("timestamp"))
    if at is None:
        out.append(f"{where}: timestamp {doc.get('timestamp')!r} is not RFC 3339")
    elif not (flow.start_wall - 5 <= at.timestamp() <= time.time() + 5):
        out.append(f"{where}: timestamp {doc.get('timestamp')} outside the run")
    if not isinstance(data, dict):
        return out + [f"{where}: data is not an object: {data!r}"]
    missing = [f for f in TYPES[kind] if data.get(f) in (None, "")]
    if missing:
        out.append(f"{where}: {kind} without {missing}: {data}")
    for f in TIME_FIELDS & set(TYPES[kind]):
        if data.get(f) is not None and parse_rfc3339(data.get(f)) is None:
            out.append(f"{where}: data.{f} {data.get(f)!r} is not RFC 3339")
    if rec["email"] not in flow.registered:
        out.append(f"{where}: data.email {data.get('email')!r} is none of the addresses registered")
    return out


def check_against_database(flow, first, problems):
    """The payload fields against the rows (one delivery of each event is enough)."""
    users = {}
    for line in flow.sql("select lower(email), extract(epoch from registered_on), "
                         "coalesce(extract(epoch from confirmed_on)::text, '') from users").splitlines():
        email, reg, conf = line.split("|")
        users[email] = (float(reg), float(conf) if conf else None)
    mails = {}
    for line in flow.sql("select lower(recipient), id, status, coalesce(provider_message_id, ''), "
                         "coalesce(extract(epoch from sent_at)::text, ''), extract(epoch from updated_at) "
                         "from email_messages where kind <> 'webhook'").splitlines():
        rcpt, mid, status, pid, sent, updated = line.split("|")
        mails[rcpt] = (mid, status, pid, float(sent) if sent else None, float(updated))
    confirmed_db = {e for e, (_, c) in users.items() if c is not None}
    if confirmed_db != set(flow.confirmed):
        problems.add("confirmed accounts in the database differ from the confirmations made",
                     sorted(confirmed_db ^ set(flow.confirmed)))

    def near(iso, epoch, what, key):
        at = parse_rfc3339(iso)
        if at is not None and (epoch is None or abs(at.timestamp() - epoch) > 2):
            problems.add(f"{key}: {what} {iso} but the database says {epoch}")

    for (kind, email), rec in first.items():
        data = rec["doc"]["data"]
        key = f"{kind} {email}"
        user, mail = users.get(email), mails.get(email)
        if user is None or mail is None:
            problems.add(f"{key}: no user or email row in the database")
            continue
        if kind == "account.registered":
            near(data.get("registered_at"), user[0], "registered_at", key)
        elif kind == "account.confirmed":
            near(data.get("confirmed_at"), user[1], "confirmed_at", key)
        elif kind == "email.suppressed":
            if data.get("source") != "stop_link":
                problems.add(f"{key}: source {data.get('source')!r}, expected 'stop_link'")
        else:
            if str(data.get("message_id")) != mail[0]:
                problems.add(f"{key}: data.message_id {data.get('message_id')!r}, the email row is {mail[0]}")
            want = "sent" if kind == "email.sent" else "dead"
            if mail[1] != want:
                problems.add(f"{key}: the email row is {mail[1]}, not {want}")
            if kind == "email.sent":
                if str(data.get("provider_message_id")) != mail[2]:
                    problems.add(f"{key}: provider_message_id {data.get('provider_message_id')!r}, "
                                 f"the row has {mail[2]!r}")
                near(data.get("sent_at"), mail[3], "sent_at", key)
            else:
                near(data.get("failed_at"), mail[4], "failed_at", key)


def check_rows(flow, want, problems):
    """Every webhook row settled as its endpoint answered; one row per event and endpoint."""
    a, b = flow.a, flow.b
    by = collections.Counter()
    types = collections.Counter()
    for line in flow.sql("select d.endpoint, m.status, d.event_type, count(*) from email_messages m "
                         "join webhook_deliveries d on d.message_id = m.id where m.kind = 'webhook' "
                         "group by 1, 2, 3").splitlines():
        endpoint, status, kind, count = line.split("|")
        who = "A" if f":{a.port}/" in endpoint else "B" if f":{b.port}/" in endpoint else endpoint
        by[(who, status)] += int(count)
        types[(who, kind)] += int(count)
    unknown = {k: v for k, v in by.items() if k[0] not in ("A", "B")}
    if unknown:
        problems.add("webhook rows to an endpoint that is neither A nor B", unknown.items())
    if {s for (w, s) in by if w == "A"} != {"sent"}:
        problems.add("rows to A are not all `sent`", sorted((s, n) for (w, s), n in by.items() if w == "A"))
    if {s for (w, s) in by if w == "B"} != {"cancelled"}:
        problems.add("rows to B are not all `cancelled`", sorted((s, n) for (w, s), n in by.items() if w == "B"))
    want_types = collections.Counter(kind for kind, _ in want)
    for who in ("A", "B"):
        got = {k: types[(who, k)] for k in TYPES if types[(who, k)]}
        if got != {k: v for k, v in want_types.items() if v}:
            problems.add(f"rows to {who} by event type {got}, expected {dict(want_types)}")
    orphans = flow.sql("select (select count(*) from email_messages m where m.kind = 'webhook' and not exists "
                       "(select 1 from webhook_deliveries d where d.message_id = m.id)), "
                       "(select count(*) from webhook_deliveries d where not exists (select 1 from "
                       "email_messages m where m.id = d.message_id and m.kind = 'webhook'))")
    if orphans != "0|0":
        problems.add(f"webhook rows without their delivery row / delivery rows without a webhook row: {orphans}")
    mails = dict(line.split("|") for line in flow.sql(
        "select status, count(*) from email_messages where kind <> 'webhook' group by 1").splitlines())
    if mails != {"sent": str(len(flow.registered) - len(flow.dead)), "dead": str(len(flow.dead))}:
        problems.add(f"email rows by status {mails}, expected {len(flow.dead)} dead and the rest sent")
    return by


def final_checks(flow):
    a, b = flow.a, flow.b
    flow.drain("final check", time.monotonic())
    want, _ = flow.expected()
    quiet = faults.seconds(SETTINGS["RETRY_MAX_DELAY"]) + faults.seconds(SETTINGS["SWEEP_INTERVAL"]) + 1.5
    counts = (len(a.snapshot()), len(b.snapshot()))
    time.sleep(quiet)
    problems = Problems()
    if (len(a.snapshot()), len(b.snapshot())) != counts:
        problems.add(f"requests kept arriving once everything was settled: A {counts[0]} -> {len(a.snapshot())}, "
                     f"B {counts[1]} -> {len(b.snapshot())} in {quiet:g}s")

    ids_a = check_receiver(flow, a, 2, problems)
    ids_b = check_receiver(flow, b, 1, problems)
    got_a = a.events(accepted_only=True)
    if got_a != want:
        problems.add(f"A accepted {len(got_a)} events, expected {len(want)}; missing", sorted(want - got_a))
        if got_a - want:
            problems.add("A accepted unexpected events", sorted(got_a - want))
    got_b = b.events()
    if got_b != want:
        problems.add(f"B got {len(got_b)} events, expected {len(want)}; missing", sorted(want - got_b))
        if got_b - want:
            problems.add("B got unexpected events", sorted(got_b - want))

    # B answers 410: each delivery once, except one in flight at the SIGKILL (the new worker
    # cannot know the killed one had its answer).
    b_twice = {wid: rs for wid, rs in b.by_id().items() if len(rs) > 1}
    excused = {wid for wid, rs in b_twice.items() if len(rs) == 2 and flow.kill_at is not None
               and rs[0]["at"] <= flow.kill_at < rs[1]["at"]}
    if set(b_twice) - excused:
        problems.add(f"{len(set(b_twice) - excused)} deliveries to B (410) arrived more than once",
                     [(wid, len(b_twice[wid])) for wid in sorted(set(b_twice) - excused)])

    first = {}
    for rs in a.by_id().values():
        if rs[0]["type"] in TYPES and isinstance(rs[0]["doc"].get("data"), dict):
            first.setdefault((rs[0]["type"], rs[0]["email"]), rs[0])
    check_against_database(flow, first, problems)
    rows = check_rows(flow, want, problems)
    if problems:
        fail(f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))
    return want, ids_a, ids_b, excused, rows


# --- main ------------------------------------------------------------------------------------

def summary(flow, want, ids_a, ids_b, excused):
    a, b = flow.a, flow.b
    recs_a, recs_b = a.snapshot(), b.snapshot()
    by_status = collections.Counter(r["status"] for r in recs_a)
    retried = {wid: len(rs) for wid, rs in a.by_id().items() if len(rs) > 1}
    types = collections.Counter(kind for kind, _ in want)
    dead_errors = [r["doc"]["data"].get("error") for r in recs_a if r["type"] == "email.failed"][:1]
    log(f"events: {len(want)} expected and received at both endpoints: "
        + ", ".join(f"{k} {types[k]}" for k in TYPES))
    log(f"A: {len(recs_a)} requests ({', '.join(f'{s}: {n}' for s, n in sorted(by_status.items()))}), "
        f"{len(a.by_id())} unique ids ({len(ids_a)} events), {len(retried)} ids seen more than once "
        f"({sum(retried.values()) - len(retried)} extra requests), all verified with the second secret "
        f"alone, each also signed with the first; same id, same body")
    log(f"B: {len(recs_b)} requests (410), {len(b.by_id())} unique ids ({len(ids_b)} events), "
        f"{len(recs_b) - len(b.by_id())} duplicates ({len(excused)} in flight at the SIGKILL); all verified "
        f"with the first secret")
    log(f"email.failed error: {dead_errors[0]!r}" if dead_errors else "no email.failed body?")
    for phase in ("baseline", "outage", "kill", "redis"):
        log(f"{phase}: {flow.notes[phase]}")
    log("drain after each fault: " + ", ".join(f"{p} {s:.1f}s" for p, s in flow.drains.items()))
    if flow.notes.get("extra_envelope"):
        log(f"note: {flow.notes['extra_envelope']}")


def run(args):
    tmp = tempfile.mkdtemp(prefix="webhooks-")
    s1, s2 = new_secret(), new_secret()
    a = Receiver("A", "/hooks/a", s2, [s1, s2], 204).start()
    b = Receiver("B", "/hooks/b", s1, [s1, s2], 410).start()
    env = {**SETTINGS, "API_KEYS": api.API_KEY, "WEBHOOK_URL": f"{a.url},{b.url}",
           "WEBHOOK_SECRET": f"{s1},{s2}"}
    top = None
    ok = False
    try:
        top = Topology(args.bin_dir, tmp, env=env, db_prefix="webhooks")
        if top.sql("select to_regclass('webhook_deliveries') is not null") != "t":
            fail("the database has no webhook_deliveries table after `server migrate`")
        top.start_worker()
        flow = Flow(top, a, b, args)
        n = max(4, args.count // 4)
        for name, fn in (("baseline", phase_baseline), ("outage", phase_outage), ("kill", phase_kill),
                         ("redis", phase_redis)):
            log(f"--- phase {name}: {fn.__doc__}")
            fn(flow, n)
            log(f"{name}: {flow.notes[name]}")
        log("--- final: everything delivered, then the checks")
        want, ids_a, ids_b, excused, _ = final_checks(flow)
        check_logs([top], addresses=list(flow.registered),
                   secrets=[api.API_KEY, s1, s2, s1[len("whsec_"):], s2[len("whsec_"):]])
        summary(flow, want, ids_a, ids_b, excused)
        ok = True
    except SystemExit:
        if top is not None:
            print(top.tails(40), flush=True)
        for rx in (a, b):
            recs = rx.snapshot()
            log(f"receiver {rx.name}: {len(recs)} requests, answers "
                f"{dict(collections.Counter(r['status'] for r in recs))}, "
                f"unverified {sum(not r['verified'] for r in recs)}")
        raise
    finally:
        a.stop()
        b.stop()
        if top is not None:
            top.close()
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    print("webhooks: all checks passed", flush=True)


# --- the receivers alone ----------------------------------------------------------------------

def self_test():
    """The receivers without the binaries: requests signed by standardwebhooks itself."""
    s1, s2, other = new_secret(), new_secret(), new_secret()
    a = Receiver("A", "/hooks/a", s2, [s1, s2], 204).start()
    b = Receiver("B", "/hooks/b", s1, [s1, s2], 410).start()

    def post(rx, wid, body, secrets, chunked=False, at=None):
        at = at or datetime.datetime.now(datetime.timezone.utc)
        sigs = " ".join(Webhook(s).sign(wid, at, body) for s in secrets)
        headers = {"webhook-id": wid, "webhook-timestamp": str(int(at.timestamp())),
                   "webhook-signature": sigs, "Content-Type": "application/json"}
        c = httplib.HTTPConnection("127.0.0.1", rx.port, timeout=5)
        try:
            if chunked:
                c.request("POST", rx.path, body=iter([body[:10], body[10:]]), headers=headers,
                          encode_chunked=True)
            else:
                c.request("POST", rx.path, body=body, headers=headers)
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()

    body = json.dumps({"type": "account.registered", "timestamp": "2026-01-01T00:00:00.123456789Z",
                       "data": {"email": "x@example.com", "registered_at": "2026-01-01T00:00:00Z"}}).encode()
    try:
        assert post(a, "msg_1", body, [s1, s2]) == 204
        assert post(a, "msg_2", body, [s1]) == 204  # A holds only s2: not verified
        assert post(a, "msg_3", body, [s2], chunked=True) == 204
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
        assert post(a, "msg_4", body, [s1, s2], at=old) == 204  # too old
        assert post(a, "msg_5", body, [other]) == 204
        assert post(b, "msg_6", body, [s1, s2]) == 410
        a.set(status=503)
        assert post(a, "msg_1", body, [s1, s2]) == 503
        a.stop()
        try:
            post(a, "msg_1", body, [s1, s2])
            raise AssertionError("a stopped receiver accepted a connection")
        except ConnectionRefusedError:
            pass
        a.set(status=204)
        a.start()
        assert post(a, "msg_1", body, [s1, s2]) == 204
        got = {(r["id"], r["status"]): (r["verified"], r["signed_by"], r["error"]) for r in a.snapshot()}
        for key, value in got.items():
            log(f"self-test A {key}: verified={value[0]} signed_by={value[1]} {value[2] or ''}")
        assert got[("msg_1", 204)][:2] == (True, [True, True])
        assert got[("msg_1", 503)][:2] == (True, [True, True])
        assert got[("msg_2", 204)][:2] == (False, [True, False])
        assert got[("msg_3", 204)][:2] == (True, [False, True])
        assert got[("msg_4", 204)][0] is False and "too old" in got[("msg_4", 204)][2]
        assert got[("msg_5", 204)][:2] == (False, [False, False])
        rb = b.snapshot()
        assert len(rb) == 1 and rb[0]["verified"] and rb[0]["status"] == 410
        rec = a.snapshot()[0]
        assert rec["type"] == "account.registered" and rec["email"] == "x@example.com"
        assert parse_rfc3339(rec["doc"]["timestamp"]) is not None
        assert parse_rfc3339("2026-01-01 00:00:00") is None
        assert len({r["body"] for r in a.by_id()["msg_1"]}) == 1 and len(a.by_id()["msg_1"]) == 3
    finally:
        a.stop()
        b.stop()
    print("webhooks: self-test passed", flush=True)


def main():
    ap = argparse.ArgumentParser(description="Webhooks end to end (see the module docstring).")
    ap.add_argument("--bin-dir", help="directory holding the server and worker binaries")
    ap.add_argument("--count", type=int, default=40, help="addresses registered, over the four phases")
    ap.add_argument("--outage-503", type=float, default=6, help="seconds A answers 503")
    ap.add_argument("--outage-down", type=float, default=6, help="seconds A refuses connections")
    ap.add_argument("--redis-down", type=float, default=5, help="seconds Redis is stopped")
    ap.add_argument("--timeout", type=float, default=180, help="seconds to wait for each drain")
    ap.add_argument("--keep", action="store_true", help="keep the logs even when everything passed")
    ap.add_argument("--self-test", action="store_true", help="test the receivers alone (no binaries)")
    args = ap.parse_args()
    if Webhook is None:
        fail("the standardwebhooks package is missing (python3 -m pip install standardwebhooks)")
    if args.self_test:
        self_test()
        return
    if not args.bin_dir:
        ap.error("--bin-dir is required")
    if not os.environ.get("TEST_DATABASE_URL"):
        fail("TEST_DATABASE_URL is not set")
    for name in ("server", "worker"):
        if not os.access(os.path.join(args.bin_dir, name), os.X_OK):
            fail(f"{args.bin_dir}/{name} is missing (cargo build --release --bin server --bin worker)")
    run(args)


if __name__ == "__main__":
    main()

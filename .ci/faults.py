#!/usr/bin/env python3
"""Fault-injection tests of the production topology: `server` and `worker` as separate processes
over PostgreSQL, Redis and the test SMTP server (.ci/smtp_server.py), with faults injected from
outside. Every scenario runs on fresh state: its own database (created through the admin URL
TEST_DATABASE_URL and dropped afterwards), its own redis-server on a free port, its own SMTP
server, server and worker processes; g and k also run their own PostgreSQL cluster. Settings are short
so that the whole file runs in a few minutes:

    RETRY_BASE_DELAY=1s RETRY_MAX_DELAY=4s SWEEP_INTERVAL=500ms SEND_LEASE=3s SMTP_TIMEOUT=2s
    ACCOUNT_PAUSE=2s WORKER_CONCURRENCY=4

  a kill      the worker is SIGKILLed mid-batch (`slow` recipients, 250 ms per send) and started
              again: delivered = N, duplicates <= WORKER_CONCURRENCY (sends in flight).
  b redis     Redis is stopped for ~10 s while registrations continue at a steady rate, then
              started again (empty): every registration answered 303, every email delivered,
              none of those made during the outage before Redis is back.
  c flush     emails owed with the worker stopped, then FLUSHALL, then the worker started: the
              sweeper republishes them all; delivered exactly once.
  d flaky     `flaky` (451) and `flaky421` (421 + connection closed) recipients fail K times,
              then accept: all delivered, attempts >= K+1 per message, the gaps between attempts
              grow (attempts.log), and every retry time in the database (next_attempt_at -
              updated_at of a `retrying` row after attempt n) lies in the upper half of
              RETRY_BASE_DELAY * 2^(n-1), capped at RETRY_MAX_DELAY.
  e dead      550 via reject.txt: dead after exactly 1 attempt; `worker dead list` shows each
              (masked, never the address); the mailbox is fixed; `worker dead requeue ID` and
              `worker dead requeue --all` deliver them with attempts counted from 0; `worker dead
              purge --older-than` removes only dead messages older than the given age.
  f hang      timeout after DATA (`hang` recipients, the reply held back longer than
              SMTP_TIMEOUT, the message stored anyway): retried and delivered; at most one
              duplicate per hung message; other recipients exactly once.
  g postgres  a private PostgreSQL cluster is stopped for a few seconds and started again under a
              steady registration load: answers are 303 or 503 with Retry-After (never 500, none
              slower than --max-latency), some 503s during the outage, all 303 again shortly
              after the restart; every user row has its email row, every registered address gets
              its email (duplicates <= WORKER_CONCURRENCY); server and worker survive.
  h rate      MAIL_MAX_RATE=20 and 200 emails owed at once: no 1-second window of accepted sends
              (attempts.log) holds more than 20 (+ --rate-slack for timestamp jitter), and the
              span of the sends is consistent with the rate.
  i account   the SMTP server refuses AUTH (535, an account-level failure) for a few seconds:
              the worker pauses (AUTH attempts bounded by WORKER_CONCURRENCY per ACCOUNT_PAUSE),
              nothing is accepted or goes dead meanwhile; once AUTH works all are delivered once.
  j exhaust   `tempfail` recipients (always 451) with RETRY_MAX_ATTEMPTS=3: dead after exactly 3
              attempts (3 RCPTs at the SMTP server), never attempted again, last error kept.
  l tls       the SMTP server (implicit TLS, a certificate of a CA made for the run) is not
              trusted by the worker (no SMTP_TLS_CA_FILE): the failure is account-level, logged at
              ERROR, sending pauses, nothing is accepted, no credentials are sent and nothing goes
              dead; a worker started with SMTP_TLS_CA_FILE then delivers each email once.
  k readyz    readiness and metrics, with the worker's WORKER_METRICS_ADDR listener: after a few
              registrations, /metrics on the server counts them (registrations_total) and on the
              worker counts the sends (emails_sent_total, email_send_seconds); Redis, then a
              private PostgreSQL cluster, stopped: /readyz on both turns 503 naming `queue`, then
              `database` (as do `server healthcheck` and `worker healthcheck`, exit 1), and is 200
              again soon after each comes back.

After each scenario, every server and worker log is scanned for the addresses registered, the
confirmation tokens delivered and the SECRET_KEY (topology.check_logs): one found fails it.

Usage: python3 .ci/faults.py --bin-dir target/debug [--scenarios a,b,...|names] [--keep]
Needs: TEST_DATABASE_URL (an admin URL of a PostgreSQL server), redis-server, psql, the
PostgreSQL server programs (initdb, pg_ctl) for g and k, and aiosmtpd. Prints one summary line per
scenario, the server/worker log tails of a failed one, and exits non-zero if any failed.
"""

import argparse
import collections
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

sys.dont_write_bytecode = True  # no __pycache__ for the shared module
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import (  # noqa: E402 - after the path set-up
    STREAM, Load, MailIndex, PrivatePostgres, Topology, addresses, check_logs, fail, log,
    read_attempts, register, set_tag, tally, utc_now, wait_settled, wait_until,
)

set_tag("faults")

FAST = {
    "RETRY_BASE_DELAY": "1s",
    "RETRY_MAX_DELAY": "4s",
    "SWEEP_INTERVAL": "500ms",
    "SEND_LEASE": "3s",
    "SMTP_TIMEOUT": "2s",
    "ACCOUNT_PAUSE": "2s",
    "WORKER_CONCURRENCY": "4",
}


def seconds(text):
    """`500ms`, `2s`, `1m`, `1h` -> seconds."""
    for unit, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * factor
    return float(text)


def check(condition, message):
    if not condition:
        fail(message)


class Run:
    """One scenario's resources; `close()` stops every process it started."""

    def __init__(self, args, key):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix=f"faults-{key}-")
        self.tops = []
        self.pg = None

    def topology(self, env=None, **kwargs):
        tmp = os.path.join(self.tmp, f"t{len(self.tops)}")
        os.makedirs(tmp)
        top = Topology(self.args.bin_dir, tmp, env={**FAST, **(env or {})}, db_prefix="faults", **kwargs)
        self.tops.append(top)
        return top

    def private_postgres(self):
        self.pg = PrivatePostgres()
        return self.pg

    def tails(self):
        out = [top.tails(self.args.tail) for top in self.tops]
        if self.pg is not None:
            out.append(f"--- private postgres log tail ---\n{self.pg.tail()}")
        return "\n".join(out)

    def close(self, keep):
        for top in self.tops:
            try:
                top.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                traceback.print_exc()
        if self.pg is not None:
            self.pg.close()
        if keep:
            log(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- helpers ----------------------------------------------------------------------------------

def register_all(top, addrs):
    for a in addrs:
        register(top.web_port, a)


def attempts_of(top, like):
    """recipient -> attempts, for recipients matching the SQL LIKE pattern."""
    rows = top.sql(f"select recipient, attempts, status from email_messages where recipient like '{like}'")
    out = {}
    for line in rows.splitlines():
        rcpt, attempts, status = line.split("|")
        out[rcpt.lower()] = (int(attempts), status)
    return out


# --- scenarios --------------------------------------------------------------------------------

def scenario_kill(run):
    """a: SIGKILL mid-batch."""
    args = run.args
    conc = int(FAST["WORKER_CONCURRENCY"])
    top = run.topology()
    index = MailIndex(top.maildir)
    addrs = addresses("slow-kill", args.kill_count)
    register_all(top, addrs)
    top.start_worker()
    wait_until("the first emails", lambda: tally(index.copies(addrs))[0] >= args.kill_count // 4, 60, 0.02)
    top.worker.stop(signal.SIGKILL)
    before = tally(index.copies(addrs))[0]
    in_flight = int(top.sql("select count(*) from email_messages where status = 'sending'"))
    top.start_worker()
    copies = wait_settled(top, index, addrs, 120)
    delivered, dupes = tally(copies)
    reclaimed = int(top.sql("select count(*) from email_messages where attempts > 1"))
    check(delivered == args.kill_count, f"delivered {delivered} of {args.kill_count}")
    check(dupes <= conc, f"{dupes} duplicates, more than the {conc} sends in flight")
    check(dupes <= reclaimed, f"{dupes} duplicates but only {reclaimed} messages were attempted twice")
    return (f"registered={args.kill_count} delivered={delivered} duplicates={dupes} (limit {conc}) "
            f"killed after {before} sent, {in_flight} rows 'sending' at the kill, {reclaimed} re-claimed")


def scenario_redis(run):
    """b: Redis stopped during registrations, then restarted."""
    args = run.args
    top = run.topology()
    index = MailIndex(top.maildir)
    top.start_worker()
    before = addresses("redis-before", 5)
    register_all(top, before)
    wait_settled(top, index, before, 30, extra=0)
    top.stop_redis(signal.SIGTERM)
    down_at = time.monotonic()
    rate = args.redis_rate
    during = addresses("redis-down", int(args.redis_down * rate))
    results = Load(top.web_port, during, rate).start().wait(timeout=args.redis_down * 10 + 60)
    down_for = time.monotonic() - down_at
    up_at = utc_now()
    top.start_redis()
    after = addresses("redis-after", 5)
    register_all(top, after)
    bad = [r for r in results if not r["registered"]]
    check(not bad, f"{len(bad)} of {len(results)} registrations during the outage not answered 303: "
                   f"{[(r['status'], r['error']) for r in bad[:5]]}")
    slowest = max(r["elapsed"] for r in results)
    copies = wait_settled(top, index, before + during + after, 120)
    delivered, dupes = tally(copies)
    check(delivered == len(copies), f"delivered {delivered} of {len(copies)}")
    early = [r["rcpt"] for r in read_attempts(top.maildir)
             if r["stage"] == "DATA" and r["rcpt"].startswith("redis-down") and r["at"] < up_at]
    check(not early, f"{len(early)} emails registered during the outage were sent before Redis returned")
    check(dupes == 0, f"{dupes} duplicate emails (no sender crashed: none expected)")
    check(top.worker.alive(), "the worker died during the Redis outage")
    return (f"registered during the outage={len(during)} (all 303, slowest {slowest:.2f}s) over {down_for:.1f}s "
            f"down; delivered={delivered}/{len(copies)} duplicates={dupes}")


def scenario_flush(run):
    """c: FLUSHALL with messages owed, worker stopped."""
    top = run.topology()
    index = MailIndex(top.maildir)
    addrs = addresses("flush", 30)
    register_all(top, addrs)
    wait_until("the jobs in the stream", lambda: top.redis_cli("XLEN", STREAM) == str(len(addrs)), 10)
    top.redis_cli("FLUSHALL")
    check(top.redis_cli("DBSIZE") == "0", "FLUSHALL left keys behind")
    t0 = time.monotonic()
    top.start_worker()
    copies = wait_settled(top, index, addrs, 60)
    took = time.monotonic() - t0
    delivered, dupes = tally(copies)
    check(delivered == len(addrs), f"delivered {delivered} of {len(addrs)}")
    check(dupes == 0, f"{dupes} duplicates")
    return (f"owed={len(addrs)} flushed from Redis; delivered={delivered} duplicates={dupes} "
            f"{took:.1f}s after the worker started")


def scenario_flaky(run):
    """d: 451 / 421 then accepted; backoff visible."""
    args = run.args
    k = args.flaky_failures
    base, cap = seconds(FAST["RETRY_BASE_DELAY"]), seconds(FAST["RETRY_MAX_DELAY"])
    top = run.topology(smtp_args=["--flaky-failures", str(k)])
    index = MailIndex(top.maildir)
    top.start_worker()
    addrs = addresses("flaky", 8) + addresses("flaky421", 8)

    # Watch the retry times the worker records while the messages are retrying.
    observed = {}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            rows = top.sql("select id, attempts, extract(epoch from next_attempt_at - updated_at) "
                           "from email_messages where status = 'retrying'")
            for line in rows.splitlines():
                mid, attempts, delay = line.split("|")
                observed[(int(mid), int(attempts))] = float(delay)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        register_all(top, addrs)
        copies = wait_settled(top, index, addrs, 120)
    finally:
        stop.set()
        watcher.join()
    delivered, dupes = tally(copies)
    check(delivered == len(addrs), f"delivered {delivered} of {len(addrs)}")
    check(dupes == 0, f"{dupes} duplicates (refused at RCPT: none expected)")

    tries = attempts_of(top, "flaky%")
    low = {a: n for a, (n, _) in tries.items() if n < k + 1}
    check(not low, f"{len(low)} messages with fewer than {k + 1} attempts: {list(low.items())[:3]}")

    rcpts = collections.defaultdict(list)
    for row in read_attempts(top.maildir):
        if row["stage"] == "RCPT" and row["rcpt"].startswith("flaky"):
            rcpts[row["rcpt"]].append(row)
    miscounted = {a: (n, len(rcpts.get(a, []))) for a, (n, _) in tries.items() if n != len(rcpts.get(a, []))}
    check(not miscounted, f"attempts column != attempts seen by the SMTP server (db, smtp): {list(miscounted.items())[:3]}")
    stamps = top.sql("select count(*) from email_messages where sent_at is null or updated_at <> sent_at")
    check(stamps == "0", f"{stamps} sent rows without sent_at or with updated_at != sent_at")
    gaps_by_index = collections.defaultdict(list)
    for rcpt, rows in rcpts.items():
        failures = [r for r in rows if r["code"] != 250]
        want = 421 if rcpt.startswith("flaky421") else 451
        check(len(failures) >= k and all(r["code"] == want for r in failures),
              f"{rcpt}: expected {k} x {want}, got {[r['code'] for r in rows]}")
        times = [r["at"].timestamp() for r in rows]
        gaps = [b - a for a, b in zip(times, times[1:])]
        check(len(gaps) >= k, f"{rcpt}: only {len(times)} attempts at the SMTP server")
        check(gaps[0] >= base / 2 - 0.01, f"{rcpt}: first retry after {gaps[0]:.2f}s (< {base / 2}s)")
        check(gaps[-1] > gaps[0], f"{rcpt}: the gaps between attempts do not grow: {gaps}")
        for i, g in enumerate(gaps):
            gaps_by_index[i].append(g)
    means = [statistics.mean(gaps_by_index[i]) for i in sorted(gaps_by_index)]
    check(all(b > a for a, b in zip(means, means[1:])), f"mean gaps do not grow: {means}")

    bad = []
    for (mid, n), delay in observed.items():
        full = min(base * 2 ** (n - 1), cap)
        if not (full / 2 - 0.005 <= delay <= full + 0.005):
            bad.append((mid, n, round(delay, 3), full))
    check(observed, "never saw a message in status 'retrying'")
    check(not bad, f"retry delays outside the upper half of base*2^(n-1) capped: {bad[:5]}")
    seen_n = sorted({n for _, n in observed})
    return (f"messages={len(addrs)} K={k} delivered={delivered} duplicates={dupes} attempts per message="
            f"{min(n for n, _ in tries.values())}..{max(n for n, _ in tries.values())}; "
            f"mean gaps {', '.join(f'{m:.2f}s' for m in means)}; {len(observed)} retry times recorded "
            f"(after attempts {seen_n}) all within policy")


def scenario_dead(run):
    """e: 550 via reject.txt; dead list / requeue / purge."""
    top = run.topology()
    index = MailIndex(top.maildir)
    top.start_worker()
    tag = uuid.uuid4().hex[:6]
    bounce = [f"bounce{i}-{tag}@d{i}-{tag}.example.com" for i in range(3)]
    reject = os.path.join(top.maildir, "reject.txt")

    def set_rejected(addrs):
        with open(reject, "w") as f:
            f.write("".join(a.lower() + "\n" for a in addrs))

    def dead_ids():
        rows = top.sql("select id, recipient from email_messages where status = 'dead'")
        return {line.split("|")[1].lower(): int(line.split("|")[0]) for line in rows.splitlines()}

    def cli(*argv):
        r = top.worker_cli(*argv)
        log(f"  $ worker {' '.join(argv)}  -> exit {r.returncode}\n" +
            "".join(f"    {line}\n" for line in r.stdout.splitlines()))
        check(r.returncode == 0, f"`worker {' '.join(argv)}` exited {r.returncode}: {r.stdout}{r.stderr}")
        return r.stdout + r.stderr

    set_rejected(bounce)
    register_all(top, bounce)
    wait_until("3 dead messages", lambda: len(set(dead_ids()) & set(bounce)) == 3, 30)
    tries = attempts_of(top, "bounce%")
    check(all(n == 1 for n, _ in tries.values()), f"dead after {tries} attempts (expected exactly 1)")
    time.sleep(1.5)  # no retry may follow
    check(attempts_of(top, "bounce%") == tries, "a dead message was attempted again")
    rcpt_550 = [r for r in read_attempts(top.maildir) if r["rcpt"] in bounce and r["code"] == 550]
    check(len(rcpt_550) == 3, f"{len(rcpt_550)} 550 replies at the SMTP server (expected 3)")

    listing = cli("dead", "list")
    for a in bounce:
        local, domain = a.split("@")
        check(f"{local[0]}***@{domain}" in listing, f"`worker dead list` does not show {local[0]}***@{domain}")
        check(local not in listing, f"`worker dead list` shows the address {a}")
    ids = dead_ids()
    for a in bounce:
        check(str(ids[a]) in listing, f"`worker dead list` does not show message id {ids[a]}")

    # Fix the first mailbox and requeue it by id.
    set_rejected(bounce[1:])
    cli("dead", "requeue", str(ids[bounce[0]]))
    t0 = time.monotonic()
    wait_until("the requeued message", lambda: index.copies([bounce[0]])[bounce[0]] == 1, 30)
    by_id = time.monotonic() - t0
    # Fix the others and requeue them all.
    set_rejected([])
    cli("dead", "requeue", "--all")
    t0 = time.monotonic()
    copies = wait_settled(top, index, bounce, 30)
    by_all = time.monotonic() - t0
    delivered, dupes = tally(copies)
    check(delivered == 3 and dupes == 0, f"after requeue: delivered {delivered}, duplicates {dupes}")
    tries = attempts_of(top, "bounce%")
    check(all(n == 1 and s == "sent" for n, s in tries.values()),
          f"after requeue: {tries} (expected 1 attempt each, counted from 0, and sent)")
    listing = cli("dead", "list")
    check(not any(f"@d{i}-{tag}" in listing for i in range(3)), "requeued messages still listed as dead")

    # Purge: only dead messages older than the age given.
    gone = f"purge-{tag}@p-{tag}.example.com"
    set_rejected([gone])
    register(top.web_port, gone)
    wait_until("the message to purge to die", lambda: gone in dead_ids(), 30)
    cli("dead", "purge", "--older-than", "1h")
    check(gone in dead_ids(), "`purge --older-than 1h` removed a message dead for a second")
    time.sleep(2)
    cli("dead", "purge", "--older-than", "1s")
    check(gone not in dead_ids(), "`purge --older-than 1s` left a message dead for 2 s")
    check("p-" + tag not in cli("dead", "list"), "a purged message is still listed")
    return (f"dead=3 after 1 attempt each, listed masked; requeued 1 by id (delivered in {by_id:.1f}s) "
            f"and 2 with --all ({by_all:.1f}s); delivered={delivered} duplicates={dupes}, 1 attempt each; "
            f"purge kept a fresh dead message, removed it once older")


def scenario_hang(run):
    """f: timeout after DATA."""
    args = run.args
    timeout = seconds(FAST["SMTP_TIMEOUT"])
    check(args.hang_seconds > timeout, "--hang-seconds must exceed SMTP_TIMEOUT")
    top = run.topology(smtp_args=["--hang-seconds", str(args.hang_seconds)])
    index = MailIndex(top.maildir)
    top.start_worker()
    hung = addresses("hang", 4)
    plain = addresses("plain", 4)
    register_all(top, hung + plain)
    copies = wait_settled(top, index, hung + plain, 60 + 4 * args.hang_seconds)
    delivered, dupes = tally(copies)
    check(delivered == len(copies), f"delivered {delivered} of {len(copies)}")
    too_many = {a: c for a, c in copies.items() if a.startswith("hang") and c > 2}
    check(not too_many, f"more than one duplicate per hung message: {too_many}")
    check(all(copies[a.lower()] == 1 for a in plain), f"other recipients not exactly once: {copies}")
    tries = attempts_of(top, "hang%")
    not_retried = {a: n for a, (n, _) in tries.items() if n < 2}
    check(not not_retried, f"hung sends not retried (the {timeout:g}s SMTP_TIMEOUT did not fire?): {not_retried}")
    hung_dupes = sum(copies[a.lower()] - 1 for a in hung)
    return (f"hung={len(hung)} retried={len(hung) - len(not_retried)} delivered={delivered}/{len(copies)} "
            f"duplicates={dupes} ({hung_dupes} from hung sends, limit 1 each); others exactly once")


def scenario_postgres(run):
    """g: PostgreSQL restarted under load (a private cluster)."""
    args = run.args
    conc = int(FAST["WORKER_CONCURRENCY"])
    pg = run.private_postgres()
    top = run.topology(admin_url=pg.admin_url)
    index = MailIndex(top.maildir)
    top.start_worker()
    rate = args.pg_rate
    before_s, down_s, after_s = 4.0, args.pg_down, 8.0
    addrs = addresses("pg", int(rate * (before_s + down_s + after_s)))
    load = Load(top.web_port, addrs, rate, timeout=60).start()
    time.sleep(before_s)
    pg.stop("fast")
    down_at = utc_now()
    time.sleep(down_s)
    up_start = utc_now()
    pg.start()
    up_at = utc_now()
    results = load.wait(timeout=120)

    statuses = collections.Counter(r["status"] if r["error"] is None else "error" for r in results)
    errors = [r for r in results if r["error"] is not None]
    check(not errors, f"{len(errors)} registrations failed on the client side: {errors[0]['error'] if errors else ''}")
    check(statuses.get(500, 0) == 0, f"{statuses[500]} answers 500 during the outage")
    check(set(statuses) <= {303, 503}, f"unexpected answers: {dict(statuses)}")
    no_retry = [r for r in results if r["status"] == 503 and not r["retry_after"]]
    check(not no_retry, f"{len(no_retry)} answers 503 without Retry-After")
    slowest = max(results, key=lambda r: r["elapsed"])
    check(slowest["elapsed"] <= args.max_latency,
          f"a registration took {slowest['elapsed']:.1f}s (answered {slowest['status']}; "
          f"limit {args.max_latency}s)")
    during = [r for r in results if down_at <= r["sent"] < up_start]
    check(any(r["status"] == 503 for r in during),
          f"no 503 among the {len(during)} registrations sent during the {down_s:g}s outage "
          f"({dict(collections.Counter(r['status'] for r in during))}, answered after "
          f"{min(r['elapsed'] for r in during):.1f}..{max(r['elapsed'] for r in during):.1f}s): "
          f"they waited for the database to come back instead of answering 503")
    late = [r for r in results if (r["sent"] - up_at).total_seconds() > args.pg_recovery]
    check(late and all(r["registered"] for r in late),
          f"registrations {args.pg_recovery}s after the restart still fail: "
          f"{collections.Counter(r['status'] for r in late)}")
    check(top.server.alive(), "the server died during the PostgreSQL outage")
    check(top.worker.alive(), "the worker died during the PostgreSQL outage")

    users, messages, orphans = map(int, top.sql(
        "select (select count(*) from users), (select count(*) from email_messages), "
        "(select count(*) from users u where not exists (select 1 from email_messages m where m.user_id = u.id))"
    ).split("|"))
    check(orphans == 0 and users == messages, f"half-written registrations: users={users} messages={messages} "
                                              f"users without a message={orphans}")
    ok = [r["address"] for r in results if r["registered"]]
    stored = {line.lower() for line in top.sql("select email from users").splitlines()}
    lost = [a for a in ok if a.lower() not in stored]
    check(not lost, f"{len(lost)} addresses answered 303 but not stored: {lost[:3]}")
    copies = wait_settled(top, index, sorted(stored), 120)
    delivered, dupes = tally(copies)
    check(delivered == len(stored), f"delivered {delivered} of {len(stored)} stored users")
    check(dupes <= conc, f"{dupes} duplicates (more than the {conc} sends in flight)")
    return (f"requests={len(results)} 303={statuses.get(303, 0)} 503={statuses.get(503, 0)} (all with Retry-After) "
            f"500=0; during the {down_s:g}s outage {sum(r['status'] == 503 for r in during)}/{len(during)} got 503; "
            f"slowest answer {slowest['elapsed']:.2f}s; users={users} delivered={delivered} duplicates={dupes}")


def scenario_rate(run):
    """h: MAIL_MAX_RATE."""
    args = run.args
    rate, n = args.rate, args.rate_count
    top = run.topology(env={"MAIL_MAX_RATE": str(rate), "WORKER_CONCURRENCY": "8"})
    index = MailIndex(top.maildir)
    addrs = addresses("rate", n)
    register_all(top, addrs)
    start = utc_now()
    top.start_worker()
    copies = wait_settled(top, index, addrs, n / rate * 3 + 60)
    delivered, dupes = tally(copies)
    check(delivered == n, f"delivered {delivered} of {n}")
    # Nothing fails here, so nothing may be sent twice (a job once waited for its send slot
    # while holding its lease, and the lease ran out).
    check(dupes == 0, f"{dupes} duplicate(s) although nothing failed")
    times = sorted(r["at"].timestamp() for r in read_attempts(top.maildir)
                   if r["stage"] == "DATA" and r["code"] == 250 and r["rcpt"].startswith("rate-"))
    j, busiest = 0, 0
    for i, t in enumerate(times):  # windows [t_i, t_i + 1 s)
        while j < len(times) and times[j] < t + 1.0:
            j += 1
        busiest = max(busiest, j - i)
    span = times[-1] - times[0]
    total = times[-1] - start.timestamp()
    check(busiest <= rate + args.rate_slack,
          f"{busiest} sends accepted within one second (MAIL_MAX_RATE={rate}, slack {args.rate_slack})")
    check(span >= (n - rate) / rate, f"{n} sends took only {span:.2f}s at {rate}/s")
    check(total <= n / rate * 1.5 + 5, f"{n} sends took {total:.1f}s at {rate}/s: too slow")
    return (f"emails={n} MAIL_MAX_RATE={rate} delivered={delivered} duplicates={dupes}; busiest 1s window "
            f"{busiest} sends; first to last {span:.2f}s (ideal {(n - 1) / rate:.2f}s), {total:.1f}s after the worker started")


def scenario_account(run):
    """i: account-level failure (SMTP AUTH refused with 535): sending pauses, nothing dies."""
    args = run.args
    pause = seconds(FAST["ACCOUNT_PAUSE"])
    conc = int(FAST["WORKER_CONCURRENCY"])
    top = run.topology()
    index = MailIndex(top.maildir)
    flag = os.path.join(top.maildir, "auth_fail")
    open(flag, "w").close()
    auth_log = os.path.join(top.maildir, "auth.log")

    def auths():
        try:
            with open(auth_log) as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    # Credentials over plain text are allowed for a loopback host only.
    top.start_worker(SMTP_URL=f"smtp://faults-user:secret@127.0.0.1:{top.smtp_port}?tls=none")
    addrs = addresses("acct", 10)
    register_all(top, addrs)
    t0 = time.monotonic()
    time.sleep(args.account_fail)
    failing = time.monotonic() - t0
    refused = auths()
    bound = conc * (int(failing // pause) + 2)
    check(refused >= 1, "no AUTH attempt while the account was refused")
    check(refused <= bound, f"{refused} AUTH attempts in {failing:.1f}s with ACCOUNT_PAUSE={pause:g}s "
                            f"(at most {bound} expected: the worker does not pause)")
    check(tally(index.copies(addrs))[0] == 0, "emails accepted while AUTH was refused")
    dead = int(top.sql("select count(*) from email_messages where status = 'dead'"))
    check(dead == 0, f"{dead} messages dead after an account-level failure (they should wait)")
    tries = attempts_of(top, "acct%")
    counted = sum(n for n, _ in tries.values())
    check(abs(counted - auths()) <= conc, f"attempts column sums to {counted}, but the SMTP server saw "
                                          f"{auths()} AUTH attempts")
    os.remove(flag)
    t1 = time.monotonic()
    copies = wait_settled(top, index, addrs, 30 + 3 * pause)
    took = time.monotonic() - t1
    delivered, dupes = tally(copies)
    check(delivered == len(addrs) and dupes == 0, f"after the fix: delivered {delivered}, duplicates {dupes}")
    return (f"AUTH refused for {failing:.1f}s: {refused} AUTH attempts (limit {bound}), 0 dead, "
            f"attempts recorded meanwhile {min(n for n, _ in tries.values())}..{max(n for n, _ in tries.values())}; "
            f"after the fix delivered={delivered}/{len(addrs)} in {took:.1f}s, duplicates={dupes}")


def scenario_tls(run):
    """l: an untrusted SMTP certificate pauses sending (account-level); nothing goes dead."""
    ca_dir = os.path.join(run.tmp, "ca")
    subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-test-ca"), ca_dir],
                   check=True)
    top = run.topology(smtp_args=["--tls-cert", os.path.join(ca_dir, "localhost.pem"),
                                  "--tls-key", os.path.join(ca_dir, "localhost.key"), "--tls", "implicit"])
    index = MailIndex(top.maildir)
    url = f"smtps://faults-tls-user:secret@localhost:{top.smtp_port}"
    worker = top.start_worker(SMTP_URL=url)
    addrs = addresses("tls", 10)
    register_all(top, addrs)

    def paused():
        with open(worker.log_path, errors="replace") as f:
            text = f.read()
        return "ERROR" in text and "TLS failure" in text and "sending paused" in text

    wait_until("the worker's ERROR for the untrusted certificate", paused, 30)
    tried = int(top.sql("select coalesce(sum(attempts), 0) from email_messages"))
    check(tried >= 1, "no send attempt recorded")
    check(tally(index.copies(addrs))[0] == 0, "emails accepted over an untrusted certificate")
    dead = int(top.sql("select count(*) from email_messages where status = 'dead'"))
    check(dead == 0, f"{dead} messages dead after a certificate error (they should wait)")
    auth_log = os.path.join(top.maildir, "auth.log")
    check(not os.path.exists(auth_log) or "faults-tls-user" not in open(auth_log).read(),
          "credentials reached a server whose certificate was not trusted")
    code = worker.stop(signal.SIGTERM)
    check(code == 0, f"worker exited {code} on SIGTERM")
    top.start_worker(SMTP_URL=url, SMTP_TLS_CA_FILE=os.path.join(ca_dir, "ca.pem"))
    t1 = time.monotonic()
    copies = wait_settled(top, index, addrs, 30 + 3 * seconds(FAST["ACCOUNT_PAUSE"]))
    delivered, dupes = tally(copies)
    check(delivered == len(addrs) and dupes == 0, f"with the CA: delivered {delivered}, duplicates {dupes}")
    return (f"untrusted certificate: ERROR logged, {tried} attempts, 0 accepted, 0 dead, no AUTH; "
            f"with SMTP_TLS_CA_FILE delivered={delivered}/{len(addrs)} in {time.monotonic() - t1:.1f}s, "
            f"duplicates={dupes}")


def scenario_exhaust(run):
    """j: retries run out (always 451, RETRY_MAX_ATTEMPTS=3): dead after exactly 3 attempts."""
    top = run.topology(env={"RETRY_MAX_ATTEMPTS": "3"})
    top.start_worker()
    addrs = addresses("tempfail", 3)
    register_all(top, addrs)
    wait_until("3 dead messages", lambda: top.sql(
        "select count(*) from email_messages where status = 'dead'") == "3", 60)
    time.sleep(seconds(FAST["RETRY_MAX_DELAY"]) + 1)  # no further attempt may follow
    tries = attempts_of(top, "tempfail%")
    check(all(n == 3 and s == "dead" for n, s in tries.values()), f"expected 3 attempts then dead: {tries}")
    rcpts = collections.Counter(r["rcpt"] for r in read_attempts(top.maildir) if r["stage"] == "RCPT")
    check(all(rcpts[a] == 3 for a in addrs), f"the SMTP server saw {dict(rcpts)} attempts (expected 3 each)")
    errors = top.sql("select last_error from email_messages").splitlines()
    check(all("451" in e for e in errors), f"last_error does not keep the provider's reply: {errors[:1]}")
    return f"messages={len(addrs)} dead after exactly 3 attempts each (3 RCPTs each at the SMTP server), last_error kept"


def scenario_readyz(run):
    """k: /readyz and /metrics on server and worker, Redis and PostgreSQL stopped and started."""
    import subprocess  # noqa: PLC0415 - only this scenario runs the binaries' subcommands

    from topology import free_port, request  # noqa: PLC0415 - only this scenario needs them

    pg = run.private_postgres()
    top = run.topology(admin_url=pg.admin_url)
    index = MailIndex(top.maildir)
    ops_port = free_port()
    top.start_worker(WORKER_METRICS_ADDR=f"127.0.0.1:{ops_port}")
    # The ops listeners: the server's OPS_ADDR and the worker's WORKER_METRICS_ADDR (the public
    # port has no /metrics and a /readyz without details).
    ports = {"server": top.ops_port, "worker": ops_port}
    status, _, _ = request(top.web_port, "GET", "/metrics", timeout=10)
    check(status == 404, f"/metrics on the public port answered {status}, not 404")

    def readyz(port):
        try:
            status, _, body = request(port, "GET", "/readyz", timeout=10)
            return status, body.strip()
        except OSError as e:
            return None, repr(e)

    def scrape(port):
        status, headers, body = request(port, "GET", "/metrics", timeout=10)
        check(status == 200, f"/metrics on port {port} answered {status}")
        check(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
              f"/metrics Content-Type {headers.get('content-type')!r}")
        samples = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                series, value = line.rsplit(" ", 1)
                samples[series] = float(value)
        return samples

    def healthchecks():
        """Exit statuses of `server healthcheck` and `worker healthcheck` (with the topology's
        settings: the worker probes its WORKER_METRICS_ADDR)."""
        server = subprocess.run([top.bin("server"), "healthcheck"], env={**top.base_env, "RUST_LOG": "warn"},
                                capture_output=True, text=True, timeout=30).returncode
        worker = subprocess.run([top.bin("worker"), "healthcheck"],
                                env={**top.base_env, **top.worker_env, "RUST_LOG": "warn",
                                     "WORKER_METRICS_ADDR": f"127.0.0.1:{ops_port}"},
                                capture_output=True, text=True, timeout=30).returncode
        return server, worker

    def wait_ready(what, want_status, needle=None, timeout=20):
        """Waits until /readyz answers `want_status` (with `needle` in its body) on both; returns
        the seconds that took and the worker's body."""
        t0 = time.monotonic()
        body = ""
        for name, port in ports.items():
            def state(port=port):
                status, body = readyz(port)
                return status == want_status and (needle is None or needle in body) and (status, body)
            status, body = wait_until(f"/readyz on the {name} {what}", state, timeout, 0.1)
            if needle is not None:
                check("://" not in body and "secret" not in body.lower(), f"/readyz body leaks: {body!r}")
        return time.monotonic() - t0, body

    wait_ready("at start", 200)
    check(healthchecks() == (0, 0), f"healthchecks at start: {healthchecks()}")
    before = {name: scrape(port) for name, port in ports.items()}
    addrs = addresses("ready", 5)
    register_all(top, addrs)
    copies = wait_settled(top, index, addrs, 30, extra=0.2)
    delivered, _ = tally(copies)
    check(delivered == len(addrs), f"delivered {delivered} of {len(addrs)}")
    sent_gauge = 'messages{state="sent"}'
    # The gauges read from the database are cached for up to 5 s: wait for the refresh.
    after = wait_until("the sent gauges", lambda: (
        lambda now: all(now[name].get(sent_gauge) == len(addrs) for name in ports) and now)(
        {name: scrape(port) for name, port in ports.items()}), 15, 0.5)

    def moved(name, series):
        return after[name].get(series, 0) - before[name].get(series, 0)

    registered = moved("server", 'registrations_total{outcome="created"}')
    sent = moved("worker", 'emails_sent_total{provider="smtp"}')
    timed = moved("worker", 'email_send_seconds_count{provider="smtp"}')
    check(registered == len(addrs), f"registrations_total moved by {registered}, not {len(addrs)}")
    check(sent == len(addrs), f"emails_sent_total{{provider=smtp}} moved by {sent}, not {len(addrs)}")
    check(timed == len(addrs), f"email_send_seconds_count moved by {timed}, not {len(addrs)}")
    for name in ports:
        check(after[name].get(sent_gauge) == len(addrs),
              f"{sent_gauge} on the {name}: {after[name].get(sent_gauge)}, not {len(addrs)}")
        check("queue_depth" in after[name], f"no queue_depth gauge on the {name}")

    top.stop_redis()
    redis_down, redis_reason = wait_ready("with Redis stopped", 503, "queue")
    down_checks = healthchecks()
    check(down_checks == (1, 1), f"healthchecks with Redis down exited {down_checks}, not (1, 1)")
    top.start_redis()
    redis_back, _ = wait_ready("after Redis is back", 200)

    pg.stop("fast")
    pg_down, pg_reason = wait_ready("with PostgreSQL stopped", 503, "database")
    _, body = readyz(top.ops_port)
    check("queue" not in body, f"/readyz blames the queue while only PostgreSQL is down: {body!r}")
    down_checks = healthchecks()
    check(down_checks == (1, 1), f"healthchecks with PostgreSQL down exited {down_checks}, not (1, 1)")
    pg.start()
    pg_back, _ = wait_ready("after PostgreSQL is back", 200)
    check(healthchecks() == (0, 0), f"healthchecks after the outages: {healthchecks()}")
    check(top.server.alive() and top.worker.alive(), "the server or the worker died")
    return (f"metrics: registrations_total +{registered:g}, emails_sent_total +{sent:g}, "
            f"email_send_seconds_count +{timed:g}; /readyz on both 503 {redis_down:.1f}s after Redis stopped "
            f"({redis_reason!r}), 200 {redis_back:.1f}s after its restart; 503 {pg_down:.1f}s after PostgreSQL "
            f"stopped ({pg_reason!r}), 200 {pg_back:.1f}s after its restart; healthcheck subcommands exit 1 "
            f"while down, 0 after")


SCENARIOS = [
    ("a", "kill", scenario_kill),
    ("b", "redis", scenario_redis),
    ("c", "flush", scenario_flush),
    ("d", "flaky", scenario_flaky),
    ("e", "dead", scenario_dead),
    ("f", "hang", scenario_hang),
    ("g", "postgres", scenario_postgres),
    ("h", "rate", scenario_rate),
    ("i", "account", scenario_account),
    ("j", "exhaust", scenario_exhaust),
    ("k", "readyz", scenario_readyz),
    ("l", "tls", scenario_tls),
]


def main():
    ap = argparse.ArgumentParser(description="Fault-injection tests (see the module docstring).")
    ap.add_argument("--bin-dir", required=True, help="directory holding the server and worker binaries")
    ap.add_argument("--scenarios", default="all", help="comma-separated letters or names (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep every scenario's logs (failed ones are always kept)")
    ap.add_argument("--tail", type=int, default=40, help="log lines shown per process on failure")
    ap.add_argument("--kill-count", type=int, default=60, help="a: emails in the batch")
    ap.add_argument("--redis-down", type=float, default=10, help="b: seconds Redis is down")
    ap.add_argument("--redis-rate", type=float, default=5, help="b: registrations per second during the outage")
    ap.add_argument("--flaky-failures", type=int, default=3, help="d: failures per recipient (K)")
    ap.add_argument("--hang-seconds", type=float, default=5, help="f: how long the SMTP server holds the DATA reply")
    ap.add_argument("--pg-rate", type=float, default=20, help="g: registrations per second")
    ap.add_argument("--pg-down", type=float, default=4, help="g: seconds PostgreSQL is down")
    ap.add_argument("--pg-recovery", type=float, default=3, help="g: seconds after the restart by which registrations must succeed")
    ap.add_argument("--max-latency", type=float, default=5, help="g: slowest acceptable answer, seconds")
    ap.add_argument("--account-fail", type=float, default=6, help="i: seconds the SMTP server refuses AUTH")
    ap.add_argument("--rate", type=int, default=20, help="h: MAIL_MAX_RATE")
    ap.add_argument("--rate-count", type=int, default=200, help="h: emails")
    ap.add_argument("--rate-slack", type=int, default=0,
                    help="h: sends allowed above the rate in a 1 s window (timestamps are taken at the SMTP "
                         "server, after a variable network and protocol delay)")
    args = ap.parse_args()
    if not os.environ.get("TEST_DATABASE_URL"):
        fail("TEST_DATABASE_URL is not set")
    for name in ("server", "worker"):
        if not os.access(os.path.join(args.bin_dir, name), os.X_OK):
            fail(f"{args.bin_dir}/{name} is missing (cargo build --bin server --bin worker)")
    run_scenarios(args, SCENARIOS, "faults")


def run_scenarios(args, scenarios, tag):
    """Runs the scenarios `args.scenarios` picks (keys or names; `all`) from `scenarios`
    ((key, name, function) triples, each function taking a `Run`), each in its own `Run`:
    then scans every maildir (links delivered, for the log check) and checks the logs. Prints
    one summary line per scenario and the log tails of failed ones; exits 1 if any failed.
    Shared by this script and .ci/hostile.py."""
    wanted = None if args.scenarios == "all" else set(args.scenarios.split(","))
    chosen = [s for s in scenarios if wanted is None or s[0] in wanted or s[1] in wanted]
    if not chosen:
        fail(f"no scenario matches {args.scenarios!r}")

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    results = []
    t_all = time.monotonic()
    for key, name, fn in chosen:
        log(f"--- scenario {key} ({name}): {fn.__doc__}")
        run = Run(args, key)
        t0 = time.monotonic()
        ok = False
        try:
            summary = fn(run)
            for top in run.tops:
                MailIndex(top.maildir).scan()  # every link delivered, for the log check
            check_logs(run.tops)
            ok = True
        except SystemExit:
            summary = "see above"
        except KeyboardInterrupt:
            run.close(keep=True)
            raise
        except Exception:  # noqa: BLE001 - a broken scenario is a failed scenario
            traceback.print_exc()
            summary = "crashed (traceback above)"
        took = time.monotonic() - t0
        if not ok:
            print(run.tails(), flush=True)
        run.close(keep=args.keep or not ok)
        line = f"{'PASS' if ok else 'FAIL'} {key} {name:<10} {took:5.1f}s  {summary}"
        results.append((ok, line))
        log(line)
    print()
    for _, line in results:
        print(f"[{tag}] {line}")
    failed = sum(not ok for ok, _ in results)
    print(f"{tag}: {len(results) - failed} passed, {failed} failed in {time.monotonic() - t_all:.0f}s", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

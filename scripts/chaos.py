#!/usr/bin/env python3
"""Chaos run of the production topology; started by scripts/chaos.sh (which builds the binaries).

server + worker over PostgreSQL, a redis-server of its own and the test SMTP server
(.ci/smtp_server.py). Registers N addresses at a steady rate through POST / while the worker is
SIGKILLed every few seconds (and started again at once) and Redis is killed and restarted
(empty) once, halfway through. Then waits for the system to settle and reports:

  registered   registrations answered 303 (refused: any other answer or no answer)
  delivered    distinct registered recipients the SMTP server accepted a message for
  lost         registered but never delivered
  duplicates   extra copies (copies beyond the first, summed over recipients)
  delay        registration (POST sent) to the first copy accepted by the SMTP server: max, p50, p99
  logs         server and worker log lines holding a registered address, a confirmation token or
               the SECRET_KEY (topology.log_leaks), shown masked

Exits 1 if anything was lost, a registration was refused or a log line leaked, 0 otherwise. Options can also be
given through the environment (CHAOS_COUNT, CHAOS_RATE, CHAOS_KILL_EVERY, CHAOS_SLOW_FRACTION,
CHAOS_SETTLE_TIMEOUT, CHAOS_DATABASE_URL). The settings the binaries run with are the
production defaults, except those below, each of which the environment may override:
SWEEP_INTERVAL=1s SEND_LEASE=5s RETRY_BASE_DELAY=1s RETRY_MAX_DELAY=10s (a real deployment's
15 s / 2 min / 30 s / 2 h would make the run take many minutes without showing anything else).
"""

import argparse
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ for the shared module
sys.path.insert(0, os.path.join(HERE, "..", ".ci"))
from topology import (  # noqa: E402 - after the path set-up
    Load, MailIndex, Topology, first_accepted, log, log_leaks, set_tag, wait_until,
)

set_tag("chaos")

SETTINGS = {
    "SWEEP_INTERVAL": "1s",
    "SEND_LEASE": "5s",
    "RETRY_BASE_DELAY": "1s",
    "RETRY_MAX_DELAY": "10s",
}
PASSED_THROUGH = SETTINGS.keys() | {
    "WORKER_CONCURRENCY", "RETRY_MAX_ATTEMPTS", "MAIL_MAX_RATE", "SMTP_TIMEOUT", "ACCOUNT_PAUSE",
    "WORKER_SHUTDOWN_TIMEOUT", "RUST_LOG",
}


def env_default(name, default, kind=float):
    value = os.environ.get(name)
    return kind(value) if value else default


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description="Chaos run (see the module docstring).")
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("-n", "--count", type=int, default=env_default("CHAOS_COUNT", 1000, int),
                    help="addresses to register (default 1000)")
    ap.add_argument("--rate", type=float, default=env_default("CHAOS_RATE", 50.0),
                    help="registrations per second (default 50)")
    ap.add_argument("--kill-every", type=float, default=env_default("CHAOS_KILL_EVERY", 3.0),
                    help="seconds between worker SIGKILLs during the registrations (default 3)")
    ap.add_argument("--slow-fraction", type=float, default=env_default("CHAOS_SLOW_FRACTION", 0.2),
                    help="share of `slow` recipients, whose send takes 250 ms (default 0.2)")
    ap.add_argument("--settle-timeout", type=float, default=env_default("CHAOS_SETTLE_TIMEOUT", 300.0),
                    help="longest wait for delivery after the last registration, seconds (default 300)")
    ap.add_argument("--no-redis-restart", action="store_true", help="skip the Redis restart")
    ap.add_argument("--keep", action="store_true", help="keep the logs of a passing run too")
    args = ap.parse_args()
    admin = (os.environ.get("CHAOS_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
             or "postgres://postgres@127.0.0.1:5432/postgres")

    env = {**SETTINGS, **{k: v for k, v in os.environ.items() if k in PASSED_THROUGH and v}}
    env.setdefault("RUST_LOG", "info")

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = tempfile.mkdtemp(prefix="chaos-")
    top = None
    code = 1
    try:
        top = Topology(args.bin_dir, tmp, env=env, admin_url=admin, db_prefix="chaos")
        index = MailIndex(top.maildir)
        tag = uuid.uuid4().hex[:6]
        rng = random.Random(tag)
        addrs = [f"{'slow' if rng.random() < args.slow_fraction else 'chaos'}-{i}-{tag}@example.com"
                 for i in range(args.count)]
        shown = " ".join(f"{k}={v}" for k, v in sorted(env.items()))
        log(f"{args.count} registrations at {args.rate:g}/s, worker SIGKILLed every {args.kill_every:g}s, "
            f"Redis restarted {'never' if args.no_redis_restart else 'once'}; {shown}; logs in {tmp}")
        top.start_worker()
        t0 = time.monotonic()
        load = Load(top.web_port, addrs, args.rate, timeout=30, threads=128).start()
        kills = 0
        redis_at = None if args.no_redis_restart else t0 + args.count / args.rate / 2
        next_kill = t0 + args.kill_every
        while not load.done.is_set():
            now = time.monotonic()
            if redis_at is not None and now >= redis_at:
                top.stop_redis(signal.SIGKILL)
                top.start_redis()
                log(f"t={now - t0:5.1f}s Redis killed and restarted (empty)")
                redis_at = None
            if now >= next_kill:
                top.worker.stop(signal.SIGKILL)
                top.start_worker()
                kills += 1
                next_kill += args.kill_every
            time.sleep(0.05)
        results = load.wait()
        load_s = time.monotonic() - t0
        registered = [r for r in results if r["registered"]]
        refused = [r for r in results if not r["registered"]]
        log(f"t={load_s:5.1f}s registrations done: {len(registered)} answered 303, {len(refused)} refused; "
            f"{kills} worker kills")
        for r in refused[:5]:
            log(f"  refused: status={r['status']} error={r['error']}")

        wanted = [r["address"].lower() for r in registered]

        def settled():
            copies = index.copies(wanted)
            if any(v == 0 for v in copies.values()):
                return None
            return top.sql("select count(*) from email_messages where status not in ('sent', 'dead')") == "0"

        try:
            wait_until("every registered address delivered", settled, args.settle_timeout, interval=0.5)
        except SystemExit:
            log("not settled within the timeout; reporting what arrived")
        time.sleep(2)  # sends still in flight
        settle_s = time.monotonic() - t0 - load_s
        copies = index.copies(wanted)
        delivered = sum(1 for v in copies.values() if v > 0)
        lost = [a for a, v in copies.items() if v == 0]
        duplicates = sum(v - 1 for v in copies.values() if v > 1)
        first = first_accepted(top.maildir)
        delays = [(first[r["address"].lower()] - r["sent"]).total_seconds()
                  for r in registered if r["address"].lower() in first]
        states = top.sql("select status, count(*) from email_messages group by status order by 1")
        attempts = top.sql("select max(attempts), count(*) filter (where attempts > 1) from email_messages")
        worker_code = top.worker.stop(signal.SIGTERM)
        index.scan()  # every link delivered, for the log check
        leaks, checked = log_leaks([top])
        print()
        print(f"chaos: registered={len(registered)} delivered={delivered} lost={len(lost)} "
              f"duplicates={duplicates} max_delay={max(delays) if delays else float('nan'):.2f}s")
        conc = int(env.get("WORKER_CONCURRENCY", "4"))
        print(f"  duplicates bound (sends in flight at the kills): {kills} kills x WORKER_CONCURRENCY {conc} "
              f"= {kills * conc}")
        print(f"  requests={len(results)} refused={len(refused)} in {load_s:.1f}s "
              f"({len(results) / load_s:.1f}/s); worker SIGKILLs={kills}; Redis restarts="
              f"{0 if args.no_redis_restart else 1}; settled {settle_s:.1f}s after the last registration")
        if delays:
            print(f"  delivery delay: p50={statistics.median(delays):.2f}s p99={percentile(delays, 99):.2f}s "
                  f"max={max(delays):.2f}s")
        print(f"  rows by status: {states.replace(chr(10), ', ')}; max attempts, rows attempted more than once: "
              f"{attempts}; last worker exited {worker_code} on SIGTERM")
        if lost:
            print(f"  lost (first 10): {lost[:10]}")
        print(f"  logs: {len(leaks)} line(s) with an address, a token or a secret ({checked})")
        for line in leaks:
            print(f"    {line}")
        ok = not lost and not refused and not leaks
        print(f"chaos: {'PASS' if ok else 'FAIL'}", flush=True)
        code = 0 if ok else 1
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    except SystemExit as e:
        if top is not None:
            print(top.tails())
        code = e.code if isinstance(e.code, int) else 1
    finally:
        if top is not None:
            top.close()
        if code == 0 and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    return code


if __name__ == "__main__":
    sys.exit(main())

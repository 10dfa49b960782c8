#!/usr/bin/env python3
"""Many processes, one record: the release binaries as several servers and several workers over
one PostgreSQL database and one Redis, and the same flow through Redis Sentinel while its master
is killed. Every scenario starts its own topology (`.ci/topology.py`), checks that no log line
holds an address, a token or a secret, and prints one summary line.

  many      3 servers and 3 workers: N registrations (2,000 by default) spread over the servers,
            each delivered exactly once (the SMTP server's maildir), every row `sent`, and a
            sample of the links confirmed through a server other than the one registered on.
  kill      3 servers and 3 workers (WORKER_CONCURRENCY=4, SEND_LEASE=3s, `slow` recipients
            at 250 ms per send): one worker is SIGKILLed mid-run and NOT restarted; the other
            two take its jobs over: every email delivered, duplicates <= WORKER_CONCURRENCY.
  limit     3 servers with RATE_LIMIT_PER_IP=10 and REDIS_URL: 30 form posts from one client,
            round robin over the servers, get exactly 10 answers 303 and 20 answers 429 (one
            allowance in Redis, not one per server); the limit's keys expire.
  sentinel  Redis as a master, a replica and three Sentinels, REDIS_URL=redis-sentinel://...:
            registrations at a steady rate while the master is SIGKILLed; the Sentinels promote
            the replica and every registration is answered 303 and delivered (duplicates <=
            WORKER_CONCURRENCY), later ones too.

Usage: python3 .ci/scale.py --bin-dir target/release [--scenarios many,kill,limit,sentinel]
                            [--count 2000]
Needs: TEST_DATABASE_URL (an admin URL of a PostgreSQL server), `redis-server` and `redis-cli`,
aiosmtpd. Exits non-zero on any failure.
"""

import argparse
import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ for the shared module
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import (  # noqa: E402 - after the path set-up
    Load, MailIndex, Proc, Topology, addresses, check_logs, confirm, fail, free_port, log,
    post_registration, set_tag, tally, wait_settled, wait_until,
)

set_tag("scale")

FAST = {
    "SWEEP_INTERVAL": "500ms",
    "SEND_LEASE": "3s",
    "RETRY_BASE_DELAY": "1s",
    "RETRY_MAX_DELAY": "4s",
    "WORKER_CONCURRENCY": "4",
}


def check(condition, message):
    if not condition:
        fail(message)


def spread(ports, addrs, threads=24):
    """Registers every address, the i-th through ports[i % len(ports)], from `threads` clients at
    once; returns [(address, port, status, registered)]."""
    def one(i_addr):
        i, address = i_addr
        port = ports[i % len(ports)]
        status, headers, _ = post_registration(port, address)
        return address, port, status, status == 303 and "flash=registered" in headers.get("set-cookie", "")
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, enumerate(addrs)))


def many_processes(tmp, bin_dir, env):
    """A topology with 3 servers and 3 workers; returns (topology, server ports)."""
    top = Topology(bin_dir, tmp, env=env, db_prefix="scale")
    ports = [top.web_port, top.add_server(), top.add_server()]
    for _ in range(3):
        top.start_worker()
    return top, ports


def scenario_many(args, tmp):
    top, ports = many_processes(tmp, args.bin_dir, {"SWEEP_INTERVAL": "1s"})
    try:
        index = MailIndex(top.maildir)
        addrs = addresses("many", args.count)
        t0 = time.monotonic()
        results = spread(ports, addrs)
        took = time.monotonic() - t0
        bad = [r for r in results if not r[3]]
        check(not bad, f"{len(bad)} registrations not answered 303: {[(r[1], r[2]) for r in bad[:5]]}")
        per_server = {p: sum(1 for r in results if r[1] == p) for p in ports}
        copies = wait_settled(top, index, addrs, 300)
        delivered, dupes = tally(copies)
        check(delivered == len(addrs), f"delivered {delivered} of {len(addrs)}")
        check(dupes == 0, f"{dupes} duplicates without any fault")
        rows = top.sql("select count(*), count(*) filter (where email_sent) from users")
        check(rows == f"{len(addrs)}|{len(addrs)}", f"users (all, email_sent): {rows}")
        sent = top.sql("select status, count(*) from email_messages group by status")
        check(sent == f"sent|{len(addrs)}", f"messages by status: {sent!r}")
        # Which worker sent what: every worker took a share.
        by_worker = worker_shares(top)
        check(len(by_worker) == 3 and min(by_worker) > 0, f"sends per worker: {by_worker}")
        # A link works on any server: confirm a sample through the next server round.
        sample = addrs[:: max(1, len(addrs) // 30)]
        links = index.scan()
        for i, address in enumerate(sample):
            confirm(ports[(i + 1) % len(ports)], links[address.lower()][0])
        confirmed = top.sql("select count(*) from users where confirmed")
        check(confirmed == str(len(sample)), f"{confirmed} confirmed, {len(sample)} expected")
        check_logs([top])
        return (f"{len(addrs)} registrations over 3 servers ({sorted(per_server.values())}) in {took:.1f}s, "
                f"delivered exactly once each by 3 workers (sends {sorted(by_worker)}), "
                f"{len(sample)} links confirmed on another server")
    finally:
        top.close()


def worker_shares(top):
    """Emails sent per worker process, from their `Job OK: sent` log lines."""
    counts = []
    for w in top.workers:
        try:
            with open(w.log_path, errors="replace") as f:
                counts.append(sum(1 for line in f if "Job OK: sent" in line))
        except OSError:
            counts.append(0)
    return counts


def scenario_kill(args, tmp):
    conc = int(FAST["WORKER_CONCURRENCY"])
    top, ports = many_processes(tmp, args.bin_dir, FAST)
    try:
        index = MailIndex(top.maildir)
        n = args.kill_count
        addrs = addresses("slow-scale", n)
        results = spread(ports, addrs, threads=8)
        check(all(r[3] for r in results), "a registration was not answered 303")
        wait_until("the first emails", lambda: tally(index.copies(addrs))[0] >= n // 4, 120, 0.02)
        victim = top.workers[1]
        victim.stop(signal.SIGKILL)
        before = tally(index.copies(addrs))[0]
        in_flight = int(top.sql("select count(*) from email_messages where status = 'sending'"))
        copies = wait_settled(top, index, addrs, 180)
        delivered, dupes = tally(copies)
        reclaimed = int(top.sql("select count(*) from email_messages where attempts > 1"))
        check(delivered == n, f"delivered {delivered} of {n}")
        check(dupes <= conc, f"{dupes} duplicates, more than WORKER_CONCURRENCY={conc}")
        check(all(w.alive() for w in top.workers if w is not victim), "a surviving worker exited")
        check_logs([top])
        return (f"{n} slow emails, one of 3 workers SIGKILLed after {before} sent ({in_flight} rows 'sending'), "
                f"not restarted: delivered {delivered}/{n}, duplicates {dupes} (limit {conc}), {reclaimed} re-claimed")
    finally:
        top.close()


def scenario_limit(args, tmp):
    per_minute = 10
    posts = 30
    top, ports = many_processes(tmp, args.bin_dir, {"RATE_LIMIT_PER_IP": str(per_minute)})
    try:
        addrs = addresses("limit", posts)
        t0 = time.monotonic()
        statuses = [post_registration(ports[i % 3], a)[0] for i, a in enumerate(addrs)]
        took = time.monotonic() - t0
        allowed = statuses.count(303)
        refused = statuses.count(429)
        # One more post may be allowed per 6 s (60 s / 10) the posts took.
        refill = int(took // (60 / per_minute))
        check(allowed + refused == posts, f"answers other than 303/429: {sorted(set(statuses))}")
        check(per_minute <= allowed <= per_minute + refill,
              f"{allowed} of {posts} posts allowed over 3 servers in {took:.1f}s: the limit is "
              f"{per_minute} per client, not {per_minute} per server")
        keys = top.redis_cli("--scan", "--pattern", "confirm:limit:form:*").split()
        check(keys == ["confirm:limit:form:127.0.0.1"], f"limit keys in Redis: {keys}")
        ttl = int(top.redis_cli("pttl", keys[0]))
        check(0 < ttl <= 60_000, f"the limit's key lives {ttl} ms")
        users = int(top.sql("select count(*) from users"))
        check(users == allowed, f"{users} users stored for {allowed} allowed posts")
        check_logs([top])
        return (f"{posts} posts from one client over 3 servers in {took:.1f}s: {allowed} allowed, "
                f"{refused} refused 429 (RATE_LIMIT_PER_IP={per_minute}; without sharing up to "
                f"{3 * per_minute}); one key in Redis, expiring in {ttl} ms")
    finally:
        top.close()


class Sentinels:
    """A Redis master, one replica and three Sentinels watching them, on free loopback ports."""

    NAME = "confirm"

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        # Their own directory: a replica writes the RDB of its full sync to its working directory.
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp]
        self.master = self._start("redis-master", ["redis-server", "--port", str(self.master_port), *common])
        self.replica = self._start("redis-replica", [
            "redis-server", "--port", str(self.replica_port), *common,
            "--replicaof", "127.0.0.1", str(self.master_port)])
        for port in (self.master_port, self.replica_port):
            wait_until(f"redis on {port}", lambda port=port: self.cli(port, "ping") == "PONG", 20)
        wait_until("the replica in sync",
                   lambda: "master_link_status:up" in self.cli(self.replica_port, "info", "replication"), 20)
        for i, port in enumerate(self.sentinel_ports):
            conf = os.path.join(tmp, f"sentinel-{i}.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\nsentinel resolve-hostnames no\n"
                        f"sentinel monitor {self.NAME} 127.0.0.1 {self.master_port} 2\n"
                        f"sentinel down-after-milliseconds {self.NAME} 1000\n"
                        f"sentinel failover-timeout {self.NAME} 5000\n"
                        f"sentinel parallel-syncs {self.NAME} 1\n")
            self._start(f"sentinel-{i}", ["redis-server", conf, "--sentinel"])
        for port in self.sentinel_ports:
            wait_until(f"sentinel on {port} seeing the replica and the others", lambda port=port: (
                self._field(port, "num-other-sentinels") == "2"
                and self._field(port, "num-slaves") == "1"), 30)

    def _start(self, name, cmd):
        proc = Proc(name, cmd, os.environ.copy(), self.tmp)
        self.procs.append(proc)
        return proc

    @staticmethod
    def cli(port, *args):
        return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                              text=True).stdout.strip()

    def _field(self, port, name):
        lines = self.cli(port, "sentinel", "master", self.NAME).split("\n")
        return lines[lines.index(name) + 1] if name in lines else None

    def url(self):
        first, *others = self.sentinel_ports
        nodes = "".join(f"&node=127.0.0.1:{p}" for p in others)
        return f"redis-sentinel://127.0.0.1:{first}/0?sentinelServiceName={self.NAME}{nodes}"

    def master_addr(self):
        return self.cli(self.sentinel_ports[0], "sentinel", "get-master-addr-by-name", self.NAME).split()

    def close(self):
        for proc in self.procs:
            proc.stop()


def scenario_sentinel(args, tmp):
    conc = int(FAST["WORKER_CONCURRENCY"])
    sentinels = Sentinels(tmp)
    top = None
    try:
        top = Topology(args.bin_dir, tmp, env=FAST, db_prefix="scale", redis_url=sentinels.url())
        top.start_worker()
        top.start_worker()
        index = MailIndex(top.maildir)
        rate = 40
        addrs = addresses("sentinel", rate * 12)
        load = Load(top.web_port, addrs, rate).start()
        time.sleep(3)
        old_master = sentinels.master_addr()
        sentinels.master.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until("a replica promoted by the Sentinels",
                   lambda: sentinels.master_addr() == ["127.0.0.1", str(sentinels.replica_port)], 30)
        failover = time.monotonic() - killed_at
        results = load.wait(timeout=120)
        bad = [r for r in results if not r["registered"]]
        check(not bad, f"{len(bad)} of {len(results)} registrations not answered 303: "
                       f"{[(r['status'], r['error']) for r in bad[:5]]}")
        slowest = max(r["elapsed"] for r in results)
        after = addresses("sentinel-after", 20)
        spread([top.web_port], after, threads=4)
        copies = wait_settled(top, index, addrs + after, 180)
        delivered, dupes = tally(copies)
        check(delivered == len(addrs) + len(after), f"delivered {delivered} of {len(addrs) + len(after)}")
        check(dupes <= conc, f"{dupes} duplicates, more than WORKER_CONCURRENCY={conc}")
        role = sentinels.cli(sentinels.replica_port, "role").split("\n")[0]
        check(role == "master", f"the promoted replica says it is {role!r}")
        stream = sentinels.cli(sentinels.replica_port, "exists", "confirm:jobs")
        check_logs([top])
        return (f"{len(results)} registrations at {rate}/s; master {':'.join(old_master)} SIGKILLed, replica "
                f"promoted after {failover:.1f}s: all answered 303 (slowest {slowest * 1000:.0f} ms), "
                f"{delivered} delivered incl. {len(after)} after the failover, duplicates {dupes} "
                f"(limit {conc}); the stream lives on the new master: {stream == '1'}")
    finally:
        if top is not None:
            top.close()
        sentinels.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--scenarios", default="many,kill,limit,sentinel")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--kill-count", type=int, default=120)
    args = ap.parse_args()
    if not os.environ.get("TEST_DATABASE_URL"):
        fail("TEST_DATABASE_URL is not set")
    failed = []
    for name in args.scenarios.split(","):
        log(f"scenario {name}")
        with tempfile.TemporaryDirectory(prefix=f"scale-{name}-") as tmp:
            try:
                summary = globals()[f"scenario_{name}"](args, tmp)
                log(f"PASS {name}: {summary}")
            except SystemExit as e:
                failed.append(name)
                log(f"FAIL {name}: {e}")
                for path in sorted(os.listdir(tmp)):
                    if path.endswith(".log") and ("server" in path or "worker" in path or "sentinel" in path):
                        with open(os.path.join(tmp, path), errors="replace") as f:
                            print(f"--- {path} ---\n{''.join(f.readlines()[-20:])}")
            except Exception:  # noqa: BLE001 - reported, then the run fails
                failed.append(name)
                traceback.print_exc()
    if failed:
        fail(f"failed: {', '.join(failed)}")
    print("scale: all scenarios passed")


if __name__ == "__main__":
    main()

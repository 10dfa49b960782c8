#!/usr/bin/env python3
"""A real SMTP server for the mailer crate's integration tests (crates/mailer/tests/smtp.rs), the
end-to-end check (.ci/e2e.py), the fault tests (.ci/faults.py) and the chaos run (scripts/chaos.sh).

Usage:
    python3 -m pip install aiosmtpd
    python3 .ci/smtp_server.py --host 127.0.0.1 --port 2525 --maildir DIR \
        [--flaky-failures 2] [--hang-seconds 10] [--no-pipelining]
    TEST_SMTP_URL=smtp://127.0.0.1:2525 TEST_SMTP_MAILDIR=DIR cargo test -p mailer

    python3 .ci/smtp_server.py ... --tls-cert localhost.pem --tls-key localhost.key \
        [--tls starttls|implicit]

Behaviour (aiosmtpd, ESMTP). Without --tls-cert there is no TLS: STARTTLS is never offered.
With --tls-cert and --tls-key (a certificate made by .ci/make-test-ca):
  * --tls starttls (the default): STARTTLS is offered and required (`require_starttls`: every
    command but EHLO, STARTTLS, NOOP and QUIT is refused with 530 before it), and AUTH is
    offered and accepted only after it (`auth_require_tls`): a 587-style submission port;
  * --tls implicit: TLS from the first byte (SMTPS, a 465-style port), AUTH offered at once.
Everything below holds in every mode.
  * PIPELINING (RFC 2920) is offered in the EHLO reply, as postfix offers it, unless
    --no-pipelining is given: the mailer then sends a message's content in the same write as
    the next message's MAIL, RCPT and DATA, and aiosmtpd reads them in order.
  * Every accepted message is stored in the Maildir DIR (created if missing), one file per
    message in DIR/new/, holding a `Return-Path: <envelope sender>` line (as a final-delivery
    MTA adds it) and then the raw RFC 5322 message exactly as received after DATA
    (CRLF line endings; no header is added).
  * Failures are scripted per recipient (checked at RCPT TO, case-insensitive), first by a list:
      DIR/reject.txt  ->  a recipient listed there (one address per line, lower-case; blank lines
                          and lines starting with # are ignored) gets 550 5.1.1 No such user.
                          The file is re-read on every RCPT, so removing a line "fixes" the
                          mailbox; a missing file rejects nobody.
    then by the local part's prefix:
      tempfail...  ->  451 4.3.0 Try again later (always)
      flaky421...  ->  421 4.7.0 Service not available, closing transmission channel, and the
                       server closes the connection, for the first K delivery attempts (RCPTs) of
                       each distinct recipient; accepted from the K+1st on
      flaky...     ->  451 4.3.0 Try again later for the first K attempts of each distinct
                       recipient, then accepted (K = --flaky-failures, default 2)
      reject...    ->  550 5.1.1 No such user (always)
      slow...      ->  accepted, but the reply to DATA takes 250 ms (sends stay in flight long
                       enough for a test to kill the sender mid-send)
      hang...      ->  "timeout after DATA": on the first delivery of each distinct recipient the
                       message is stored as soon as its content has arrived (as a real server
                       that has queued it), but the final reply to DATA is held back for
                       --hang-seconds (default 10), past the client's timeout; if the client
                       is still connected it then gets 250. A client that gives up and retries
                       gets an immediate 250 on its next DATA, so the recipient holds two copies.
    anything else is accepted.
  * DIR/attempts.log gets one line per RCPT and per DATA outcome (one line per recipient of the
    DATA), appended and flushed at once, so tests can check retry spacing and send rates:
        2025-01-31T12:00:00.123Z RCPT 451 flaky-1@example.com
        2025-01-31T12:00:00.130Z DATA 250 slow-2@example.com
        2025-01-31T12:00:01.002Z DATA 250 hang-3@example.com hang=10s
    UTC timestamp with milliseconds, stage (RCPT or DATA), reply code, recipient (as sent by the
    client), and an optional note. For `hang` the DATA line is written when the message is
    stored, that is when the reply starts to be held back. A DATA 250 line is one accepted send.
  * AUTH PLAIN and LOGIN are offered even though the connection is not encrypted, the way a
    misconfigured or hostile server would; any credentials are accepted, and the user name of
    every AUTH attempt is appended (one per line) to DIR/auth.log, so a test can prove that a
    client configured with credentials never sent them in clear text. Authentication is never
    required. While a file DIR/auth_fail exists, every AUTH is refused with
    535 5.7.8 Authentication credentials invalid (an account-level failure; the attempt is still
    logged); delete the file to accept credentials again.

It prints "smtp_server listening on HOST:PORT" once ready and stops on SIGINT or SIGTERM.
"""

import argparse
import asyncio
import datetime
import mailbox
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

TEMPFAIL = "451 4.3.0 Try again later"
CLOSING = "421 4.7.0 Service not available, closing transmission channel"
NO_SUCH_USER = "550 5.1.1 No such user"


def utc_now() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Handler:
    def __init__(self, maildir: str, flaky_failures: int, hang_seconds: float,
                 pipelining: bool = True) -> None:
        self.pipelining = pipelining
        # Maildir(create=True) only creates tmp/new/cur when the directory itself is new.
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self.maildir = mailbox.Maildir(maildir, create=False)
        self.reject_path = os.path.join(maildir, "reject.txt")
        self.attempts = open(os.path.join(maildir, "attempts.log"), "a", encoding="utf-8")
        self.lock = threading.Lock()
        self.flaky_failures = flaky_failures
        self.hang_seconds = hang_seconds
        self.rcpt_counts: dict[str, int] = {}
        self.hung: set[str] = set()

    def record(self, stage: str, reply: str, address: str, note: str = "") -> None:
        line = f"{utc_now()} {stage} {reply[:3]} {address}{' ' + note if note else ''}\n"
        with self.lock:
            self.attempts.write(line)
            self.attempts.flush()

    def rejected(self, address: str) -> bool:
        try:
            with open(self.reject_path, encoding="utf-8") as f:
                listed = {line.strip().lower() for line in f}
        except FileNotFoundError:
            return False
        return address.lower() in listed

    def rcpt_reply(self, server, address: str) -> str:
        key = address.lower()
        local = key.rsplit("@", 1)[0]
        if self.rejected(key):
            return NO_SUCH_USER
        if local.startswith("tempfail"):
            return TEMPFAIL
        if local.startswith("flaky"):
            seen = self.rcpt_counts.get(key, 0) + 1
            self.rcpt_counts[key] = seen
            if seen <= self.flaky_failures:
                if local.startswith("flaky421"):
                    # Reply, then drop the connection (the reply is written before the close).
                    transport = server.transport
                    if transport is not None:
                        server.loop.call_soon(transport.close)
                    return CLOSING
                return TEMPFAIL
        if local.startswith("reject"):
            return NO_SUCH_USER
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # With this hook aiosmtpd leaves recording the client's name to us.
        session.host_name = hostname
        if not self.pipelining:
            return responses
        return responses[:-1] + ["250-PIPELINING", responses[-1]]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_reply(server, address)
        self.record("RCPT", reply, address)
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        locals_ = [rcpt.rsplit("@", 1)[0].lower() for rcpt in envelope.rcpt_tos]
        hang = [r for r, local in zip(envelope.rcpt_tos, locals_)
                if local.startswith("hang") and r.lower() not in self.hung]
        if any(local.startswith("slow") for local in locals_):
            await asyncio.sleep(0.25)
        # As a final-delivery MTA does (RFC 5321 section 4.4), the envelope sender becomes the
        # Return-Path header on top. Maildir.add writes under tmp/ and renames into new/:
        # readers never see half a file.
        content = envelope.original_content or envelope.content
        return_path = f"Return-Path: <{envelope.mail_from or ''}>\r\n".encode()
        self.maildir.add(return_path + content)
        reply = "250 2.0.0 Message accepted for delivery"
        for rcpt in envelope.rcpt_tos:
            self.record("DATA", reply, rcpt, f"hang={self.hang_seconds:g}s" if rcpt in hang else "")
        if hang:
            self.hung.update(r.lower() for r in hang)
            # Stored already; only the reply is late. If the client hangs up meanwhile, aiosmtpd
            # cancels this coroutine, which is fine: the message is in the maildir either way.
            await asyncio.sleep(self.hang_seconds)
        return reply


class Authenticator:
    def __init__(self, log_path: str, fail_flag: str) -> None:
        self.log_path = log_path
        self.fail_flag = fail_flag
        self.lock = threading.Lock()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
        else:
            login = "<unknown>"
        with self.lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"{login}\n")
        return AuthResult(success=not os.path.exists(self.fail_flag))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--flaky-failures", type=int, default=2,
                        help="failed attempts per flaky/flaky421 recipient before it is accepted")
    parser.add_argument("--hang-seconds", type=float, default=10.0,
                        help="how long the reply to DATA is held back for hang recipients")
    parser.add_argument("--no-pipelining", action="store_true",
                        help="do not offer PIPELINING in the EHLO reply")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve TLS (see --tls)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls", choices=("starttls", "implicit"), default="starttls",
                        help="with --tls-cert: STARTTLS required (default) or implicit TLS")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    tls = {"auth_require_tls": False}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls == "starttls":
            tls = {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
        else:
            tls = {"ssl_context": context, "auth_require_tls": False}

    os.makedirs(args.maildir, exist_ok=True)
    controller = Controller(
        Handler(args.maildir, args.flaky_failures, args.hang_seconds, not args.no_pipelining),
        hostname=args.host,
        port=args.port,
        server_hostname="smtp-test.localhost",
        authenticator=Authenticator(os.path.join(args.maildir, "auth.log"),
                                    os.path.join(args.maildir, "auth_fail")),
        auth_required=False,
        **tls,
    )
    controller.start()
    print(f"smtp_server listening on {args.host}:{args.port}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

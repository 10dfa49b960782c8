#!/usr/bin/env python3
"""A real SMTP server for the mailer crate's integration tests (crates/mailer/tests/smtp.rs).

Usage:
    python3 -m pip install aiosmtpd
    python3 .ci/smtp_server.py --host 127.0.0.1 --port 2525 --maildir DIR
    TEST_SMTP_URL=smtp://127.0.0.1:2525 TEST_SMTP_MAILDIR=DIR cargo test -p mailer

Behaviour (aiosmtpd, ESMTP, no TLS: STARTTLS is never offered):
  * Every accepted message is stored in the Maildir DIR (created if missing), one file per
    message in DIR/new/, holding the raw RFC 5322 message exactly as received after DATA
    (CRLF line endings; no header is added).
  * Failures are scripted by the recipient's local part (checked at RCPT TO, case-insensitive):
      tempfail...  ->  451 4.3.0 Try again later
      reject...    ->  550 5.1.1 No such user
      slow...      ->  accepted, but the reply to DATA takes 250 ms (sends stay in flight long
                       enough for a test to kill the sender mid-send)
    anything else is accepted.
  * AUTH PLAIN and LOGIN are offered even though the connection is not encrypted, the way a
    misconfigured or hostile server would; any credentials are accepted, and the user name of
    every AUTH attempt is appended (one per line) to DIR/auth.log, so a test can prove that a
    client configured with credentials never sent them in clear text. Authentication is never
    required.

It prints "smtp_server listening on HOST:PORT" once ready and stops on SIGINT or SIGTERM.
"""

import argparse
import asyncio
import mailbox
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, maildir: str) -> None:
        # Maildir(create=True) only creates tmp/new/cur when the directory itself is new.
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self.maildir = mailbox.Maildir(maildir, create=False)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rsplit("@", 1)[0].lower()
        if local.startswith("tempfail"):
            return "451 4.3.0 Try again later"
        if local.startswith("reject"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(rcpt.rsplit("@", 1)[0].lower().startswith("slow") for rcpt in envelope.rcpt_tos):
            await asyncio.sleep(0.25)
        # Maildir.add writes under tmp/ and renames into new/: readers never see half a file.
        self.maildir.add(envelope.original_content or envelope.content)
        return "250 2.0.0 Message accepted for delivery"


class Authenticator:
    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self.lock = threading.Lock()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
        else:
            login = "<unknown>"
        with self.lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"{login}\n")
        return AuthResult(success=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()

    os.makedirs(args.maildir, exist_ok=True)
    controller = Controller(
        Handler(args.maildir),
        hostname=args.host,
        port=args.port,
        server_hostname="smtp-test.localhost",
        authenticator=Authenticator(os.path.join(args.maildir, "auth.log")),
        auth_require_tls=False,
        auth_required=False,
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

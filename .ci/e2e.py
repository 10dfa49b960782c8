#!/usr/bin/env python3
"""End-to-end check of the production topology, with real processes and real services.

`server` and `worker` run as separate processes over PostgreSQL, a Redis of our own (so it can be
restarted), a real SMTP server (.ci/smtp_server.py, aiosmtpd) and moto's SES v2 server. Scenarios:

  smtp     N registrations through POST / reach the SMTP server; every link confirms its user
           (users.confirmed and users.email_sent true for all).
  code     N/10 registrations confirmed by the six-digit code of their email, typed with the
           address at /code on a client that never saw the registration (a wrong code: 422).
  correct  a mistyped address corrected on the thank-you page (its form holds the address just
           registered): the right one is registered, the mistyped one gets no reminder.
  lang     a registration from a zh-CN browser gets its email in Chinese; a resend asked for from
           an English browser (whose pages are English) is in Chinese too, and its link confirms.
  kill     the worker is SIGKILLed while sending and started again: every email is still
           delivered, duplicates at most the sends in flight at the kill.
  redis    Redis is restarted (empty) under a running worker: it recovers by itself and later
           registrations are delivered.
  ses      the same flow with MAILER=ses against moto: moto records the emails, their links work.
  feedback SES bounce and complaint notifications (SNS-wrapped, SES's documented format) put on
           moto's SQS queue (SES_FEEDBACK_QUEUE_URL) for emails the worker sent through moto's
           SES: a permanent bounce and a complaint mark their messages and suppress the
           mailboxes (a later registration owes nothing), a transient bounce is only recorded,
           a duplicate changes nothing, a malformed body goes to the dead-letter queue by the
           redrive policy while the loop goes on; the dashboard shows the feedback and the
           suppressions, the worker's /metrics counts feedback_total{type}.
  accounts registration with a password, confirmed, signed in from two browsers; the reset by
           email (the same answer for an unknown address; opening the link changes nothing; the
           link refused the second time), both old sessions ended, the old password refused,
           the new one accepted, the notice received; two-factor sign-in enabled from the QR
           page's secret and a first code, then a wrong code, a reused code and a reused
           recovery code refused, a code and a recovery code accepted; the medians of wrong
           sign-ins for known and unknown addresses (12 each, distinct client IPs) within 25%;
           brute force refused with 429 per account and per IP (.ci/accounts_e2e.py).
  json     server and worker restarted with LOG_FORMAT=json (they stay so for the scenarios
           after it): every log line is a JSON object, and a registration's request id (one
           passed in X-Request-Id, one made by the server) is on the server's registration line
           and on the worker's send line, with the same message id and the provider's message id.

With --dkim rsa|ed25519, a DKIM key of that type is made for the run (openssl), the binaries get
DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE, and at the end every message the SMTP server accepted
must pass dkimpy's verification against the record `worker dkim-record` prints.

At the end every server and worker log is scanned for the registered addresses, the
confirmation tokens and the SECRET_KEY (`topology.check_logs`): any one found fails the run.

Usage: python3 .ci/e2e.py --bin-dir target/debug [--count 200] [--scenarios smtp,code,correct,lang,accounts,json,kill,redis,ses,feedback]
                          [--redis-tls-dir DIR] [--dkim rsa|ed25519]
                          [--redis-url redis-cluster://...] [--db-port PGBOUNCER_PORT]

With --redis-url the run uses that Redis (a Cluster, a Sentinel set) instead of starting its own
(the `redis` scenario, which restarts it, is then refused); with --db-port the binaries reach
PostgreSQL through a PgBouncer on that port (`server migrate` goes straight to PostgreSQL).
Needs: TEST_DATABASE_URL (an admin URL of a PostgreSQL server), TEST_SES_ENDPOINT (moto), the
`redis-server` binary, Python packages aiosmtpd and boto3 (with --dkim: dkimpy, pynacl, and
`openssl`). Exits non-zero on any failure.
"""

import argparse
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

sys.dont_write_bytecode = True  # no __pycache__ for the shared module
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import (  # noqa: E402 - after the path set-up
    LINK, Topology, check_logs, confirm, csrf, fail, json_lines_of_request, json_log_lines, log,
    text_of,
    codes_at, free_port, maildir_messages, post_form, psql, register, remember, request,
    service_procs, set_tag, utc_now, wait_until,
)

set_tag("e2e")


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


def scenario_code(top, n):
    """The six-digit code confirms on another client: a browser that never saw the
    registration (no cookie but its own CSRF one) types the address and the code at /code."""
    addresses = [f"code-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(n)]
    for a in addresses:
        register(top.web_port, a)
    got = wait_until(f"{n} emails with a code", lambda: (
        lambda c: c if all(a in c for a in addresses) else None)(codes_at(top.maildir)), 60)
    # A fresh client: its own CSRF cookie and token from the code page, nothing else.
    status, headers, body = request(top.web_port, "GET", "/code")
    cookie = re.search(r"(csrf=[A-Za-z0-9_-]+)", headers.get("set-cookie", "")).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)
    if status != 200 or 'name="email"' not in body:
        fail(f"/code answered {status} without the address field")
    wrong = addresses[0]
    bad = "000000" if got[wrong][0] != "000000" else "000001"
    form = urllib.parse.urlencode({"email": wrong, "code": bad, "csrf_token": token})
    status, _, body = request(top.web_port, "POST", "/code", form, cookie=cookie)
    if status != 422 or "That code does not work." not in body:
        fail(f"a wrong code answered {status}")
    for a in addresses:
        form = urllib.parse.urlencode({"email": a, "code": got[a][0], "csrf_token": token})
        status, headers, _ = request(top.web_port, "POST", "/code", form, cookie=cookie)
        if status != 303 or "flash=confirmed" not in headers.get("set-cookie", ""):
            fail(f"the code answered {status} {headers.get('set-cookie')!r}")
    quoted = ",".join("'" + a + "'" for a in addresses)
    confirmed = top.sql(f"select count(*) from users where confirmed and email in ({quoted})")
    if confirmed != str(n):
        fail(f"{confirmed} of {n} accounts confirmed by their codes")
    log(f"code: {n} accounts confirmed by the code from their email on a client without the "
        f"registration's cookie; a wrong code answered 422")


def emails_to(maildir, address):
    """(subject, text) of every message to `address` at the SMTP server, oldest first."""
    new = os.path.join(maildir, "new")
    found = []
    for name in sorted(os.listdir(new)) if os.path.isdir(new) else []:
        path = os.path.join(new, name)
        with open(path, "rb") as f:
            msg, text = text_of(f.read())
        if str(msg["To"]).strip().lower() == address.lower():
            found.append((os.path.getmtime(path), str(msg["Subject"]), text))
    return [(subject, text) for _, subject, text in sorted(found)]


def scenario_lang(top, n):
    """The account's language: chosen by the registering browser, kept for every email to it."""
    top.server.stop(signal.SIGTERM)
    top.start_server(RESEND_COOLDOWN="1s")
    address = f"lang-{uuid.uuid4().hex[:6]}@example.com"
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    english = {"Accept-Language": "en-US,en;q=0.9"}
    status, _, body = request(top.web_port, "GET", "/", headers=chinese)
    if status != 200 or '<html lang="zh-CN">' not in body or "没有收到邮件？" not in body:
        fail(f"the home page for a zh-CN browser answered {status} not in Chinese")
    register(top.web_port, address, headers=chinese)
    first = wait_until("the zh-CN registration's email", lambda: emails_to(top.maildir, address) or None, 60)
    subject, text = first[0]
    if subject != "请确认您的账户" or "感谢您的注册" not in text:
        fail(f"the zh-CN registration's email is not in Chinese: {subject!r}")
    if top.sql(f"select locale from users where email = '{address}'") != "zh-CN":
        fail("the account's language is not stored as zh-CN")

    def resent():
        status, headers, _ = post_form(top.web_port, "/resend", address, headers=english)
        if status != 303 or headers.get("content-language") != "en":
            fail(f"the resend from an English browser answered {status} {headers.get('content-language')!r}")
        return len(emails_to(top.maildir, address)) >= 2 or None

    # The resend cooldown is 1 s here: ask again until the second email arrives.
    wait_until("the resend from an English browser", resent, 60, interval=0.5)
    subject, text = emails_to(top.maildir, address)[1]
    if subject != "请确认您的账户" or "验证码" not in text:
        fail(f"the resend asked for from an English browser is not in Chinese: {subject!r}")
    link = LINK.search(text).group(0)
    confirm(top.web_port, link)
    log("lang: a zh-CN registration's email and its resend from an English browser are both in "
        "Chinese (stored locale zh-CN); the pages follow each browser; the resent link confirms")


def scenario_correct(top, n):
    """A mistyped address corrected on the thank-you page: the form holds the address just
    registered (from the pending cookie); registering the right one from the same browser
    leaves the mistyped account unconfirmed and marked so that it gets no reminder."""
    tag = uuid.uuid4().hex[:6]
    mistyped, right = f"correct-{tag}@exmaple.com", f"correct-{tag}@example.com"
    status, headers, _ = post_form(top.web_port, "/", mistyped)
    pending = re.search(r"(pending=[^;\s]+)", headers.get("set-cookie", ""))
    if status != 303 or not pending:
        fail(f"registration answered {status} without the pending cookie")
    cookie, token = csrf(top.web_port)
    both = f"{cookie}; {pending.group(1)}"
    status, _, body = request(top.web_port, "GET", "/", cookie=f"{both}; flash=registered")
    if status != 200 or f'value="{mistyped}"' not in body or 'id="correct-hint"' not in body:
        fail(f"the thank-you page does not offer to correct the address ({status})")
    form = urllib.parse.urlencode({"email": right, "csrf_token": token})
    status, headers, _ = request(top.web_port, "POST", "/", form, cookie=both)
    if status != 303 or "flash=registered" not in headers.get("set-cookie", ""):
        fail(f"the corrected registration answered {status}")
    rows = top.sql(f"select email, confirmed, reminded_at is not null from users "
                   f"where email in ('{mistyped}', '{right}') order by email")
    want = f"{right}|f|f\n{mistyped}|f|t"
    if rows != want:
        fail(f"after the correction the accounts are {rows!r}, expected {want!r}")
    log("correct: the thank-you page held the mistyped address; the corrected one registered, "
        "the mistyped one left unconfirmed with no reminder to come")


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


def scenario_json(top, n):
    top.worker.stop(signal.SIGTERM)
    top.server.stop(signal.SIGTERM)
    top.start_server(LOG_FORMAT="json")
    top.start_worker(LOG_FORMAT="json")
    addresses = [f"json-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(n)]
    passed = f"e2e-json.{uuid.uuid4().hex[:12]}"
    ids = [register(top.web_port, a, headers={"X-Request-Id": passed} if i == 0 else None)
           for i, a in enumerate(addresses)]
    if ids[0] != passed:
        fail(f"the server answered X-Request-Id {ids[0]!r} to a request that gave {passed!r}")
    made = ids[1]
    if not (made and len(made) == 32 and all(c in "0123456789abcdef" for c in made)):
        fail(f"the server made the request id {made!r} (expected 32 hex digits)")
    if len(set(ids)) != len(ids):
        fail("two registrations got the same request id")
    deliver_and_confirm(top, addresses)

    def sent_lines():
        lines = json_log_lines(top.worker)
        found = {rid: json_lines_of_request(lines, rid, "Job OK: sent") for rid in (passed, made)}
        return found if all(found.values()) else None

    sent = wait_until("the worker's send lines of both request ids", sent_lines, 10)
    server_lines = json_log_lines(top.server)
    for rid in (passed, made):
        registered = json_lines_of_request(server_lines, rid, "user registered")
        if len(registered) != 1:
            fail(f"{len(registered)} server lines 'user registered' with request id {rid}")
        message_id = registered[0]["fields"].get("message_id")
        line = sent[rid][0]
        if (line.get("span") or {}).get("message_id") != message_id:
            fail(f"the worker's send line for {rid} is about message {line.get('span')}, not {message_id}")
        if not line["fields"].get("provider_message_id"):
            fail(f"the worker's send line for {rid} has no provider message id: {line}")
    log(f"json: {n} registrations; {len(server_lines)} server and {len(json_log_lines(top.worker))} "
        f"worker lines, all JSON objects; request ids {passed} (passed in) and {made} (made by the "
        f"server) on the registration and the send of message ids "
        f"{[json_lines_of_request(server_lines, r, 'user registered')[0]['fields']['message_id'] for r in (passed, made)]}, "
        f"provider message ids {[sent[r][0]['fields']['provider_message_id'] for r in (passed, made)]}")


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


ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"


def ses_notification(kind, feedback_id, message_id, address, sub=None):
    """One SES notification in its documented JSON format, wrapped by SNS as an SQS subscription
    delivers it."""
    def now():
        return utc_now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    mail = {"timestamp": now(), "messageId": message_id, "source": "sender@example.com",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
            "sendingAccountId": "123456789012", "destination": [address]}
    if kind == "Complaint":
        body = {"notificationType": "Complaint", "mail": mail, "complaint": {
            "userAgent": "e2e Feedback Loop", "complainedRecipients": [{"emailAddress": address}],
            "complaintFeedbackType": "abuse", "arrivalDate": now(), "timestamp": now(),
            "feedbackId": feedback_id}}
    else:
        body = {"notificationType": "Bounce", "mail": mail, "bounce": {
            "bounceType": kind, "bounceSubType": sub or "General",
            "bouncedRecipients": [{"emailAddress": address, "action": "failed",
                                   "status": "5.1.1" if kind == "Permanent" else "4.2.2",
                                   "diagnosticCode": f"smtp; 550 5.1.1 <{address}>... User unknown"}],
            "timestamp": now(), "feedbackId": feedback_id,
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"}}
    return json.dumps({
        "Type": "Notification", "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
        "Message": json.dumps(body), "Timestamp": now(), "SignatureVersion": "1",
        "Signature": "EXAMPLE", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"})


def scenario_feedback(top, n):
    import boto3

    endpoint = os.environ["TEST_SES_ENDPOINT"].rstrip("/")
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    tag = uuid.uuid4().hex[:6]
    sender = f"sender-{tag}@example.com"
    boto3.client("sesv2", endpoint_url=endpoint, **creds).create_email_identity(EmailIdentity=sender)
    sqs = boto3.client("sqs", endpoint_url=endpoint, **creds)
    dlq = sqs.create_queue(QueueName=f"ses-feedback-dlq-{tag}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=f"ses-feedback-{tag}", Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})["QueueUrl"]
    metrics_port = free_port()
    top.worker.stop(signal.SIGTERM)
    top.start_worker(MAILER="ses", SES_REGION="us-east-1", SES_EMAIL_SOURCE=sender,
                     SES_FEEDBACK_QUEUE_URL=queue, WORKER_METRICS_ADDR=f"127.0.0.1:{metrics_port}",
                     AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    top.server.stop(signal.SIGTERM)
    top.start_server(ADMIN_TOKEN=ADMIN_TOKEN)
    names = ("permanent", "transient", "complaint", "quiet")
    address = {k: f"fb-{k}-{tag}@example.com" for k in names}
    for a in address.values():
        register(top.web_port, a)

    def sent():
        rows = top.sql("select recipient, id, provider_message_id from email_messages "
                       f"where recipient like 'fb-%-{tag}@example.com' and status = 'sent' "
                       "and provider_message_id is not null")
        found = {r.split("|")[0]: r.split("|")[1:] for r in rows.splitlines() if r}
        return found if len(found) == len(names) else None

    ids = wait_until("the feedback scenario's emails sent through moto's SES", sent, 60)
    msg = {k: ids[address[k]] for k in names}  # name -> [message id, SES message id]
    bodies = [
        ses_notification("Permanent", f"fb-perm-{tag}", msg["permanent"][1], address["permanent"]),
        ses_notification("Transient", f"fb-trans-{tag}", msg["transient"][1], address["transient"], "MailboxFull"),
        ses_notification("Complaint", f"fb-compl-{tag}", msg["complaint"][1], address["complaint"]),
        "{this is not a notification " + address["quiet"],
        # The permanent bounce again (SNS and SQS deliver at least once).
        ses_notification("Permanent", f"fb-perm-{tag}", msg["permanent"][1], address["permanent"]),
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    def statuses():
        rows = top.sql("select recipient, status from email_messages "
                       f"where recipient like 'fb-%-{tag}@example.com'")
        return dict(r.split("|") for r in rows.splitlines() if r)

    want = {address["permanent"]: "bounced", address["transient"]: "sent",
            address["complaint"]: "complained", address["quiet"]: "sent"}

    def settled():
        rows = int(top.sql("select count(*) from email_feedback"))
        depth = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        left = int(depth["ApproximateNumberOfMessages"]) + int(depth["ApproximateNumberOfMessagesNotVisible"])
        dead = int(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
                   ["ApproximateNumberOfMessages"])
        return (statuses() == want and rows == 3 and left == 0 and dead == 1) or None

    wait_until("the feedback recorded, the queue drained and the malformed body dead-lettered", settled, 60)
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    if len(dead) != 1 or not dead[0]["Body"].startswith("{this is not"):
        fail(f"the dead-letter queue holds {len(dead)} messages, not the malformed one")
    sources = dict(r.split("|") for r in top.sql("select source, count(*) from suppressions group by source").splitlines())
    if sources.get("bounce") != "1" or sources.get("complaint") != "1":
        fail(f"suppressions by source: {sources}")
    kinds = top.sql("select kind from email_feedback order by kind").split()
    if kinds != ["complaint", "permanent_bounce", "transient_bounce"]:
        fail(f"feedback recorded: {kinds}")
    # A later registration of a bounced mailbox is answered as usual and owes nothing.
    before = int(top.sql("select count(*) from email_messages"))
    # (The registration commits before its answer: nothing can appear later.)
    register(top.web_port, address["permanent"].replace("@", "+again@"))
    after = int(top.sql("select count(*) from email_messages"))
    if after != before:
        fail(f"a registration of a bounced mailbox owed an email ({before} -> {after} messages)")

    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    status, _, page = request(top.web_port, "GET", f"/admin/messages/{msg['permanent'][0]}", headers=auth)
    if status != 200 or 'id="state">bounced<' not in page or 'data-kind="permanent_bounce"' not in page \
            or "General 5.1.1" not in page:
        fail(f"the dashboard's page of the bounced message: {status}")
    status, _, page = request(top.web_port, "GET", f"/admin/messages/{msg['complaint'][0]}", headers=auth)
    if status != 200 or 'id="state">complained<' not in page or 'data-kind="complaint"' not in page:
        fail(f"the dashboard's page of the complained message: {status}")
    status, _, page = request(top.web_port, "GET", "/admin/suppressions", headers=auth)
    if status != 200 or "<td>bounce</td>" not in page or "<td>complaint</td>" not in page:
        fail(f"the dashboard's suppressions page: {status}")
    status, _, page = request(top.web_port, "GET", "/admin", headers=auth)
    if 'data-state="bounced">1<' not in page or 'data-state="complained">1<' not in page:
        fail("the dashboard does not count one bounced and one complained message")
    _, _, metrics = request(metrics_port, "GET", "/metrics")
    counted = dict(re.findall(r'^feedback_total\{type="(\w+)"\} (\d+)', metrics, re.M))
    if counted.get("permanent_bounce") != "2" or counted.get("transient_bounce") != "1" \
            or counted.get("complaint") != "1" or int(counted.get("malformed", "0")) < 2:
        fail(f"feedback_total: {counted}")
    remember([*address.values()])
    log(f"feedback: permanent bounce -> bounced + suppressed (bounce), complaint -> complained + "
        f"suppressed (complaint), transient recorded only, duplicate ignored (3 rows), malformed "
        f"dead-lettered after {counted['malformed']} receives; dashboard and feedback_total {counted}")


def make_dkim_key(tmp, kind):
    """A private key of `kind` (rsa: 2048 bits; ed25519) in PEM, made for this run."""
    path = os.path.join(tmp, f"dkim-{kind}.pem")
    args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] if kind == "rsa" else ["-algorithm", "ed25519"]
    subprocess.run(["openssl", "genpkey", *args, "-out", path], check=True, capture_output=True)
    return path


def check_dkim(top, kind):
    """Every message at the SMTP server carries a DKIM signature dkimpy verifies with the record
    `worker dkim-record` prints (the DNS answer a receiver would get)."""
    import dkim

    r = top.worker_cli("dkim-record")
    if r.returncode != 0:
        fail(f"worker dkim-record: {r.stdout}{r.stderr}")
    printed = dict(line.split(": ", 1) for line in r.stdout.splitlines())
    name, record = printed["name"], printed["value"].encode()

    def dnsfunc(domain, timeout=5):
        domain = domain.decode() if isinstance(domain, bytes) else domain
        return record if domain.rstrip(".") == name else None

    new = os.path.join(top.maildir, "new")
    files = sorted(os.listdir(new))
    algorithm = b"a=rsa-sha256" if kind == "rsa" else b"a=ed25519-sha256"
    for f in files:
        with open(os.path.join(new, f), "rb") as fh:
            raw = fh.read()
        if algorithm not in raw.split(b"\r\n\r\n", 1)[0]:
            fail(f"{f}: no {algorithm.decode()} DKIM signature")
        if not dkim.verify(raw, dnsfunc=dnsfunc):
            fail(f"{f}: dkimpy does not verify its DKIM signature")
    if not files:
        fail("no message to check the DKIM signature of")
    log(f"dkim: all {len(files)} messages at the SMTP server carry a DKIM signature ({kind}) dkimpy verifies against {name}")


def scenario_accounts(top, n):
    from accounts_e2e import scenario_accounts as run
    run(top, emails_to, confirm, n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--scenarios", default="smtp,code,correct,lang,accounts,json,kill,redis,ses,feedback")
    ap.add_argument("--redis-tls-dir", help="a .ci/make-test-ca directory: Redis is TLS-only (rediss://)")
    ap.add_argument("--dkim", choices=("rsa", "ed25519"), help="sign with a DKIM key of this type, and check every signature")
    ap.add_argument("--redis-url", help="use this Redis (a redis-cluster:// or redis-sentinel:// URL) instead of one of our own")
    ap.add_argument("--db-port", type=int, help="the binaries reach PostgreSQL through 127.0.0.1:PORT (a PgBouncer)")
    args = ap.parse_args()
    if args.redis_url and "redis" in args.scenarios.split(","):
        fail("the redis scenario restarts a Redis of our own: leave it out with --redis-url")
    for var in ("TEST_DATABASE_URL", "TEST_SES_ENDPOINT"):
        if not os.environ.get(var):
            fail(f"{var} is not set")
    with tempfile.TemporaryDirectory(prefix="e2e-") as tmp:
        env = {}
        if args.dkim:
            env = {"DKIM_SELECTOR": f"e2e-{args.dkim}", "DKIM_PRIVATE_KEY_FILE": make_dkim_key(tmp, args.dkim)}
        top = Topology(args.bin_dir, tmp, env=env, redis_tls_dir=args.redis_tls_dir,
                       redis_url=args.redis_url, db_port=args.db_port)
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
            if args.dkim:
                check_dkim(top, args.dkim)
            for p in service_procs([top]):
                if (p.env or {}).get("LOG_FORMAT") == "json":
                    json_log_lines(p)
            check_logs([top])
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

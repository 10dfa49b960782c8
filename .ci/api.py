#!/usr/bin/env python3
"""The JSON API against the release binaries in the production topology (PostgreSQL, Redis,
a separate worker, a real SMTP server), then schemathesis against its OpenAPI document.

  flow         N addresses registered through POST /api/v1/registrations (202, committed);
               each email reaches the SMTP server; the token of each link confirms through
               POST /api/v1/confirmations (200, the account confirmed, its email `sent`);
               GET /api/v1/accounts/{email} agrees; a second confirmation is 409
               `already_confirmed`, an unknown address 404, a tampered token 422, no key 401,
               a form-encoded body 415, bad JSON 400, an oversized body 413. None of these
               is a 5xx and every error is `{"error", "message"}`.
  redirect     a registration naming its confirmation page on ALLOWED_REDIRECT_ORIGINS: the
               link's button sends the visitor there; another origin is a 422, nothing stored.
  schemathesis `schemathesis run` on /api/v1/openapi.json with the key: every check it has
               (no 5xx, status codes, content types, headers and bodies as documented,
               negative data rejected, unsupported methods 405, missing auth refused) except
               `positive_data_acceptance` (a schema-valid address may rightly get 404, 409 or
               429: no account, already confirmed, limits), with a fixed seed; a 413 for an
               oversized body counts as a rejection (.ci/schemathesis.toml).

Usage: python3 .ci/api.py --bin-dir target/release [--count 20] [--max-examples 100] [--seed N]
Needs: TEST_DATABASE_URL, the `redis-server` binary, aiosmtpd, schemathesis.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import (  # noqa: E402 - after the path set-up
    Topology, check_logs, codes_at, csrf, fail, log, maildir_messages, request, set_tag, wait_until,
)

set_tag("api")

API_KEY = "ci-api-key-" + uuid.uuid4().hex  # 43 characters
ALLOWED_ORIGIN = "https://app.example.com"


def call(top, method, path, body=None, key=API_KEY, content_type="application/json"):
    """(status, headers, parsed JSON body) of one API call; any 5xx or non-JSON answer fails."""
    headers = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if body is not None:
        headers["Content-Type"] = content_type
        body = body if isinstance(body, (str, bytes)) else json.dumps(body)
    status, got, text = request(top.web_port, method, path, body=body, headers=headers)
    if status >= 500:
        fail(f"{method} {path} answered {status}: {text[:300]}")
    if not got.get("content-type", "").startswith("application/json"):
        fail(f"{method} {path} answered {status} with {got.get('content-type')!r}: {text[:300]}")
    return status, got, json.loads(text)


def expect_error(top, what, want_status, want_code, method, path, body=None, **kw):
    status, _, doc = call(top, method, path, body, **kw)
    if status != want_status or doc.get("error") != want_code or not doc.get("message"):
        fail(f"{what}: expected {want_status} {want_code}, got {status} {doc}")


def token_of(link):
    return urllib.parse.urlparse(link).path.rsplit("/", 1)[-1]


def scenario_flow(top, n):
    addresses = [f"api-{i}-{uuid.uuid4().hex[:6]}@Example.com" for i in range(n)]
    for a in addresses:
        status, _, doc = call(top, "POST", "/api/v1/registrations", {"email": a})
        want = {"status": "pending", "email": a.replace("Example.com", "example.com"),
                "created": True, "email_owed": True}
        if status != 202 or doc != want:
            fail(f"registration of {a}: {status} {doc}")
    wanted = {a.lower() for a in addresses}
    got = wait_until(f"{n} emails at the SMTP server",
                     lambda: (lambda m: m if wanted <= set(m) else None)(maildir_messages(top.maildir)), 60)
    for a in addresses:
        token = token_of(got[a.lower()][0])
        status, _, account = call(top, "POST", "/api/v1/confirmations", {"token": token})
        if status != 200 or account.get("confirmed") is not True or account.get("email_state") != "sent" \
                or account.get("suppressed") is not False or not account.get("confirmed_at"):
            fail(f"confirmation of {a}: {status} {account}")
        path = "/api/v1/accounts/" + urllib.parse.quote(a, safe="")
        status, _, again = call(top, "GET", path)
        if status != 200 or again != account:
            fail(f"account of {a}: {status} {again} (after confirming: {account})")
        expect_error(top, "a second confirmation", 409, "already_confirmed",
                     "POST", "/api/v1/confirmations", {"token": token})
    confirmed = top.sql("select count(*) from users where confirmed and email like 'api-%'")
    if int(confirmed) != n:
        fail(f"{confirmed} of {n} API accounts confirmed in the database")
    log(f"flow: {n} registered by API, {n} emails delivered, {n} confirmed by API; accounts agree")

    first = addresses[0]
    token = token_of(got[first.lower()][0])
    expect_error(top, "a tampered token", 422, "invalid", "POST", "/api/v1/confirmations",
                 {"token": token[:-2] + ("AA" if not token.endswith("AA") else "BB")})
    expect_error(top, "an unknown address", 404, "not_found",
                 "GET", "/api/v1/accounts/nobody-" + uuid.uuid4().hex[:8] + "%40example.com")
    expect_error(top, "an invalid address", 422, "invalid_email", "GET", "/api/v1/accounts/not-an-address")
    expect_error(top, "a resend to a confirmed account", 409, "already_confirmed",
                 "POST", "/api/v1/resend", {"email": first})
    expect_error(top, "no key", 401, "unauthorized", "POST", "/api/v1/registrations", {"email": first}, key=None)
    expect_error(top, "a form body", 415, "unsupported_media_type", "POST", "/api/v1/registrations",
                 "email=a%40example.com", content_type="application/x-www-form-urlencoded")
    expect_error(top, "bad JSON", 400, "invalid_json", "POST", "/api/v1/registrations", '{"email": ')
    expect_error(top, "a missing field", 422, "invalid_request", "POST", "/api/v1/registrations", {"mail": first})
    expect_error(top, "an oversized body", 413, "payload_too_large", "POST", "/api/v1/registrations",
                 {"email": "a" * 20000 + "@example.com"})
    log("flow: tampered token 422, unknown 404, invalid 422, resend-after-confirm 409, no key 401, "
        "form body 415, bad JSON 400, missing field 422, oversized 413: all JSON, none 5xx")
    return addresses


def scenario_redirect(top):
    """A registration names its confirmation page on an allowed origin; the emailed link's
    button then sends the visitor there, `email_confirmed=1` added. Another origin is a 422
    and registers nothing."""
    a = f"api-redirect-{uuid.uuid4().hex[:6]}@example.com"
    expect_error(top, "a redirect on another origin", 422, "invalid_redirect", "POST",
                 "/api/v1/registrations", {"email": a, "redirect": "https://evil.example.com/"})
    if int(top.sql(f"select count(*) from users where email = '{a}'")) != 0:
        fail("a registration with a refused redirect stored the account")
    status, _, doc = call(top, "POST", "/api/v1/registrations",
                          {"email": a, "redirect": f"{ALLOWED_ORIGIN}/welcome?ref=ci"})
    if status != 202:
        fail(f"registration with a redirect: {status} {doc}")
    link = wait_until("the email", lambda: maildir_messages(top.maildir).get(a), 60)[0]
    path = urllib.parse.urlparse(link).path
    cookie, token = csrf(top.web_port)
    status, headers, _ = request(top.web_port, "POST", path,
                                 urllib.parse.urlencode({"csrf_token": token}), cookie=cookie)
    want = f"{ALLOWED_ORIGIN}/welcome?ref=ci&email_confirmed=1"
    if status != 303 or headers.get("location") != want:
        fail(f"the button answered {status} to {headers.get('location')!r}, not {want!r}")
    log(f"redirect: another origin refused (422, nothing stored); the button sent the visitor to {want}")
    return a


def scenario_code(top):
    """An application confirms with the six-digit code its user read in the email:
    `{"email", "code"}` at POST /api/v1/confirmations. A wrong code and a malformed one are 422."""
    a = f"api-code-{uuid.uuid4().hex[:6]}@example.com"
    status, _, doc = call(top, "POST", "/api/v1/registrations", {"email": a})
    if status != 202:
        fail(f"registration: {status} {doc}")

    right = wait_until("the email with its code", lambda: codes_at(top.maildir).get(a, [None])[0], 60)
    wrong = "000000" if right != "000000" else "000001"
    expect_error(top, "a wrong code", 422, "invalid", "POST", "/api/v1/confirmations",
                 {"email": a, "code": wrong})
    expect_error(top, "a malformed code", 422, "invalid_request", "POST", "/api/v1/confirmations",
                 {"email": a, "code": "12 345"})
    expect_error(top, "a token and a code at once", 422, "invalid_request", "POST",
                 "/api/v1/confirmations", {"email": a, "code": right, "token": "x"})
    status, _, account = call(top, "POST", "/api/v1/confirmations", {"email": a, "code": right})
    if status != 200 or account.get("confirmed") is not True:
        fail(f"confirmation by code: {status} {account}")
    log("code: {email, code} confirmed the account (200); wrong code 422 invalid, malformed 422, "
        "token and code together 422")


def scenario_schemathesis(top, max_examples, seed):
    st = shutil.which("schemathesis") or shutil.which("st")
    if not st:
        fail("schemathesis is not installed (pip install schemathesis)")
    url = f"http://127.0.0.1:{top.web_port}/api/v1/openapi.json"
    report = os.path.join(top.tmp, "schemathesis")
    config = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemathesis.toml")
    cmd = [st, "--config-file", config, "run", url, "--header", f"Authorization: Bearer {API_KEY}",
           "--checks", "all", "--exclude-checks", "positive_data_acceptance",
           "--max-examples", str(max_examples), "--seed", str(seed),
           "--workers", "2", "--request-timeout", "10",
           "--report", "junit", "--report-dir", report]
    t0 = time.monotonic()
    # Run in the topology's directory: schemathesis keeps a cache (.schemathesis/) in its cwd.
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=top.tmp)
    output = (r.stdout + r.stderr).replace(API_KEY, "<key>")
    if r.returncode != 0:
        # Long generated values make lines huge: cut each line, keep the failures' section.
        lines = [line[:400] + (" ..." if len(line) > 400 else "") for line in output.splitlines()]
        start = next((i for i, line in enumerate(lines) if "FAILURES" in line), 0)
        fail(f"schemathesis found problems (exit {r.returncode}):\n" + "\n".join(lines[start:start + 120]))
    tail = [line for line in output.splitlines() if line.strip()][-25:]
    print("\n".join(tail))
    cases = next((tail[i + 1].strip() for i, line in enumerate(tail[:-1]) if line.strip() == "Test cases:"), "?")
    log(f"schemathesis: no failure in {time.monotonic() - t0:.0f}s; test cases: {cases}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--max-examples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20261207, help="schemathesis' seed (fixed, so CI is repeatable)")
    args = ap.parse_args()
    if not os.environ.get("TEST_DATABASE_URL"):
        fail("TEST_DATABASE_URL is not set")
    with tempfile.TemporaryDirectory(prefix="api-") as tmp:
        env = {"API_KEYS": API_KEY, "ALLOWED_REDIRECT_ORIGINS": ALLOWED_ORIGIN}
        top = Topology(args.bin_dir, tmp, env=env, db_prefix="api")
        try:
            top.start_worker()
            addresses = scenario_flow(top, args.count)
            addresses.append(scenario_redirect(top))
            scenario_code(top)
            scenario_schemathesis(top, args.max_examples, args.seed)
            check_logs([top], addresses=addresses, secrets=[API_KEY])
        except SystemExit:
            for p in (top.server, top.worker):
                if p is not None:
                    print(f"--- {p.name} log tail ---\n{p.tail()}")
            raise
        finally:
            top.close()
    print("api: all scenarios passed")


if __name__ == "__main__":
    main()

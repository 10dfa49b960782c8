"""The accounts scenario of .ci/e2e.py (issue 24): passwords, sessions, the reset by email and
two-factor sign-in, against the release binaries, with the hostile cases (a reset link used
twice, a wrong code, brute force throttled per account and per IP, and a timing comparison of
unknown and known addresses)."""

import base64
import signal
import hashlib
import hmac
import re
import statistics
import struct
import time
import urllib.parse
import uuid

from topology import fail, log, remember, request, wait_until

RESET_LINK = re.compile(r"http://127\.0\.0\.1:\d+(/reset/[A-Za-z0-9_.\-]+)")


def totp(secret_b32, at):
    """RFC 6238 (SHA-1, six digits, 30 s) in a few lines: what an authenticator app computes."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000)


class Client:
    """A browser: its own CSRF cookie and token, a session cookie once signed in, and one
    loopback source address (its client IP)."""

    def __init__(self, port, source="127.0.0.1"):
        self.port, self.source, self.session = port, source, None
        status, headers, body = request(port, "GET", "/", source=source)
        cookie = re.search(r"(csrf=[A-Za-z0-9_-]+)", headers.get("set-cookie", ""))
        token = re.search(r'name="csrf_token" value="([^"]+)"', body)
        if status != 200 or not cookie or not token:
            fail(f"home page answered {status} without a CSRF cookie and token")
        self.csrf_cookie, self.token = cookie.group(1), token.group(1)

    def cookie(self):
        return self.csrf_cookie + (f"; session={self.session}" if self.session else "")

    def get(self, path):
        return request(self.port, "GET", path, cookie=self.cookie(), source=self.source)

    def post(self, path, **fields):
        body = urllib.parse.urlencode({**fields, "csrf_token": self.token})
        status, headers, text = request(self.port, "POST", path, body, cookie=self.cookie(),
                                        source=self.source)
        found = re.search(r"session=([A-Za-z0-9_-]*);", headers.get("set-cookie", ""))
        if found:
            self.session = found.group(1) or None
            remember(secrets=[self.session])
        return status, headers, text

    def sign_in(self, address, password):
        return self.post("/signin", email=address, password=password)


def field(body, name):
    found = re.search(rf'name="{name}" value="([^"]+)"', body)
    if not found:
        fail(f"no {name} field on the page")
    return found.group(1)


def scenario_accounts(top, emails_to, confirm, n):
    # A reset email shares the mailbox's cooldown with the confirmation email: 1 s here.
    top.server.stop(signal.SIGTERM)
    top.start_server(RESEND_COOLDOWN="1s")
    tag = uuid.uuid4().hex[:6]
    address = f"account-{tag}@example.com"
    first, second = f"first password {tag}", f"second password {tag}"
    remember(addresses=[address], secrets=[first, second])
    browser = Client(top.web_port)
    status, headers, _ = browser.post("/", email=address, password=first)
    if status != 303 or "flash=registered" not in headers.get("set-cookie", ""):
        fail(f"registration with a password answered {status}")
    if top.sql(f"select count(*) from credentials c join users u on u.id = c.user_id "
               f"where u.email = '{address}' and c.password_hash like '$argon2id$v=19$m=19456,t=2,p=1$%'") != "1":
        fail("the password is not stored as an Argon2id hash with OWASP's parameters")
    status, _, _ = browser.sign_in(address, first)
    if status != 403:
        fail(f"an unconfirmed account's sign-in answered {status}, not 403")
    mail = wait_until("the confirmation email", lambda: emails_to(top.maildir, address) or None, 60)
    link = re.search(r"http://127\.0\.0\.1:\d+/confirm/[A-Za-z0-9_.\-]+", mail[0][1]).group(0)
    confirm(top.web_port, link)

    # Signed in twice (two browsers): two sessions.
    status, headers, _ = browser.sign_in(address, first)
    if status != 303 or headers.get("location") != "/account" or not browser.session:
        fail(f"sign-in answered {status} {headers.get('location')!r}")
    cookie = re.search(r"session=[^\n]*", headers["set-cookie"]).group(0)
    if "HttpOnly" not in cookie or "SameSite=Lax" not in cookie:
        fail(f"the session cookie lacks HttpOnly or SameSite: {cookie!r}")
    status, _, body = browser.get("/account")
    if status != 200 or address not in body:
        fail(f"the account page answered {status} without the address")
    other = Client(top.web_port)
    other.sign_in(address, first)
    old_sessions = (browser.session, other.session)

    # The reset by email: the same answer for every address; the link works once.
    status, _, known = other.post("/forgot", email=address)
    status2, _, unknown = other.post("/forgot", email=f"nobody-{tag}@example.com")
    if (status, status2) != (200, 200) or known != unknown:
        fail(f"/forgot answered {status} and {status2}, or differently for an unknown address")
    def reset_email():
        found = [m for m in emails_to(top.maildir, address) if m[0] == "Reset Your Password"]
        if not found:
            other.post("/forgot", email=address)  # within the cooldown nothing is owed: again
        return found or None

    resets = wait_until("the reset email", reset_email, 60, interval=0.5)
    path = RESET_LINK.search(resets[0][1]).group(1)
    remember(secrets=[path.rsplit("/", 1)[1]])
    stranger = Client(top.web_port)
    status, _, body = stranger.get(path)
    if status != 200 or 'name="password"' not in body:
        fail(f"the reset page answered {status} without the password form")
    if browser.get("/account")[0] != 200:
        fail("opening the reset link changed something: the session ended")
    status, _, _ = stranger.post(path, password=second)
    if status != 200:
        fail(f"the reset form answered {status}")
    status, _, _ = stranger.post(path, password=f"third password {tag}")
    if status != 400:
        fail(f"the reset link used twice answered {status}, not 400")
    for session in old_sessions:
        browser.session = session
        status, headers, _ = browser.get("/account")
        if status != 303 or headers.get("location") != "/signin":
            fail(f"a session from before the reset still works ({status})")
    browser.session = None
    if browser.sign_in(address, first)[0] != 401:
        fail("the old password still signs in")
    if browser.sign_in(address, second)[0] != 303:
        fail("the new password does not sign in")
    wait_until("the 'password changed' notice", lambda: [
        m for m in emails_to(top.maildir, address) if m[0] == "Your Password Was Changed"] or None, 60)
    log("accounts: registered with a password, confirmed, signed in twice; reset by email "
        "(link refused the second time), both old sessions ended, old password refused, new one "
        "accepted, notice received")

    # Two-factor sign-in: a QR code and a first code turn it on; then every sign-in asks.
    status, _, body = browser.post("/account/2fa")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', body)
    if status != 200 or "<svg" not in body or not secret:
        fail(f"the 2FA page answered {status} without a QR code and secret")
    secret = secret.group(1)
    remember(secrets=[secret])
    now = time.time()
    status, _, body = browser.post("/account/2fa/enable", step=field(body, "step"), code=totp(secret, now))
    codes = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", body)
    if status != 200 or len(codes) != 10:
        fail(f"enabling 2FA answered {status} with {len(codes)} recovery codes")
    remember(secrets=codes)
    browser.post("/signout")
    if browser.session:
        fail("signing out left the session cookie")
    status, _, body = browser.sign_in(address, second)
    if status != 200 or browser.session or 'name="step"' not in body:
        fail(f"a 2FA account's password alone answered {status} (or signed in)")
    step = field(body, "step")
    status, _, _ = browser.post("/signin/code", step=step, code="000000" if totp(secret, now + 30) != "000000" else "000001")
    if status != 401:
        fail(f"a wrong code answered {status}, not 401")
    code = totp(secret, now + 30)  # the next step: the enabling one is spent
    status, _, _ = browser.post("/signin/code", step=step, code=code)
    if status != 303 or not browser.session:
        fail(f"the right code answered {status}")
    again = Client(top.web_port)
    _, _, body = again.sign_in(address, second)
    status, _, _ = again.post("/signin/code", step=field(body, "step"), code=code)
    if status != 401:
        fail(f"a code used once already answered {status}, not 401")
    status, _, _ = again.post("/signin/code", step=field(body, "step"), code=codes[0])
    if status != 303 or not again.session:
        fail(f"a recovery code answered {status}")
    again.post("/signout")
    _, _, body = again.sign_in(address, second)
    status, _, _ = again.post("/signin/code", step=field(body, "step"), code=codes[0])
    if status != 401:
        fail(f"a recovery code used twice answered {status}, not 401")
    log("accounts: 2FA enabled by QR secret and a first code; sign-in asks for a code; a wrong "
        "code and a reused code refused; a recovery code works once")

    # Timing: unknown addresses and known ones (wrong password) cost the same. Each attempt from
    # its own client IP and each known account tried at most twice, so no throttle answers.
    known = [f"timing-{i}-{tag}@example.com" for i in range(12)]
    remember(addresses=known)
    for i, a in enumerate(known):
        Client(top.web_port, source=f"127.0.1.{i + 1}").post("/", email=a, password=f"timing password {tag}")
    times = {"known": [], "unknown": []}
    for i in range(24):
        kind = "known" if i % 2 == 0 else "unknown"
        a = known[i // 2] if kind == "known" else f"nobody-{i}-{tag}@example.com"
        remember(addresses=[a])
        c = Client(top.web_port, source=f"127.0.2.{i + 1}")
        t0 = time.perf_counter()
        status, _, _ = c.sign_in(a, "wrong password here")
        times[kind].append(time.perf_counter() - t0)
        if status != 401:
            fail(f"a wrong sign-in ({kind}) answered {status}")
    mk, mu = statistics.median(times["known"]) * 1000, statistics.median(times["unknown"]) * 1000
    if abs(mk - mu) > max(5.0, 0.25 * max(mk, mu)) or min(mk, mu) < 5.0:
        fail(f"sign-in medians differ: known {mk:.1f} ms, unknown {mu:.1f} ms")
    log(f"accounts: wrong sign-ins take {mk:.1f} ms (known address) and {mu:.1f} ms (unknown), "
        f"medians of 12 each")

    # Brute force: per account (5 failures in 15 min), then per IP (10 a minute).
    target = known[-1]
    answers = [Client(top.web_port, source=f"127.0.3.{i + 1}").sign_in(target, f"guess {i}")[0]
               for i in range(6)]
    if answers[:3] != [401] * 3 or answers[-1] != 429:
        fail(f"brute force on one account answered {answers}")
    guesser = Client(top.web_port, source="127.0.4.1")
    answers = [guesser.sign_in(f"guess-{i}-{tag}@example.com", "password guess")[0] for i in range(12)]
    if 429 not in answers or answers[0] != 401:
        fail(f"brute force from one IP answered {answers}")
    log(f"accounts: brute force refused with 429 after 5 failures on one account, and after "
        f"{answers.count(401)} wrong sign-ins from one IP")

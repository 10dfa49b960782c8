#![cfg(test)]
//! The whole flow in a real browser: headless Chromium, driven through chromedriver (WebDriver)
//! with fantoccini, against the real `server` binary run as the README runs it (embedded SQLite,
//! in-process delivery, the file mailer), with its state in a temporary directory.
//!
//! Runs only when `TEST_CHROMEDRIVER` names a chromedriver binary (e.g. `/usr/bin/chromedriver`,
//! Debian's `chromium-driver`); `TEST_CHROMIUM` overrides the browser (default
//! `/usr/bin/chromium`). When the variable is set, anything missing fails the test.
//! Screenshots of the registered and confirmed pages go to `target/browser-artifacts/`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DRIVER_VAR: &str = "TEST_CHROMEDRIVER";
const CHROMIUM_VAR: &str = "TEST_CHROMIUM";
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

const EMAIL: &str = "browser-e2e@example.com";
const REGISTERED: &str = "Thank you for registering. Please check your email to confirm.";
const CONFIRMED: &str = "You have confirmed your account. Thanks!";
const ALREADY_CONFIRMED: &str = "Account already confirmed.";
const INVALID_LINK: &str = "The confirmation link is invalid or has expired.";

/// The page stylesheet, as the server serves it (the test compares computed styles against it).
const MAIN_CSS: &str = include_str!("../../../templates/web/static/main.css");

/// How long to wait for a process to answer, an email to be written, a page to show something.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// chromedriver's path, or `None` (after a note) when the variable is unset.
fn chromedriver_path(test: &str) -> Option<PathBuf> {
    match std::env::var(DRIVER_VAR) {
        Ok(path) if !path.trim().is_empty() => Some(PathBuf::from(path.trim())),
        _ => {
            eprintln!(
                "{test}: skipped, set {DRIVER_VAR} (e.g. /usr/bin/chromedriver, Debian's chromium-driver) to run it"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process started by the test, killed (with its whole process group) when dropped.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` in a process group of its own, output to `log`.
    fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Self { name, child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the process's output) if it has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{} exited unexpectedly ({status}); its output:\n{}",
                self.name,
                self.log_text()
            );
        }
    }

    /// Polls `GET http://{addr}{path}` until it answers 200 and `accept` likes the body.
    async fn wait_ready(&mut self, addr: SocketAddr, path: &str, accept: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.assert_running();
            if let Some((200, body)) = http_get(addr, path).await
                && accept(&body)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer GET http://{addr}{path} within {DEADLINE:?}; its output:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed: what the process said is the first thing to read.
            eprintln!("--- {} output ---\n{}", self.name, self.log_text());
        }
        // The group takes chromedriver's browser processes along with it.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.1 GET: the status code and body, or `None` if nothing answered in time.
/// (chromedriver keeps the connection open despite `Connection: close`, so the body is read by
/// its Content-Length when there is one.)
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = stream.read(&mut chunk).await.ok()?;
            reply.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.split("\r\n").find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())
                        .flatten()
                });
                if read == 0 || length.is_some_and(|length| body.len() >= length) {
                    let status = head.split(' ').nth(1)?.parse().ok()?;
                    return Some((status, body.to_owned()));
                }
            }
            if read == 0 {
                return None;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// chromedriver on a free loopback port.
async fn start_chromedriver(driver: &Path, scratch: &Path) -> (Process, String) {
    assert!(
        driver.is_file(),
        "{DRIVER_VAR}={} is not a file (apt-get install chromium-driver)",
        driver.display()
    );
    let port = free_port();
    let mut command = Command::new(driver);
    command.arg(format!("--port={port}"));
    let mut process = Process::spawn("chromedriver", command, scratch.join("chromedriver.log"));
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    process
        .wait_ready(addr, "/status", |body| {
            serde_json::from_str::<Value>(body)
                .is_ok_and(|status| status["value"]["ready"] == Value::Bool(true))
        })
        .await;
    (process, format!("http://{addr}"))
}

/// The `server` binary as `cargo run --bin server` runs it, with its state under `state` and
/// its own port; the confirmation links point at that port.
async fn start_server(state: &Path, extra: &[(&str, &str)]) -> (Process, String) {
    let port = free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let base = format!("http://{addr}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    // Only what the README's run command leaves at its defaults is changed: where the database
    // and the emails go, the port, and the key (the development key would log a warning).
    command
        .env_clear()
        .current_dir(state)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", state.join("app.db").display()),
        )
        .env("MAIL_FILE_DIR", state.join("mail"))
        .env("LISTEN_ADDR", addr.to_string())
        .env("BASE_URL", &base)
        .env("SECRET_KEY", "browser-test-secret-key-0123456789abcdef")
        .envs(extra.iter().copied());
    let mut process = Process::spawn("server", command, state.join("server.log"));
    process.wait_ready(addr, "/healthz", |_| true).await;
    (process, base)
}

/// Headless Chromium through the WebDriver at `webdriver`, with a fresh profile in `profile`.
async fn start_browser(webdriver: &str, profile: &Path) -> Client {
    let chromium = std::env::var(CHROMIUM_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_CHROMIUM.to_owned());
    assert!(
        Path::new(&chromium).is_file(),
        "Chromium is not at {chromium} (apt-get install chromium, or set {CHROMIUM_VAR})"
    );
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        // The network is closed: without these Chromium keeps trying to reach Google.
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1200,900".to_owned(),
    ];
    let mut capabilities = Capabilities::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": args }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start Chromium ({chromium}): {e}"))
}

/// The registration form. The page also has a resend form, so everything is scoped to this one;
/// `form[action="/"]` is the fallback for a template from before the forms had ids.
async fn register_form(client: &Client) -> Element {
    match client.find(Locator::Css("form#register-form")).await {
        Ok(form) => form,
        Err(e) if e.is_no_such_element() => {
            eprintln!(
                "note: no form#register-form on the page; using form[action=\"/\"] (the template predates the form ids)"
            );
            client
                .find(Locator::Css(r#"form[action="/"]"#))
                .await
                .expect("no registration form on the home page")
        }
        Err(e) => panic!("cannot look for the registration form: {e}"),
    }
}

/// Waits until a visible flash (`.alert`) reads `expected`.
async fn expect_flash(client: &Client, expected: &str) {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        seen.clear();
        for alert in client.find_all(Locator::Css(".alert")).await.unwrap() {
            // A page being replaced may take its elements away between two calls.
            let (Ok(text), Ok(displayed)) = (alert.text().await, alert.is_displayed().await) else {
                continue;
            };
            if displayed && text.trim() == expected {
                return;
            }
            seen.push(text);
        }
        assert!(
            Instant::now() < deadline,
            "the flash {expected:?} did not appear within {DEADLINE:?}; flashes shown: {seen:?}; at {}",
            client.current_url().await.unwrap()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The page is on `base` at `path` and everything it loaded came from there.
async fn expect_at(client: &Client, base: &str, path: &str) {
    let url = client.current_url().await.unwrap();
    assert_eq!(url.as_str(), format!("{base}{path}"));
    let foreign = client
        .execute(
            "return performance.getEntries()
                .map(e => e.name)
                .filter(n => /^[a-z]+:/.test(n) && !n.startsWith(location.origin + '/'));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(foreign, json!([]), "requests outside {base}");
}

/// The value of `property` in the stylesheet's `selector { ... }` rule.
fn css_value(selector: &str, property: &str) -> String {
    let start = MAIN_CSS
        .find(&format!("\n{selector} {{"))
        .unwrap_or_else(|| panic!("main.css has no `{selector}` rule"));
    let rule = &MAIN_CSS[start..];
    let rule = &rule[..rule.find('}').unwrap()];
    rule.split(['{', ';'])
        .filter_map(|declaration| declaration.split_once(':'))
        .find(|(name, _)| name.trim() == property)
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_else(|| panic!("main.css's `{selector}` rule sets no {property}"))
}

/// The page's own stylesheet loaded, parsed and applied.
async fn expect_stylesheet(client: &Client) {
    let loaded = client
        .execute(
            "const s = document.styleSheets;
             return s.length >= 1 && s[0].href !== null && s[0].href.endsWith('/static/main.css')
                 && s[0].cssRules.length > 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(loaded, json!(true), "/static/main.css did not load");
    // `.container { max-width: 960px }` is ours alone: the browser's default is `none`.
    let want = css_value(".container", "max-width");
    assert!(
        want.ends_with("px"),
        "pick a property the browser reports as written (max-width is {want})"
    );
    let have = client
        .execute(
            "return getComputedStyle(document.querySelector('main.container')).maxWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(have, json!(want), "main.css is not applied");
}

/// Saves a screenshot as `<artifacts>/<name>.png` and checks that it is a PNG.
async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    let png = client.screenshot().await.unwrap();
    std::fs::write(&path, &png).unwrap();
    let written = std::fs::read(&path).unwrap();
    assert!(
        written.len() > 8 && written.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    eprintln!("screenshot: {} ({} bytes)", path.display(), written.len());
    path
}

/// Waits for the one `.eml` file the file mailer writes (atomically: `.tmp`, then renamed).
async fn wait_for_email(dir: &Path, server: &mut Process) -> String {
    wait_for_emails(dir, server, 1).await.remove(0)
}

/// Waits for exactly `count` `.eml` files; returns them oldest name first.
async fn wait_for_emails(dir: &Path, server: &mut Process, count: usize) -> Vec<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let emails: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|e| e == "eml"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", dir.display()),
        };
        if emails.len() > count {
            panic!("{count} email(s) expected, found {emails:?}");
        }
        if emails.len() == count {
            let mut emails = emails;
            emails.sort();
            return emails
                .iter()
                .map(|path| std::fs::read_to_string(path).unwrap())
                .collect();
        }
        server.assert_running();
        assert!(
            Instant::now() < deadline,
            "no email in {} within {DEADLINE:?}; the server's output:\n{}",
            dir.display(),
            server.log_text()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Decodes a quoted-printable body (soft line breaks and `=XX` escapes).
fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'=')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The header `name` (case-insensitive) of a MIME entity's header block, unfolded.
fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The decoded text/plain part of an email as the mailer writes it (`crates/mailer/src/mime.rs`:
/// multipart/alternative text + HTML, each part 7bit, or quoted-printable when lettre chose it).
fn text_part(eml: &str) -> String {
    let eml = eml.replace("\r\n", "\n").replace('\n', "\r\n");
    let (headers, body) = eml.split_once("\r\n\r\n").expect("an email has a body");
    let unfolded = headers.replace("\r\n ", " ").replace("\r\n\t", " ");
    let content_type = header(&unfolded, "Content-Type").unwrap_or("text/plain");
    let parts: Vec<(String, String)> = if content_type.starts_with("multipart/") {
        let boundary = content_type
            .split(';')
            .find_map(|param| param.trim().strip_prefix("boundary="))
            .expect("a multipart email has a boundary")
            .trim_matches('"');
        body.split(&format!("--{boundary}"))
            .skip(1)
            .filter(|part| !part.starts_with("--"))
            .filter_map(|part| {
                let (headers, body) = part.trim_start_matches("\r\n").split_once("\r\n\r\n")?;
                let headers = headers.replace("\r\n ", " ").replace("\r\n\t", " ");
                Some((headers, body.to_owned()))
            })
            .collect()
    } else {
        vec![(unfolded.clone(), body.to_owned())]
    };
    let (headers, body) = parts
        .iter()
        .find(|(headers, _)| {
            header(headers, "Content-Type").is_none_or(|ct| ct.starts_with("text/plain"))
        })
        .unwrap_or_else(|| panic!("no text/plain part in the email:\n{eml}"));
    let encoding = header(headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    match encoding.as_str() {
        "7bit" | "8bit" | "binary" => body.clone(),
        "quoted-printable" => decode_quoted_printable(body),
        other => panic!("unexpected Content-Transfer-Encoding {other} in the text part"),
    }
}

/// The confirmation link in the email's text part: `{base}/confirm/<token>`.
fn confirmation_link(eml: &str, base: &str) -> String {
    let text = text_part(eml);
    let prefix = format!("{base}/confirm/");
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix}… link in the email's text:\n{text}"));
    let token: String = text[start + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    assert!(
        !token.is_empty(),
        "empty token in the email's text:\n{text}"
    );
    format!("{prefix}{token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_confirm_in_chromium() {
    let Some(driver) = chromedriver_path("register_and_confirm_in_chromium") else {
        return;
    };
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    let state = scratch.path().join("server");
    let profile = scratch.path().join("chromium-profile");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&profile).unwrap();

    let (mut server, base) = start_server(&state, &[]).await;
    let (_chromedriver, webdriver) = start_chromedriver(&driver, scratch.path()).await;
    let client = start_browser(&webdriver, &profile).await;

    // The home page, styled by its own stylesheet.
    client.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(client.title().await.unwrap(), "Register");
    let heading = client.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Register");
    expect_stylesheet(&client).await;
    expect_at(&client, &base, "/").await;

    // Register: only the address is typed; the browser submits whatever else the form holds.
    submit_registration(&client).await;
    expect_flash(&client, REGISTERED).await;
    expect_at(&client, &base, "/").await;
    expect_stylesheet(&client).await;
    let registered_png = screenshot(&client, "registered").await;

    // The email the server wrote, and the link in it.
    let eml = wait_for_email(&state.join("mail"), &mut server).await;
    assert!(eml.contains(&format!("To: {EMAIL}")), "{eml}");
    let link = confirmation_link(&eml, &base);
    eprintln!("confirmation link: {link}");

    // Opening the link shows the button page (a scanner's GET confirms nothing); pressing the
    // button confirms.
    client.goto(&link).await.unwrap();
    assert_eq!(
        text_of(&client, "form#confirm-form button[type=submit]").await,
        "Confirm my account"
    );
    expect_stylesheet(&client).await;
    press_confirm(&client).await;
    expect_flash(&client, CONFIRMED).await;
    expect_at(&client, &base, "/").await;
    expect_stylesheet(&client).await;
    let confirmed_png = screenshot(&client, "confirmed").await;

    client.goto(&link).await.unwrap();
    press_confirm(&client).await;
    expect_flash(&client, ALREADY_CONFIRMED).await;

    client
        .goto(&format!("{base}/confirm/garbage"))
        .await
        .unwrap();
    expect_flash(&client, INVALID_LINK).await;
    expect_at(&client, &base, "/").await;

    client.close().await.unwrap();
    server.assert_running();
    eprintln!(
        "register_and_confirm_in_chromium: passed in {:.1?}; screenshots {} and {}",
        started.elapsed(),
        registered_png.display(),
        confirmed_png.display()
    );
}

const ADMIN_TOKEN: &str = "browser-admin-token-0123456789";

/// Types [`EMAIL`] into the registration form and submits it; the browser sends whatever else
/// the form holds (the CSRF token, the empty honeypot).
/// Presses the link page's "Confirm my account" button.
async fn press_confirm(client: &Client) {
    client
        .wait()
        .at_most(DEADLINE)
        .every(POLL)
        .for_element(Locator::Css("form#confirm-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn submit_registration(client: &Client) {
    let form = register_form(client).await;
    form.find(Locator::Css("input#email"))
        .await
        .unwrap()
        .send_keys(EMAIL)
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The text of the first element matching `css`, waiting (bounded) for it to appear: a click
/// that submits a form returns before the next page has loaded.
async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(DEADLINE)
        .every(POLL)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} within {DEADLINE:?}: {e}"))
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_dashboard_requeues_a_dead_message_in_chromium() {
    let Some(driver) = chromedriver_path("admin_dashboard_requeues_a_dead_message_in_chromium")
    else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let state = scratch.path().join("server");
    let profile = scratch.path().join("chromium-profile");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&profile).unwrap();
    let (mut server, base) = start_server(&state, &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let (_chromedriver, webdriver) = start_chromedriver(&driver, scratch.path()).await;
    let client = start_browser(&webdriver, &profile).await;

    // One registration, delivered; then its message is made dead, as after a 550.
    client.goto(&format!("{base}/")).await.unwrap();
    submit_registration(&client).await;
    expect_flash(&client, REGISTERED).await;
    wait_for_emails(&state.join("mail"), &mut server, 1).await;
    let db = sea_orm::Database::connect(format!(
        "sqlite://{}?mode=rw",
        state.join("app.db").display()
    ))
    .await
    .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &db,
        "UPDATE email_messages SET status = 'dead', \
         last_error = '550 5.1.1 <browser-e2e@example.com>: mailbox unavailable'",
    )
    .await
    .unwrap();
    db.close().await.unwrap();

    // Without the token: refused (a browser would ask for the password; headless cannot).
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let (status, body) = http_get(addr, "/admin").await.unwrap();
    assert_eq!(status, 401);
    assert!(body.contains("Sign in required"));

    // With it (HTTP Basic, the token as password): the dashboard, masked.
    let authed = base.replacen("http://", &format!("http://ops:{ADMIN_TOKEN}@"), 1);
    client.goto(&format!("{authed}/admin")).await.unwrap();
    assert_eq!(text_of(&client, "h1").await, "Delivery dashboard");
    assert_eq!(text_of(&client, "td[data-state=dead]").await, "1");
    let page = client.source().await.unwrap();
    assert!(!page.contains(EMAIL), "the dashboard shows no full address");
    assert!(page.contains("b***@example.com"));
    expect_stylesheet(&client).await;
    let dashboard_png = screenshot(&client, "admin-dashboard").await;

    // The message's page, and its Requeue button.
    client
        .find(Locator::Css("#messages tbody a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(&client, "#state").await, "dead");
    client
        .find(Locator::Css("#requeue-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        text_of(&client, "#notice")
            .await
            .starts_with("Requeued: the message will be sent again")
    );
    let message_png = screenshot(&client, "admin-message").await;

    // Delivered again, and the dashboard says so.
    wait_for_emails(&state.join("mail"), &mut server, 2).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        client.goto(&format!("{authed}/admin")).await.unwrap();
        if text_of(&client, "td[data-state=sent]").await == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the requeued message was not recorded as sent"
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(text_of(&client, "td[data-state=dead]").await, "0");
    client.close().await.unwrap();
    server.assert_running();
    eprintln!(
        "admin dashboard: screenshots {} and {}",
        dashboard_png.display(),
        message_png.display()
    );
}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use confirm_email_address::EmailAddress;

use tokio::net::TcpStream;

use super::pipeline::dot_stuffed;
use super::pool::{Freshness, IdlePool, POOL_FRESH_FOR, POOL_IDLE_TIMEOUT, connect_tcp};
use super::url::{ParsedUrl, parse_url};
use super::*;

fn sender() -> Sender {
    Sender::parse("no-reply@example.com").unwrap()
}

fn parsed(url: &str) -> ParsedUrl {
    parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[test]
fn url_forms_choose_tls_and_ports() {
    let p = parsed("smtps://user:pass@smtp.example.com:465");
    assert_eq!(p.security, SmtpSecurity::ImplicitTls);
    assert_eq!((p.host.as_str(), p.port), ("smtp.example.com", 465));
    assert_eq!(p.credentials, Some(("user".into(), "pass".into())));

    let p = parsed("smtp://user:pass@smtp.example.com:587");
    assert_eq!(p.security, SmtpSecurity::StartTlsRequired);
    assert_eq!(p.port, 587);

    let p = parsed("smtp://127.0.0.1:1025");
    assert_eq!(p.security, SmtpSecurity::StartTlsOpportunistic);
    assert_eq!(p.credentials, None);
    assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 1025));

    assert_eq!(parsed("smtps://u:p@Mail.Example.COM").port, 465);
    assert_eq!(
        parsed("smtps://u:p@Mail.Example.COM").host,
        "mail.example.com"
    );
    assert_eq!(parsed("smtp://u:p@mail.example.com").port, 587);
    assert_eq!(parsed("smtp://mail.example.com").port, 25);
    assert_eq!(parsed("SMTP://mail.example.com?tls=required").port, 587);
}

#[test]
fn explicit_tls_parameter_overrides() {
    assert_eq!(
        parsed("smtp://mail.example.com:25?tls=none").security,
        SmtpSecurity::None
    );
    assert_eq!(
        parsed("smtp://mail.example.com:25?tls=required").security,
        SmtpSecurity::StartTlsRequired
    );
    assert_eq!(
        parsed("smtp://u:p@mail.example.com?tls=required").security,
        SmtpSecurity::StartTlsRequired
    );
    assert_eq!(
        parsed("smtps://u:p@mail.example.com?tls=required").security,
        SmtpSecurity::ImplicitTls
    );
    assert_eq!(
        parse_url("smtps://mail.example.com?tls=none"),
        Err(SmtpConfigError::TlsConflict("none"))
    );
    assert_eq!(
        parse_url("smtp://mail.example.com?tls=maybe"),
        Err(SmtpConfigError::TlsValue)
    );
    assert_eq!(
        parse_url("smtp://mail.example.com?timeout=3"),
        Err(SmtpConfigError::UnknownParameter("timeout".into()))
    );
}

#[test]
fn credentials_are_never_sent_in_clear_except_to_loopback() {
    for url in [
        "smtp://user:s3cret@mail.example.com:25?tls=none",
        "smtp://user:s3cret@mail.example.com:25?tls=opportunistic",
        "smtp://user:s3cret@10.0.0.1:25?tls=none",
    ] {
        let err = parse_url(url).unwrap_err();
        assert!(
            matches!(err, SmtpConfigError::CleartextCredentials { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
    for url in [
        "smtp://user:s3cret@localhost:2525?tls=none",
        "smtp://user:s3cret@127.0.0.1:2525?tls=opportunistic",
        "smtp://user:s3cret@[::1]:2525?tls=none",
    ] {
        assert!(parsed(url).credentials.is_some(), "{url}");
    }
}

#[test]
fn user_and_password_are_percent_decoded() {
    let p = parsed("smtps://me%40example.com:p%40ss%3Aw%2Frd%25@mail.example.com");
    assert_eq!(
        p.credentials,
        Some(("me@example.com".into(), "p@ss:w/rd%".into()))
    );
    // The user information ends at the last `@`: unencoded `@` in a user name works too.
    let p = parsed("smtps://me@example.com:pa%3Fss@mail.example.com:465");
    assert_eq!(
        p.credentials,
        Some(("me@example.com".into(), "pa?ss".into()))
    );
    assert_eq!((p.host.as_str(), p.port), ("mail.example.com", 465));
    let p = parsed("smtps://u:%E2%82%AC@mail.example.com");
    assert_eq!(p.credentials, Some(("u".into(), "€".into())));
}

#[test]
fn bad_urls_give_clear_errors_without_the_password() {
    let cases = [
        ("http://mail.example.com", SmtpConfigError::Scheme),
        ("mail.example.com:25", SmtpConfigError::Scheme),
        ("smtp://", SmtpConfigError::Host),
        ("smtp://:25", SmtpConfigError::Host),
        ("smtp://mail example.com", SmtpConfigError::Host),
        ("smtp://[::1", SmtpConfigError::Host),
        ("smtp://mail.example.com:0", SmtpConfigError::Port),
        ("smtp://mail.example.com:70000", SmtpConfigError::Port),
        ("smtp://mail.example.com:+25", SmtpConfigError::Port),
        // `?` ends the host part, as in every URL: it must be encoded in a password.
        (
            "smtps://me@example.com:pa?ss@mail.example.com:465",
            SmtpConfigError::Port,
        ),
        (
            "smtps://user@mail.example.com",
            SmtpConfigError::IncompleteCredentials,
        ),
        (
            "smtps://user:@mail.example.com",
            SmtpConfigError::IncompleteCredentials,
        ),
        (
            "smtps://:s3cret@mail.example.com",
            SmtpConfigError::IncompleteCredentials,
        ),
        (
            "smtps://u:s3cret%zz@mail.example.com",
            SmtpConfigError::Encoding,
        ),
        (
            "smtps://u:s3cret%+1@mail.example.com",
            SmtpConfigError::Encoding,
        ),
        (
            "smtps://u:s3cret%ff@mail.example.com",
            SmtpConfigError::Encoding,
        ),
        (
            "smtps://u:s3cret%4@mail.example.com",
            SmtpConfigError::Encoding,
        ),
        (
            "smtp://mail.example.com/bad name",
            SmtpConfigError::HelloName,
        ),
    ];
    for (url, want) in cases {
        let err = parse_url(url).unwrap_err();
        assert_eq!(err, want, "{url}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}

#[test]
fn an_empty_port_is_the_default_port() {
    assert_eq!(parsed("smtp://mail.example.com:").port, 25);
    assert_eq!(parsed("smtps://u:p@mail.example.com:").port, 465);
}

#[test]
fn ehlo_name_and_ipv6() {
    let p = parsed("smtp://mail.example.com:25/client.example.org");
    assert_eq!(p.hello_name.as_deref(), Some("client.example.org"));
    let p = parsed("smtp://[::1]:2525");
    assert_eq!((p.host.as_str(), p.port), ("::1", 2525));
}

#[test]
fn debug_and_errors_never_show_credentials() {
    let mailer =
        SmtpMailer::from_url("smtps://someone:hunter2-s3cret@mail.example.com", sender()).unwrap();
    let debug = format!("{mailer:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("someone"), "{debug}");
    assert!(debug.contains("mail.example.com"), "{debug}");
    assert!(debug.contains("ImplicitTls"), "{debug}");
    assert_eq!(mailer.provider(), "smtp");
    assert!(mailer.is_authenticated());
    assert_eq!(mailer.security(), SmtpSecurity::ImplicitTls);
    assert_eq!((mailer.host(), mailer.port()), ("mail.example.com", 465));
}

#[test]
fn classification_table() {
    let s = "mail.example.com:587";
    let cases = [
        (Failure::Reply(421), "transient"),
        (Failure::Reply(450), "transient"),
        (Failure::Reply(451), "transient"),
        (Failure::Reply(452), "transient"),
        (Failure::Reply(454), "transient"),
        (Failure::Reply(500), "permanent"),
        (Failure::Reply(550), "permanent"),
        (Failure::Reply(552), "permanent"),
        (Failure::Reply(553), "permanent"),
        (Failure::Reply(554), "permanent"),
        (Failure::Reply(530), "account"),
        (Failure::Reply(534), "account"),
        (Failure::Reply(535), "account"),
        (Failure::Reply(538), "account"),
        (Failure::Timeout, "transient"),
        (Failure::Tls, "account"),
        (Failure::Connection, "transient"),
        (Failure::Client, "permanent"),
    ];
    for (failure, want) in cases {
        let got = classify(failure, s, "detail");
        let class = match &got {
            MailError::Transient(_) => "transient",
            MailError::Permanent(_) => "permanent",
            MailError::Account(_) => "account",
        };
        assert_eq!(class, want, "{failure:?}: {got}");
        assert!(got.to_string().contains(s), "{got}");
    }
    let no_starttls = classify(
        Failure::Client,
        s,
        "internal client error: STARTTLS is not supported on this server",
    );
    assert!(
        matches!(no_starttls, MailError::Account(_)),
        "{no_starttls}"
    );
    let no_auth = classify(
        Failure::Client,
        s,
        "internal client error: No compatible authentication mechanism was found",
    );
    assert!(matches!(no_auth, MailError::Account(_)), "{no_auth}");
}

/// Waits (yielding, within 5 s) until no driver task runs: every connection is then idle
/// or closed.
async fn settled(mailer: &SmtpMailer) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while mailer.pool.queue().drivers > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the drivers stop once no message waits");
}

fn message_to(to: &str) -> Message {
    Message {
        to: EmailAddress::parse(to).unwrap(),
        subject: "s".into(),
        text: "t".into(),
        html: None,
        action_url: None,
    }
}

/// A server that accepts connections and never says anything: the send must give up.
#[tokio::test]
async fn silent_server_times_out_as_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let accept = tokio::spawn({
        let accepted = Arc::clone(&accepted);
        async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        }
    });
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), sender())
        .unwrap()
        .with_timeouts(Duration::from_secs(1), Duration::from_millis(300));
    let message = message_to("someone@example.org");
    let err = mailer.send(&message).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    // The connection went with the timed-out send; the next send opens another one (and
    // fails the same way), and the first one's slot was given back.
    let err = mailer.send(&message).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    settled(&mailer).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(mailer.pool.idle.len(), 0);
    accept.abort();
}

// --- the idle pool, with injected times ------------------------------------------------

fn pool() -> IdlePool<u32> {
    IdlePool::new(POOL_FRESH_FOR, POOL_IDLE_TIMEOUT)
}

#[test]
fn idle_pool_reuses_the_most_recent_connection_first() {
    let t0 = Instant::now();
    let pool = pool();
    assert_eq!(pool.take(t0), (None, vec![]));
    pool.put(1, t0);
    pool.put(2, t0 + Duration::from_millis(10));
    assert_eq!(pool.len(), 2);
    let at = t0 + Duration::from_millis(500);
    assert_eq!(pool.take(at), (Some((2, Freshness::Fresh)), vec![]));
    assert_eq!(pool.take(at), (Some((1, Freshness::Fresh)), vec![]));
    assert_eq!(pool.take(at), (None, vec![]));
}

#[test]
fn idle_pool_checks_after_a_second_and_expires_after_thirty() {
    let t0 = Instant::now();
    let pool = pool();
    pool.put(1, t0);
    let just_fresh = t0 + POOL_FRESH_FOR - Duration::from_millis(1);
    assert_eq!(pool.take(just_fresh), (Some((1, Freshness::Fresh)), vec![]));

    pool.put(1, t0);
    assert_eq!(
        pool.take(t0 + POOL_FRESH_FOR),
        (Some((1, Freshness::Stale)), vec![])
    );

    pool.put(1, t0);
    let just_alive = t0 + POOL_IDLE_TIMEOUT - Duration::from_millis(1);
    assert_eq!(pool.take(just_alive), (Some((1, Freshness::Stale)), vec![]));

    pool.put(1, t0);
    assert_eq!(pool.take(t0 + POOL_IDLE_TIMEOUT), (None, vec![1]));
    assert_eq!(pool.len(), 0);
}

#[test]
fn idle_pool_hands_out_expired_connections_for_closing() {
    let t0 = Instant::now();
    let pool = pool();
    pool.put(1, t0);
    pool.put(2, t0 + Duration::from_secs(1));
    pool.put(3, t0 + Duration::from_secs(20));
    // At t0 + 31 s: 1 and 2 idled past 30 s, 3 for 11 s (to be checked with NOOP).
    let (taken, expired) = pool.take(t0 + Duration::from_secs(31));
    assert_eq!(taken, Some((3, Freshness::Stale)));
    assert_eq!(expired, vec![1, 2]);
    assert_eq!(pool.len(), 0);
    // A clock that went backwards (times from different threads) counts as no idle time.
    pool.put(4, t0 + Duration::from_secs(40));
    assert_eq!(
        pool.take(t0 + Duration::from_secs(39)),
        (Some((4, Freshness::Fresh)), vec![])
    );
    pool.put(5, t0);
    pool.put(6, t0);
    assert_eq!(pool.drain(), vec![5, 6]);
    assert_eq!(pool.len(), 0);
}

#[test]
fn max_connections_default_and_builder() {
    let url = "smtp://127.0.0.1:2525";
    let mailer = SmtpMailer::from_url(url, sender()).unwrap();
    assert_eq!(mailer.max_connections(), DEFAULT_MAX_CONNECTIONS);
    let mailer = mailer.with_max_connections(9);
    assert_eq!(mailer.max_connections(), 9);
    let mailer = SmtpMailer::from_url(url, sender())
        .unwrap()
        .with_max_connections(0);
    assert_eq!(mailer.max_connections(), 1);
    assert!(format!("{mailer:?}").contains("max_connections: 1"));
}

// --- the TCP connect helper ---------------------------------------------------------------

#[tokio::test]
async fn connect_sets_nodelay() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stream = connect_tcp("127.0.0.1", port, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{:?}", e.into_parts()));
    assert!(stream.nodelay().unwrap());
    assert_eq!(stream.peer_addr().unwrap().port(), port);
    // A name that resolves to several addresses (::1 and 127.0.0.1, in either order): the
    // helper tries them in turn and reaches the IPv4 listener.
    let stream = connect_tcp("localhost", port, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{:?}", e.into_parts()));
    assert!(stream.nodelay().unwrap());
}

#[tokio::test]
async fn connect_refused_is_a_connection_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let Err(failure) = connect_tcp("127.0.0.1", port, Duration::from_secs(5)).await else {
        panic!("connected to a closed port");
    };
    let (failure, detail) = failure.into_parts();
    assert_eq!(failure, Failure::Connection, "{detail}");
    assert!(detail.contains(&format!("127.0.0.1:{port}")), "{detail}");
    let err = classify(failure, "127.0.0.1", &detail);
    assert!(matches!(err, MailError::Transient(_)), "{err}");
}

// --- a fake SMTP server -------------------------------------------------------------------

/// What the fake server saw.
#[derive(Debug, Default)]
struct Counts {
    /// TCP connections accepted.
    connections: AtomicUsize,
    /// Connections open right now, and the most open at once.
    open: AtomicUsize,
    max_open: AtomicUsize,
    mails: AtomicUsize,
    /// Messages received in full (up to `\r\n.\r\n`).
    messages: AtomicUsize,
    noops: AtomicUsize,
    auths: AtomicUsize,
    starttls: AtomicUsize,
    /// `MAIL` commands that arrived together with the next command (not waiting for the
    /// reply).
    pipelined: AtomicUsize,
    /// Body lines received that started with `..` (a stuffed dot).
    stuffed_lines: AtomicUsize,
    /// Messages whose final `.` arrived together with the next `MAIL` command.
    content_pipelined: AtomicUsize,
    rsets: AtomicUsize,
}

impl Counts {
    fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Behaviour {
    /// Close the connection right after accepting a message.
    close_after_message: bool,
    /// Never answer the end of the first message's DATA (the message is counted).
    hang_first_data: bool,
    /// Offer STARTTLS in the EHLO reply, and refuse it with 454 when asked.
    offer_starttls: bool,
    /// Offer PIPELINING in the EHLO reply.
    offer_pipelining: bool,
    /// Refuse every `RCPT` with 550.
    refuse_rcpt: bool,
    /// Refuse with 550 the `RCPT` of addresses containing this.
    refuse_rcpt_containing: Option<&'static str>,
    /// After this many messages on a connection, answer the next command with 421 and
    /// close it.
    close_with_421_after: Option<usize>,
}

struct FakeServer {
    port: u16,
    counts: Arc<Counts>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FakeServer {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Counts::default());
        let first_data = Arc::new(AtomicBool::new(true));
        let accept = tokio::spawn({
            let counts = Arc::clone(&counts);
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    counts.connections.fetch_add(1, Ordering::SeqCst);
                    let open = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
                    counts.max_open.fetch_max(open, Ordering::SeqCst);
                    let counts = Arc::clone(&counts);
                    let first_data = Arc::clone(&first_data);
                    tokio::spawn(async move {
                        let _ = serve(socket, &counts, behaviour, &first_data).await;
                        counts.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        });
        Self {
            port,
            counts,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn mailer(&self) -> SmtpMailer {
        SmtpMailer::from_url(&self.url(), sender())
            .unwrap()
            .with_timeouts(Duration::from_secs(5), Duration::from_secs(10))
    }
}

/// Just enough ESMTP for lettre's client, with postfix's checks of the command order.
async fn serve(
    socket: TcpStream,
    counts: &Counts,
    behaviour: Behaviour,
    first_data: &AtomicBool,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 fake.test ESMTP\r\n").await?;
    let mut line = String::new();
    // `MAIL` given, and recipients accepted, in the current transaction.
    let mut mail = false;
    let mut recipients = 0;
    let mut accepted = 0;
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if behaviour.close_with_421_after == Some(accepted) {
            write
                .write_all(b"421 4.7.0 fake.test Error: too many messages\r\n")
                .await?;
            return Ok(());
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if behaviour.offer_starttls => {
                b"250-fake.test\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
            }
            "EHLO" if behaviour.offer_pipelining => {
                b"250-fake.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n"
            }
            "EHLO" => b"250-fake.test\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n",
            "STARTTLS" => {
                counts.starttls.fetch_add(1, Ordering::SeqCst);
                b"454 4.7.0 TLS not available\r\n"
            }
            "AUTH" => {
                counts.auths.fetch_add(1, Ordering::SeqCst);
                b"235 2.7.0 Authentication successful\r\n"
            }
            "MAIL" if mail => b"503 5.5.1 Error: nested MAIL command\r\n",
            "MAIL" => {
                counts.mails.fetch_add(1, Ordering::SeqCst);
                if read.buffer().starts_with(b"RCPT") {
                    counts.pipelined.fetch_add(1, Ordering::SeqCst);
                }
                mail = true;
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" if !mail => b"503 5.5.1 Error: need MAIL command\r\n",
            "RCPT"
                if behaviour.refuse_rcpt
                    || behaviour
                        .refuse_rcpt_containing
                        .is_some_and(|part| line.contains(part)) =>
            {
                b"550 5.1.1 No such user\r\n"
            }
            "RCPT" => {
                recipients += 1;
                b"250 2.1.5 OK\r\n"
            }
            "RSET" => {
                counts.rsets.fetch_add(1, Ordering::SeqCst);
                (mail, recipients) = (false, 0);
                b"250 2.0.0 OK\r\n"
            }
            "DATA" if recipients == 0 => b"554 5.5.1 Error: no valid recipients\r\n",
            "NOOP" => {
                counts.noops.fetch_add(1, Ordering::SeqCst);
                b"250 2.0.0 OK\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                loop {
                    line.clear();
                    if read.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    if line.starts_with("..") {
                        counts.stuffed_lines.fetch_add(1, Ordering::SeqCst);
                    }
                }
                counts.messages.fetch_add(1, Ordering::SeqCst);
                if read.buffer().starts_with(b"MAIL") {
                    counts.content_pipelined.fetch_add(1, Ordering::SeqCst);
                }
                (mail, recipients) = (false, 0);
                accepted += 1;
                if behaviour.hang_first_data && first_data.swap(false, Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                write.write_all(b"250 2.0.0 Queued\r\n").await?;
                if behaviour.close_after_message {
                    return Ok(());
                }
                continue;
            }
            _ => b"500 5.5.2 Unknown command\r\n",
        };
        write.write_all(reply).await?;
    }
}

#[test]
fn dot_stuffing_doubles_a_dot_at_the_start_of_each_line() {
    assert_eq!(dot_stuffed("a\r\nb"), "a\r\nb\r\n.\r\n");
    assert_eq!(
        dot_stuffed(".a\r\n.\r\nb.c\r\n..d\r\n"),
        "..a\r\n..\r\nb.c\r\n...d\r\n\r\n.\r\n"
    );
    // Only after CRLF, as lettre does it.
    assert_eq!(dot_stuffed("a\n.b\r.c"), "a\n.b\r.c\r\n.\r\n");
}

/// With PIPELINING offered, MAIL, RCPT and DATA go out together, the body is dot-stuffed,
/// and the connection is reused; without it, every command waits for its reply.
#[tokio::test]
async fn pipelines_mail_rcpt_data_only_when_the_server_offers_it() {
    for offer_pipelining in [true, false] {
        let server = FakeServer::start(Behaviour {
            offer_pipelining,
            ..Behaviour::default()
        })
        .await;
        let mailer = server.mailer();
        for i in 0..5 {
            let mut message = message_to(&format!("user{i}@example.org"));
            message.text = ".starts with a dot\n..and two\nnone.".into();
            mailer.send(&message).await.unwrap();
        }
        let counts = &server.counts;
        assert_eq!(Counts::get(&counts.messages), 5);
        assert_eq!(Counts::get(&counts.connections), 1);
        let expected = if offer_pipelining { 5 } else { 0 };
        assert_eq!(
            Counts::get(&counts.pipelined),
            expected,
            "{offer_pipelining}"
        );
        assert!(
            Counts::get(&counts.stuffed_lines) >= 10,
            "two stuffed lines per message"
        );
    }
}

/// A refused recipient in a pipelined send is a permanent failure; `DATA` is refused after
/// it, and `RSET` clears the transaction so that the connection is kept.
#[tokio::test]
async fn pipelined_refusal_is_permanent_and_the_connection_is_reset_and_kept() {
    let server = FakeServer::start(Behaviour {
        offer_pipelining: true,
        refuse_rcpt: true,
        ..Behaviour::default()
    })
    .await;
    let mailer = server.mailer();
    for _ in 0..2 {
        let err = mailer
            .send(&message_to("nobody@example.org"))
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::Permanent(_)), "{err:?}");
        assert!(err.to_string().contains("550"), "{err}");
    }
    settled(&mailer).await;
    let counts = &server.counts;
    assert_eq!(Counts::get(&counts.messages), 0);
    assert_eq!(Counts::get(&counts.rsets), 2);
    assert_eq!(Counts::get(&counts.connections), 1);
    assert_eq!(mailer.pool.idle.len(), 1);
}

/// Sends to each address at once (the sends are queued before the first driver runs, on
/// this single-threaded test runtime) and returns each result, in order.
async fn send_all(
    mailer: &Arc<SmtpMailer>,
    to: &[impl AsRef<str>],
) -> Vec<Result<Sent, MailError>> {
    let sends: Vec<_> = to
        .iter()
        .map(|to| {
            let mailer = Arc::clone(mailer);
            let message = message_to(to.as_ref());
            tokio::spawn(async move { mailer.send(&message).await })
        })
        .collect();
    let mut results = Vec::new();
    for send in sends {
        results.push(send.await.unwrap());
    }
    results
}

/// Sends 10 messages at once through one connection to a server with `behaviour` that
/// offers PIPELINING, checks that every one was accepted, and waits for the driver to stop.
async fn ten_sends_on_one_connection(behaviour: Behaviour) -> (FakeServer, Arc<SmtpMailer>) {
    let server = FakeServer::start(Behaviour {
        offer_pipelining: true,
        ..behaviour
    })
    .await;
    let mailer = Arc::new(server.mailer().with_max_connections(1));
    let to = users(10);
    for result in send_all(&mailer, &to).await {
        result.unwrap();
    }
    settled(&mailer).await;
    (server, mailer)
}

/// Under load each message's content goes out in the same write as the next message's
/// `MAIL`, `RCPT` and `DATA`: one round trip per message.
#[tokio::test]
async fn a_message_content_and_the_next_commands_share_one_write() {
    let (server, mailer) = ten_sends_on_one_connection(Behaviour::default()).await;
    let counts = &server.counts;
    assert_eq!(Counts::get(&counts.messages), 10);
    assert_eq!(Counts::get(&counts.connections), 1);
    // Every content but the last one's, which had no message after it.
    assert_eq!(Counts::get(&counts.content_pipelined), 9);
    assert_eq!(Counts::get(&counts.rsets), 0);
    assert_eq!(mailer.pool.idle.len(), 1);
}

/// A refused recipient among pipelined messages fails that message only: the others go
/// out on the same connection.
#[tokio::test]
async fn a_refused_recipient_fails_only_its_own_message() {
    let server = FakeServer::start(Behaviour {
        offer_pipelining: true,
        refuse_rcpt_containing: Some("refused"),
        ..Behaviour::default()
    })
    .await;
    let mailer = Arc::new(server.mailer().with_max_connections(1));
    let to = [
        "a@example.org",
        "refused1@example.org",
        "b@example.org",
        "c@example.org",
        "refused2@example.org",
        "d@example.org",
    ];
    let results = send_all(&mailer, &to).await;
    for (to, result) in to.iter().zip(&results) {
        if to.starts_with("refused") {
            let err = result.as_ref().unwrap_err();
            assert!(matches!(err, MailError::Permanent(_)), "{to}: {err}");
            assert!(!err.to_string().contains("refused1@"), "{err}");
        } else {
            assert!(result.is_ok(), "{to}: {result:?}");
        }
    }
    settled(&mailer).await;
    let counts = &server.counts;
    assert_eq!(Counts::get(&counts.messages), 4);
    assert_eq!(Counts::get(&counts.rsets), 2);
    assert_eq!(Counts::get(&counts.connections), 1);
}

/// A server that closes the connection after each message, before reading the next
/// message's commands (sent with the content): that message goes out on a new connection,
/// and no send fails.
#[tokio::test]
async fn messages_cut_off_by_a_closed_connection_go_out_on_a_new_one() {
    let (server, _mailer) = ten_sends_on_one_connection(Behaviour {
        close_after_message: true,
        ..Behaviour::default()
    })
    .await;
    let counts = &server.counts;
    assert_eq!(Counts::get(&counts.messages), 10);
    assert_eq!(Counts::get(&counts.connections), 10);
}

/// A 421 "closing" reply to a message's commands is that message's (transient) answer, not
/// tried again by the mailer: the worker's retry policy counts every attempt the server
/// saw. The messages after it go out on a new connection.
#[tokio::test]
async fn a_closing_reply_fails_its_message_and_the_next_ones_reconnect() {
    let server = FakeServer::start(Behaviour {
        offer_pipelining: true,
        close_with_421_after: Some(3),
        ..Behaviour::default()
    })
    .await;
    let mailer = Arc::new(server.mailer().with_max_connections(1));
    let to = users(10);
    let results = send_all(&mailer, &to).await;
    let failed: Vec<usize> = (0..10).filter(|i| results[*i].is_err()).collect();
    // Connections of 3 messages each: the 4th and the 8th got the 421.
    assert_eq!(failed, [3, 7]);
    for i in failed {
        let err = results[i].as_ref().unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err}");
        assert!(err.to_string().contains("421"), "{err}");
    }
    settled(&mailer).await;
    assert_eq!(Counts::get(&server.counts.messages), 8);
    assert_eq!(Counts::get(&server.counts.connections), 3);
}

/// When the server stops answering, the message whose content went out and the one whose
/// commands went with it both time out, and neither is sent again by the mailer (the
/// worker's retry decides).
#[tokio::test]
async fn a_timed_out_exchange_is_not_sent_again() {
    let server = FakeServer::start(Behaviour {
        offer_pipelining: true,
        hang_first_data: true,
        ..Behaviour::default()
    })
    .await;
    let mailer = Arc::new(
        server
            .mailer()
            .with_max_connections(1)
            .with_timeouts(Duration::from_secs(5), Duration::from_millis(300)),
    );
    let results = send_all(&mailer, &["a@example.org", "b@example.org"]).await;
    for result in results {
        let err = result.unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
    }
    settled(&mailer).await;
    let counts = &server.counts;
    // The server hung after the first content, before reading the second `MAIL`.
    assert_eq!(Counts::get(&counts.messages), 1);
    assert_eq!(Counts::get(&counts.connections), 1);
    assert_eq!(mailer.pool.idle.len(), 0);
}

#[tokio::test]
async fn sequential_sends_share_one_connection_without_noop() {
    let server = FakeServer::start(Behaviour::default()).await;
    let mailer = server.mailer();
    for i in 0..20 {
        let sent = mailer
            .send(&message_to(&format!("user{i}@example.org")))
            .await
            .unwrap();
        assert!(sent.provider_message_id.is_some());
    }
    let counts = &server.counts;
    assert_eq!(Counts::get(&counts.messages), 20);
    assert_eq!(Counts::get(&counts.connections), 1);
    assert_eq!(
        Counts::get(&counts.noops),
        0,
        "reuse within 1 s sends no NOOP"
    );
    assert_eq!(mailer.pool.idle.len(), 1);
}

/// Sends `n` messages at once through `mailer` and checks that every one was accepted.
async fn send_concurrently(mailer: &Arc<SmtpMailer>, n: usize) {
    for result in send_all(mailer, &users(n)).await {
        result.unwrap();
    }
}

/// `user0@example.org`, `user1@example.org`, …
fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i}@example.org")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_open_at_most_max_connections() {
    let server = FakeServer::start(Behaviour::default()).await;
    let mailer = Arc::new(server.mailer().with_max_connections(4));
    send_concurrently(&mailer, 40).await;
    let counts = &server.counts;
    assert_eq!(Counts::get(&counts.messages), 40);
    let connections = Counts::get(&counts.connections);
    assert!((1..=4).contains(&connections), "{connections} connections");
    assert!(Counts::get(&counts.max_open) <= 4);
    settled(&mailer).await;
    assert_eq!(
        mailer.pool.idle.len(),
        connections,
        "every connection is back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_concurrent_sends_in_turn() {
    let server = FakeServer::start(Behaviour::default()).await;
    let mailer = Arc::new(server.mailer().with_max_connections(1));
    send_concurrently(&mailer, 10).await;
    assert_eq!(Counts::get(&server.counts.messages), 10);
    assert_eq!(Counts::get(&server.counts.connections), 1);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_not_reused_after_the_failure() {
    let server = FakeServer::start(Behaviour {
        close_after_message: true,
        ..Behaviour::default()
    })
    .await;
    let mailer = server.mailer();
    let message = message_to("someone@example.org");
    mailer.send(&message).await.unwrap();
    assert_eq!(mailer.pool.idle.len(), 1, "lettre cannot see the close yet");
    // Reused within 1 s without a check: the dead connection fails this send, transiently.
    let err = mailer.send(&message).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    assert!(!err.to_string().contains("someone@"), "{err}");
    assert_eq!(
        mailer.pool.idle.len(),
        0,
        "the failed connection was dropped"
    );
    // The next send opens a new connection and succeeds.
    mailer.send(&message).await.unwrap();
    assert_eq!(Counts::get(&server.counts.connections), 2);
    assert_eq!(Counts::get(&server.counts.messages), 2);
}

#[tokio::test]
async fn a_stale_connection_is_checked_with_noop_and_replaced_when_dead() {
    let server = FakeServer::start(Behaviour {
        close_after_message: true,
        ..Behaviour::default()
    })
    .await;
    let mut mailer = server.mailer();
    // Every idle connection counts as idle for more than a second.
    Arc::get_mut(&mut mailer.pool).unwrap().idle.fresh_for = Duration::ZERO;
    let message = message_to("someone@example.org");
    mailer.send(&message).await.unwrap();
    // The NOOP finds the connection closed, so this send opens a new one.
    mailer.send(&message).await.unwrap();
    assert_eq!(Counts::get(&server.counts.connections), 2);
    assert_eq!(Counts::get(&server.counts.messages), 2);
}

#[tokio::test]
async fn a_stale_live_connection_is_reused_after_one_noop() {
    let server = FakeServer::start(Behaviour::default()).await;
    let mut mailer = server.mailer();
    Arc::get_mut(&mut mailer.pool).unwrap().idle.fresh_for = Duration::ZERO;
    let message = message_to("someone@example.org");
    for _ in 0..3 {
        mailer.send(&message).await.unwrap();
    }
    assert_eq!(Counts::get(&server.counts.connections), 1);
    assert_eq!(Counts::get(&server.counts.noops), 2);
    assert_eq!(Counts::get(&server.counts.messages), 3);
}

#[tokio::test]
async fn an_expired_connection_is_closed_not_reused() {
    let server = FakeServer::start(Behaviour::default()).await;
    let mut mailer = server.mailer();
    // Every idle connection counts as idle for more than 30 s.
    Arc::get_mut(&mut mailer.pool).unwrap().idle.idle_timeout = Duration::ZERO;
    let message = message_to("someone@example.org");
    mailer.send(&message).await.unwrap();
    mailer.send(&message).await.unwrap();
    assert_eq!(Counts::get(&server.counts.connections), 2);
    assert_eq!(Counts::get(&server.counts.noops), 0);
    assert_eq!(mailer.pool.idle.len(), 1);
}

#[tokio::test]
async fn a_timed_out_connection_is_dropped_and_the_next_send_reconnects() {
    let server = FakeServer::start(Behaviour {
        hang_first_data: true,
        ..Behaviour::default()
    })
    .await;
    let mailer = server
        .mailer()
        .with_timeouts(Duration::from_secs(5), Duration::from_millis(500));
    let message = message_to("someone@example.org");
    let err = mailer.send(&message).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(mailer.pool.idle.len(), 0);
    mailer.send(&message).await.unwrap();
    assert_eq!(Counts::get(&server.counts.connections), 2);
    assert_eq!(Counts::get(&server.counts.messages), 2);
}

#[tokio::test]
async fn credentials_authenticate_once_per_connection() {
    let server = FakeServer::start(Behaviour::default()).await;
    let url = format!("smtp://user:s3cret@127.0.0.1:{}?tls=none", server.port);
    let mailer = SmtpMailer::from_url(&url, sender()).unwrap();
    let message = message_to("someone@example.org");
    for _ in 0..3 {
        mailer.send(&message).await.unwrap();
    }
    assert_eq!(Counts::get(&server.counts.auths), 1);
    assert_eq!(Counts::get(&server.counts.connections), 1);
    assert_eq!(Counts::get(&server.counts.messages), 3);
}

#[tokio::test]
async fn required_starttls_not_offered_sends_nothing() {
    let server = FakeServer::start(Behaviour::default()).await;
    let url = format!("smtp://user:s3cret@127.0.0.1:{}", server.port);
    let mailer = SmtpMailer::from_url(&url, sender()).unwrap();
    assert_eq!(mailer.security(), SmtpSecurity::StartTlsRequired);
    let err = mailer
        .send(&message_to("someone@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Account(_)), "{err}");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert_eq!(Counts::get(&server.counts.auths), 0);
    assert_eq!(Counts::get(&server.counts.mails), 0);
    assert_eq!(mailer.pool.idle.len(), 0);
}

#[tokio::test]
async fn opportunistic_starttls_is_tried_when_offered() {
    let server = FakeServer::start(Behaviour {
        offer_starttls: true,
        ..Behaviour::default()
    })
    .await;
    let mailer = server.mailer();
    assert_eq!(mailer.security(), SmtpSecurity::StartTlsOpportunistic);
    let err = mailer
        .send(&message_to("someone@example.org"))
        .await
        .unwrap_err();
    // The fake server refuses STARTTLS with 454: a deferral.
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    assert!(err.to_string().contains("454"), "{err}");
    assert_eq!(Counts::get(&server.counts.starttls), 1);
    assert_eq!(Counts::get(&server.counts.mails), 0);
}

/// A TLS handshake with a server that does not speak TLS (a wrong port) cannot succeed until
/// an operator acts: an account-level failure, which pauses sending.
#[tokio::test]
async fn implicit_tls_against_a_plain_server_is_an_account_failure() {
    let server = FakeServer::start(Behaviour::default()).await;
    let url = format!("smtps://127.0.0.1:{}", server.port);
    let mailer = SmtpMailer::from_url(&url, sender())
        .unwrap()
        .with_timeouts(Duration::from_secs(5), Duration::from_secs(5));
    let err = mailer
        .send(&message_to("someone@example.org"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Account(_)), "{err}");
    assert!(err.to_string().contains("TLS failure"), "{err}");
    assert_eq!(Counts::get(&server.counts.connections), 1);
    assert_eq!(Counts::get(&server.counts.mails), 0);
    assert_eq!(mailer.pool.idle.len(), 0);
}

//! `worker`: the standalone delivery process, used with Redis (`REDIS_URL`).
//!
//! Consumes the queue with WORKER_CONCURRENCY sends at once, records every outcome, runs the
//! sweeper, and on SIGTERM or Ctrl-C stops taking jobs, finishes the ones in flight (bounded by
//! WORKER_SHUTDOWN_TIMEOUT) and exits 0.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use settings::Settings;
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "worker",
    version,
    about = "Email-confirmation service: the delivery worker"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume the queue and send the emails owed (the default).
    Run,
    /// Exit 0 if the worker is ready (for container healthchecks): with WORKER_METRICS_ADDR, the
    /// running worker's `/readyz` answers 200; without it, the database and the queue answer.
    Healthcheck,
    /// Send a short test email (no link, no token) through the configured mailer, and print
    /// `sent: provider=… message_id=…`, or the classified error on stderr (exit 1).
    SendTestEmail {
        /// The recipient.
        #[arg(long, value_name = "ADDR", value_parser = parse_address)]
        to: domain::EmailAddress,
    },
    /// Print the message counts by state, the age of the oldest owed message and the queue
    /// depth, one `name value` per line.
    Stats,
    /// Inspect and recover dead messages (permanent failures, or retries exhausted).
    #[command(subcommand)]
    Dead(DeadCommand),
}

#[derive(Debug, Subcommand)]
enum DeadCommand {
    /// List dead messages, most recent failure first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Requeue one dead message (by id), or all of them: attempts start again from zero.
    Requeue {
        /// The message id (from `worker dead list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Requeue every dead message.
        #[arg(long)]
        all: bool,
    },
    /// Delete dead messages that failed longer ago than a duration (e.g. 30d, 12h).
    Purge {
        #[arg(long, value_name = "DURATION", value_parser = parse_age)]
        older_than: std::time::Duration,
    },
}

fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    settings::parse_duration(text)
}

fn parse_address(text: &str) -> Result<domain::EmailAddress, String> {
    domain::EmailAddress::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    settings::telemetry::init();
    if let Some(Command::SendTestEmail { to }) = &cli.command {
        // A send failure is the command's answer (printed once, exit 1), not a startup error.
        let mut sent = true;
        let status = worker::run_main(worker::Threads::One, async {
            sent = send_test_email(to).await?;
            Ok(())
        });
        return if sent { status } else { ExitCode::FAILURE };
    }
    worker::run_main(worker::Threads::One, async {
        match cli.command {
            None | Some(Command::Run) => run().await,
            Some(Command::Healthcheck) => healthcheck().await,
            Some(Command::Dead(command)) => dead(command).await,
            Some(Command::Stats) => stats().await,
            Some(Command::SendTestEmail { .. }) => Ok(()),
        }
    })
}

async fn healthcheck() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    if let Some(addr) = settings.worker_metrics_addr()? {
        // The running worker's own readiness: it is up, and reaches the database and the queue.
        return worker::probe(addr, "/readyz", std::time::Duration::from_secs(3)).await;
    }
    let store = settings.connect_store_unchecked().await?;
    store.ping().await?;
    let queue = settings.build_queue().await?;
    queue.depth().await?;
    Ok(())
}

async fn dead(command: DeadCommand) -> anyhow::Result<()> {
    use store::MessageStore;

    let settings = Settings::load()?;
    let store = settings
        .connect_store()
        .await
        .context("cannot use the database at DATABASE_URL")?;
    let now = chrono::Utc::now();
    match command {
        DeadCommand::List { limit } => print_dead(&store.dead(limit).await?),
        DeadCommand::Requeue { id, all } => {
            let id = if all { None } else { id.map(domain::MessageId) };
            let requeued = store.requeue_dead(id, now).await?;
            if let (Some(id), true) = (id, requeued.is_empty()) {
                anyhow::bail!("message {id} is not dead (see `worker dead list`)");
            }
            let published = if settings.embedded_queue() {
                0
            } else {
                let queue = settings.build_queue().await?;
                let mut published = 0;
                for message_id in &requeued {
                    // A failed publish is not lost: the row is queued and the sweeper finds it.
                    if queue.publish(queue::Job::new(*message_id)).await.is_ok() {
                        published += 1;
                    }
                }
                published
            };
            say(&format!(
                "requeued {} message(s){}",
                requeued.len(),
                if settings.embedded_queue() {
                    String::from("; the server's delivery loop will send them")
                } else {
                    format!(", {published} published to the queue (the sweeper picks up the rest)")
                }
            ));
        }
        DeadCommand::Purge { older_than } => {
            let cutoff = now - chrono::TimeDelta::from_std(older_than)?;
            let purged = store.purge_dead(cutoff).await?;
            say(&format!(
                "purged {purged} dead message(s) last changed before {}",
                cutoff.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
    }
    Ok(())
}

/// Command output goes to stdout (logs go to stderr).
#[expect(clippy::print_stdout, reason = "this is the command's output")]
fn say(line: &str) {
    println!("{line}");
}

/// A command's failure answer, on stderr.
#[expect(clippy::print_stderr, reason = "this is the command's error output")]
fn complain(line: &str) {
    eprintln!("{line}");
}

/// `worker send-test-email`: `Ok(true)` sent, `Ok(false)` the provider refused (printed).
async fn send_test_email(to: &domain::EmailAddress) -> anyhow::Result<bool> {
    let settings = Settings::load()?;
    let mailer = settings.build_mailer().await?;
    match worker::ops::send_test_email(mailer.as_ref(), to, chrono::Utc::now()).await {
        Ok(line) => {
            say(&line);
            Ok(true)
        }
        Err(error) => {
            complain(&error.to_string());
            Ok(false)
        }
    }
}

/// `worker stats`.
async fn stats() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let store = settings
        .connect_store()
        .await
        .context("cannot use the database at DATABASE_URL")?;
    // Without REDIS_URL the queue lives inside `server`: there is no depth to read from here.
    let queue = if settings.embedded_queue() {
        None
    } else {
        Some(settings.build_queue().await?)
    };
    let report = worker::ops::stats_report(&store, queue.as_deref(), chrono::Utc::now()).await?;
    say(report.trim_end());
    Ok(())
}

fn print_dead(messages: &[domain::MessageRecord]) {
    if messages.is_empty() {
        say("no dead messages");
        return;
    }
    say(&format!(
        "{:>8}  {:<32}  {:>8}  {:<20}  LAST ERROR",
        "ID", "RECIPIENT", "ATTEMPTS", "FAILED AT (UTC)"
    ));
    for m in messages {
        let error: String = m
            .last_error
            .as_deref()
            .unwrap_or("-")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(120)
            .collect();
        say(&format!(
            "{:>8}  {:<32}  {:>8}  {:<20}  {error}",
            m.message.id,
            m.message.recipient.masked(),
            m.message.attempts,
            m.updated_at.format("%Y-%m-%d %H:%M:%S"),
        ));
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    if settings.embedded_queue() {
        bail!(
            "REDIS_URL is not set. Without Redis, `server` delivers email itself and there is nothing \
             for a separate worker to do; set REDIS_URL to run server and worker as separate processes"
        );
    }
    let services = worker::Services::from_settings(&settings)
        .await
        .context("cannot start")?;
    let mailer = settings.build_mailer().await?;
    let metrics = settings::metrics::install();
    let (stop, stopped) = watch::channel(false);
    let listener = match settings.worker_metrics_addr()? {
        Some(addr) => Some(
            worker::ops::start_listener(addr, &services, metrics, stopped.clone())
                .await
                .with_context(|| format!("cannot listen on WORKER_METRICS_ADDR={addr}"))?,
        ),
        None => None,
    };
    tokio::spawn(async move {
        worker::shutdown_signal().await;
        let _ = stop.send(true);
    });
    worker::deliver(&settings, &services, mailer, stopped).await?;
    if let Some((_, listener)) = listener {
        listener.await??;
    }
    Ok(())
}

//! `worker`: the standalone delivery process, used with Redis (`REDIS_URL`), and the
//! operator's commands. Parses the command, wires the pieces from `wiring` and prints; the
//! logic lives in `delivery` (the engine and `delivery::operator`).
//!
//! `worker run` consumes the queue with WORKER_CONCURRENCY sends at once, records every outcome,
//! runs the sweeper, and on SIGTERM or Ctrl-C stops taking jobs, finishes the ones in flight
//! (bounded by WORKER_SHUTDOWN_TIMEOUT) and exits 0.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use delivery::operator;
use settings::Settings;
use tokio::sync::watch;
use wiring::Threads;

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
    /// Print the DNS TXT record receivers need to check the DKIM signatures (from
    /// DKIM_PRIVATE_KEY_FILE, DKIM_SELECTOR and DKIM_DOMAIN): its name, its value and a
    /// zone-file line. Exit 1 when DKIM signing is not configured.
    DkimRecord,
    /// Print the message counts by state, the age of the oldest owed message and the queue
    /// depth, one `name value` per line.
    Stats,
    /// Inspect and recover dead messages (permanent failures, or retries exhausted).
    #[command(subcommand)]
    Dead(DeadCommand),
    /// The suppression list: mailboxes nothing is sent to.
    #[command(subcommand)]
    Suppressions(SuppressionsCommand),
}

#[derive(Debug, Subcommand)]
enum SuppressionsCommand {
    /// List the suppressed mailboxes (masked), newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = operator::SUPPRESSION_LIST_LIMIT)]
        limit: u64,
    },
    /// Suppress the mailbox of an address (all its aliases): nothing more is sent to it, and
    /// what is still owed to it is cancelled.
    Add {
        /// The address.
        #[arg(value_name = "ADDR", value_parser = parse_address)]
        address: domain::EmailAddress,
    },
    /// Lift a suppression (by id, from `worker suppressions list`).
    Lift {
        /// The suppression id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum DeadCommand {
    /// List dead messages, most recent failure first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = operator::DEAD_LIST_LIMIT)]
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
        #[arg(long, value_name = "DURATION", value_parser = settings::parse_duration)]
        older_than: Duration,
    },
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
        let status = wiring::run_main(Threads::One, async {
            sent = send_test_email(to).await?;
            Ok(())
        });
        return if sent { status } else { ExitCode::FAILURE };
    }
    wiring::run_main(Threads::One, async {
        match cli.command {
            None | Some(Command::Run) => run().await,
            Some(Command::Healthcheck) => healthcheck().await,
            Some(Command::Dead(command)) => dead(command).await,
            Some(Command::Stats) => stats().await,
            Some(Command::DkimRecord) => dkim_record(),
            Some(Command::Suppressions(command)) => suppressions(command).await,
            Some(Command::SendTestEmail { .. }) => Ok(()),
        }
    })
}

/// Command output goes to stdout (logs go to stderr).
#[expect(clippy::print_stdout, reason = "this is the command's output")]
fn say(text: &str) {
    print!("{text}");
}

/// A command's failure answer, on stderr.
#[expect(clippy::print_stderr, reason = "this is the command's error output")]
fn complain(line: &str) {
    eprintln!("{line}");
}

async fn healthcheck() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    if let Some(addr) = settings.worker_metrics_addr {
        // The running worker's own readiness: it is up, and reaches the database and the queue.
        web::ops::probe(addr, "/readyz", Duration::from_secs(3)).await?;
        return Ok(());
    }
    let store = wiring::connect_store_unchecked(&settings).await?;
    store.ping().await?;
    let queue = wiring::build_queue(&settings).await?;
    queue.depth().await?;
    Ok(())
}

/// The database, for the operator's commands.
async fn store(settings: &Settings) -> anyhow::Result<store::SeaStore> {
    wiring::connect_store(settings)
        .await
        .context("cannot use the database at DATABASE_URL")
}

/// The queue to publish to, or `None` without REDIS_URL: the queue then lives inside `server`.
async fn queue(settings: &Settings) -> anyhow::Result<Option<std::sync::Arc<dyn queue::JobQueue>>> {
    Ok(if settings.embedded_queue() {
        None
    } else {
        Some(wiring::build_queue(settings).await?)
    })
}

async fn dead(command: DeadCommand) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let store = store(&settings).await?;
    let now = chrono::Utc::now();
    let text = match command {
        DeadCommand::List { limit } => operator::dead_list(&store, limit).await?,
        DeadCommand::Requeue { id, all } => {
            let id = if all { None } else { id.map(domain::MessageId) };
            let queue = queue(&settings).await?;
            operator::requeue_dead(&store, queue.as_deref(), id, now).await?
        }
        DeadCommand::Purge { older_than } => operator::purge_dead(&store, older_than, now).await?,
    };
    say(&text);
    Ok(())
}

async fn suppressions(command: SuppressionsCommand) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let store = store(&settings).await?;
    let text = match command {
        SuppressionsCommand::List { limit } => operator::suppression_list(&store, limit).await?,
        SuppressionsCommand::Add { address } => {
            operator::suppress_address(&store, &address, chrono::Utc::now()).await?
        }
        SuppressionsCommand::Lift { id } => {
            operator::lift_suppression(&store, domain::SuppressionId(id)).await?
        }
    };
    say(&text);
    Ok(())
}

/// `worker send-test-email`: `Ok(true)` sent, `Ok(false)` the provider refused (printed).
async fn send_test_email(to: &domain::EmailAddress) -> anyhow::Result<bool> {
    let settings = Settings::load()?;
    let mailer = wiring::build_mailer(&settings).await?;
    match operator::send_test_email(mailer.as_ref(), to, chrono::Utc::now()).await {
        Ok(line) => {
            say(&format!("{line}\n"));
            Ok(true)
        }
        Err(error) => {
            complain(&error.to_string());
            Ok(false)
        }
    }
}

/// `worker dkim-record`.
fn dkim_record() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    match operator::dkim_record(settings.mail.from.dkim()) {
        Some(text) => say(&text),
        None => bail!(
            "DKIM signing is not configured: set DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE \
             (and DKIM_DOMAIN if it is not MAIL_FROM's domain)"
        ),
    }
    Ok(())
}

/// `worker stats`.
async fn stats() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let store = store(&settings).await?;
    let queue = queue(&settings).await?;
    say(&operator::stats_report(&store, queue.as_deref(), chrono::Utc::now()).await?);
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    if settings.embedded_queue() {
        bail!(
            "REDIS_URL is not set. Without Redis, `server` delivers email itself and there is nothing \
             for a separate worker to do; set REDIS_URL to run server and worker as separate processes"
        );
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        wiring::shutdown_signal().await;
        let _ = stop.send(true);
    });
    // Started while the database or Redis is down: wait for them (the messages owed meanwhile
    // stay in the database).
    let Some(services) = wiring::Services::connect_patiently(&settings, stopped.clone())
        .await
        .context("cannot start")?
    else {
        return Ok(());
    };
    let mailer = wiring::build_mailer(&settings).await?;
    let metrics = settings::metrics::install();
    let listener = match settings.worker_metrics_addr {
        Some(addr) => Some(
            wiring::start_ops_listener(addr, &services, metrics, stopped.clone())
                .await
                .with_context(|| format!("cannot listen on WORKER_METRICS_ADDR={addr}"))?,
        ),
        None => None,
    };
    let mut engine = wiring::delivery_engine(&settings, &services, mailer)?;
    engine.feedback = wiring::feedback_loop(&settings, &services).await;
    engine.run(stopped).await;
    if let Some((_, listener)) = listener {
        listener.await??;
    }
    Ok(())
}

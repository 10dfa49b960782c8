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
    /// Exit 0 if the database and the queue answer (for container healthchecks).
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    settings::telemetry::init();
    worker::run_main(async {
        match cli.command {
            None | Some(Command::Run) => run().await,
            Some(Command::Healthcheck) => healthcheck().await,
        }
    })
}

async fn healthcheck() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let store = settings.connect_store_unchecked().await?;
    store.ping().await?;
    let queue = settings.build_queue().await?;
    queue.depth().await?;
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
    let services = worker::Services::from_settings(&settings)
        .await
        .context("cannot start")?;
    let mailer = settings.build_mailer().await?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        worker::shutdown_signal().await;
        let _ = stop.send(true);
    });
    worker::deliver(&settings, &services, mailer, stopped).await?;
    Ok(())
}

//! `server`: the web server, `migrate`, the token tool, and `users show`. Parses the command,
//! wires the pieces from `wiring` and prints; the logic lives in the libraries.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use settings::Settings;
use token_tool::TokenCommand;
use wiring::Threads;

mod token_tool;

#[derive(Debug, Parser)]
#[command(
    name = "server",
    version,
    about = "Email-confirmation service: web server, migrations and token tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web pages (the default). Without REDIS_URL it also delivers email in-process.
    Serve,
    /// Apply pending database migrations to DATABASE_URL.
    Migrate,
    /// Exit 0 if the server on LISTEN_ADDR is ready: `GET /readyz` answers 200 (its database
    /// and queue are reachable). For container healthchecks.
    Healthcheck,
    /// Sign or verify itsdangerous URLSafeTimedSerializer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Look up users.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Print one user's state and their messages, newest first (exit 1 if there is no such user).
    Show {
        /// The address (any case).
        address: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token(command)) = cli.command {
        // The token tool prints results, not logs: no telemetry.
        return token_tool::run(command);
    }
    settings::telemetry::init();
    wiring::run_main(Threads::PerCore, async {
        match cli.command {
            None | Some(Command::Serve) => serve().await,
            Some(Command::Migrate) => migrate().await,
            Some(Command::Healthcheck) => healthcheck().await,
            Some(Command::Token(_)) => Ok(()),
            Some(Command::Users(UsersCommand::Show { address })) => users_show(&address).await,
        }
    })
}

async fn users_show(address: &str) -> anyhow::Result<()> {
    let email = domain::EmailAddress::parse(address)
        .map_err(|e| anyhow::anyhow!("not an email address: {e}"))?;
    let settings = Settings::load()?;
    let store = wiring::connect_store(&settings).await?;
    let report = delivery::operator::user_report(&store, &store, &email).await?;
    #[expect(clippy::print_stdout, reason = "the command's output")]
    {
        print!("{}", report.text);
    }
    anyhow::ensure!(report.found, "no user with that address");
    Ok(())
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let listener = web::bind(settings.listen_addr, settings.web.max_connections)
        .with_context(|| format!("cannot listen on LISTEN_ADDR={}", settings.listen_addr))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wiring::shutdown_signal().await;
        let _ = stop.send(true);
    });
    wiring::run_server(&settings, listener, stopped).await
}

async fn healthcheck() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    web::ops::probe(settings.listen_addr, "/readyz", Duration::from_secs(3)).await?;
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let store = wiring::connect_store_unchecked(&settings).await?;
    let pending = store.pending_migrations().await?;
    store.migrate().await?;
    tracing::info!(applied = pending.len(), "database is up to date");
    Ok(())
}

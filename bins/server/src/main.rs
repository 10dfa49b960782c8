//! `server`: the web server, `migrate`, and the token tool.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use server::token_tool::{self, TokenCommand};
use settings::Settings;

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
    /// Sign or verify itsdangerous URLSafeTimedSerializer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token(command)) = cli.command {
        // The token tool prints results, not logs: no telemetry.
        return token_tool::run(command);
    }
    settings::telemetry::init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                match cli.command {
                    None | Some(Command::Serve) => serve().await,
                    Some(Command::Migrate) => migrate().await,
                    Some(Command::Token(_)) => Ok(()),
                }
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{}", report(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping causes whose text a previous one already
/// includes (many database errors repeat their source in their own message).
fn report(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let services = server::Services::from_settings(&settings).await?;
    let listener = tokio::net::TcpListener::bind(&settings.listen_addr)
        .await
        .with_context(|| format!("cannot listen on LISTEN_ADDR={}", settings.listen_addr))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        server::shutdown_signal().await;
        let _ = stop.send(true);
    });
    server::serve(&settings, services, listener, stopped).await
}

async fn migrate() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let store = settings.connect_store_unchecked().await?;
    let pending = store.pending_migrations().await?;
    store.migrate().await?;
    tracing::info!(applied = pending.len(), "database is up to date");
    Ok(())
}

//! The process around a binary: its async runtime, its exit status, its stop signal.

use std::process::ExitCode;

use settings::SettingsError;

/// The threads a binary's async runtime runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// One worker thread per core (the server: requests are handled in parallel).
    PerCore,
    /// Everything on the main thread (the worker). Its jobs spend most of their time waiting
    /// on the database, the queue and the mail server; on one thread, jobs woken by the same
    /// batch answer run together and no wake-up crosses threads, so less CPU goes into each
    /// email and the database batches are fuller (measured in BENCHMARKS.md). Run more worker
    /// processes to use more cores.
    One,
}

/// Runs a binary's async entry point on a runtime with these `threads`; logs a failure on one
/// line and turns it into its exit status ([`exit_code`]).
pub fn run_main(threads: Threads, main: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let mut builder = match threads {
        Threads::PerCore => tokio::runtime::Builder::new_multi_thread(),
        Threads::One => tokio::runtime::Builder::new_current_thread(),
    };
    let result = builder
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(main));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Shared by both binaries: a neutral target rather than this crate's name.
            tracing::error!(target: "startup", "{}", report(&error));
            exit_code(&error)
        }
    }
}

/// An error and its causes on one line, skipping causes whose text a previous one already
/// includes (many database errors repeat their source in their own message).
pub fn report(error: &anyhow::Error) -> String {
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

/// Resolves on Ctrl-C or SIGTERM (the signal both binaries stop on).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}

/// The exit status of a failed command: 2 for a configuration error (a setting that cannot be
/// used, as for a command-line usage error), 1 for anything else.
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    if error
        .chain()
        .any(|cause| cause.downcast_ref::<SettingsError>().is_some())
    {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

//! `server token sign|verify`: inspect the links users complain about, and interoperate with
//! Python itsdangerous (same tokens, same verdicts).

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use domain::{ConfirmationTokens, TimedSerializer};

/// The token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Sign a JSON payload and print the token.
    Sign {
        /// Salt (namespace) of the token.
        #[arg(long, default_value = ConfirmationTokens::SALT)]
        salt: String,
        /// A secret key; repeat for a rotation list, oldest first (the last one signs).
        /// Default: SECRET_KEY_FALLBACKS and SECRET_KEY from the configuration.
        #[arg(long = "secret-key", value_name = "K")]
        secret_keys: Vec<String>,
        /// Unix time to record in the token (default: now).
        #[arg(long, value_name = "UNIX")]
        timestamp: Option<u64>,
        /// The payload as JSON, e.g. '"user@example.com"'.
        #[arg(value_name = "PAYLOAD_JSON")]
        payload_json: String,
    },
    /// Verify a token: prints the payload as compact JSON (exit 0), or `expired`,
    /// `bad-signature` or `malformed` on stderr (exit 1).
    Verify {
        /// Salt (namespace) of the token.
        #[arg(long, default_value = ConfirmationTokens::SALT)]
        salt: String,
        /// A secret key; repeat for a rotation list, oldest first. Default: the configured keys.
        #[arg(long = "secret-key", value_name = "K")]
        secret_keys: Vec<String>,
        /// Refuse tokens older than this many seconds (default: no expiry check).
        #[arg(long, value_name = "SECONDS")]
        max_age: Option<u64>,
        /// Unix time to check against (default: now).
        #[arg(long, value_name = "UNIX")]
        now: Option<i64>,
        /// The token.
        #[arg(value_name = "TOKEN")]
        token: String,
    },
}

/// Exit status for usage and configuration errors (as clap uses).
const USAGE: u8 = 2;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(USAGE)
}

fn emit(mut stream: impl Write, line: &str, code: ExitCode) -> ExitCode {
    match writeln!(stream, "{line}") {
        Ok(()) => code,
        Err(_) => ExitCode::FAILURE,
    }
}

fn serializer(secret_keys: Vec<String>, salt: &str) -> Result<TimedSerializer, String> {
    let keys: Vec<String> = if secret_keys.is_empty() {
        let settings = settings::Settings::load().map_err(|e| e.to_string())?;
        settings
            .secret_key_strs()
            .into_iter()
            .map(str::to_owned)
            .collect()
    } else {
        secret_keys
    };
    TimedSerializer::new(&keys, salt).map_err(|e| e.to_string())
}

fn unix_now() -> i64 {
    use domain::Clock;
    domain::SystemClock.unix_seconds()
}

/// Runs one token subcommand and returns the process exit status.
pub fn run(command: TokenCommand) -> ExitCode {
    match command {
        TokenCommand::Sign {
            salt,
            secret_keys,
            timestamp,
            payload_json,
        } => {
            let payload: serde_json::Value = match serde_json::from_str(&payload_json) {
                Ok(payload) => payload,
                Err(e) => return fail(format!("PAYLOAD_JSON is not valid JSON ({e})")),
            };
            let serializer = match serializer(secret_keys, &salt) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            let timestamp = timestamp.unwrap_or_else(|| u64::try_from(unix_now()).unwrap_or(0));
            emit(
                std::io::stdout(),
                &serializer.sign(&payload, timestamp),
                ExitCode::SUCCESS,
            )
        }
        TokenCommand::Verify {
            salt,
            secret_keys,
            max_age,
            now,
            token,
        } => {
            let serializer = match serializer(secret_keys, &salt) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            match serializer.verify(&token, max_age, now.unwrap_or_else(unix_now)) {
                Ok(verified) => emit(
                    std::io::stdout(),
                    &domain::token::python_json(&verified.payload),
                    ExitCode::SUCCESS,
                ),
                Err(error) => emit(std::io::stderr(), error.code(), ExitCode::FAILURE),
            }
        }
    }
}

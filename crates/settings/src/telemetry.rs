//! Logging, set up once per process.

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset: `info`, with SQL statement logs off.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn";

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, with the fields of the current span and of its parents.
    Json,
}

impl LogFormat {
    /// `text` or `json` (any case, surrounding spaces ignored; empty means `text`).
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "LOG_FORMAT must be `text` or `json`, not {other:?}"
            )),
        }
    }
}

/// Logs to stderr in `LOG_FORMAT` (read from the environment here, since logging starts before
/// the settings are loaded; an invalid value logs as text, and loading the settings then fails
/// with the reason), filtered by `RUST_LOG` (default [`DEFAULT_FILTER`]). Text is coloured only
/// when stderr is a terminal.
pub fn init() {
    let format = std::env::var("LOG_FORMAT")
        .ok()
        .and_then(|value| LogFormat::parse(&value).ok())
        .unwrap_or_default();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours only on a terminal: a log file or collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second call (tests) finds a subscriber already set; that is fine.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_is_text_or_json() {
        assert_eq!(LogFormat::parse("").unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::parse("text").unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::parse(" JSON ").unwrap(), LogFormat::Json);
        let error = LogFormat::parse("xml").unwrap_err();
        assert!(error.contains("`text` or `json`"), "{error}");
    }
}

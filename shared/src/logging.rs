//! Structured logging with `tracing`: JSON lines inside Lambda (CloudWatch reads
//! them), short readable lines on stderr locally. Payloads are never logged.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn filter(spec: &str) -> Targets {
    // Settings validated the filter already; fall back to `info` all the same.
    spec.parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

/// Readable logs on stderr, for local runs (stdout is kept for command output).
pub fn init_local(spec: &str) {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact();
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter(spec))
        .try_init();
}

/// JSON logs for Lambda: one object per line, fields flattened.
pub fn init_lambda(spec: &str) {
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_ansi(false);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter(spec))
        .try_init();
}

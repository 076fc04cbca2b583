//! Structured logging with `tracing`: JSON lines inside Lambda (CloudWatch reads
//! them), short readable lines on stderr locally. Payloads are never logged.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The filter when `SHARDLINE_LOG` is unset: `info` in Lambda; locally
/// `warn`, with the crate that defines the handler `H` (the user's own) at
/// `info`, so that its `tracing::info!` lines show and the framework's and
/// the SDK's stay quiet.
pub(crate) fn default_filter<H>(lambda: bool) -> String {
    if lambda {
        return "info".to_owned();
    }
    match user_crate(std::any::type_name::<H>()) {
        Some(name) => format!("warn,{name}=info"),
        None => "warn".to_owned(),
    }
}

/// The first crate named in a type's path that is not the framework's or
/// the standard library's (`orders` in `shardline::handler::FnHandler<orders::main::{{closure}}>`).
fn user_crate(type_name: &str) -> Option<&str> {
    type_name
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter_map(|path| path.split_once("::").map(|(first, _)| first))
        .find(|name| !name.is_empty() && !["shardline", "core", "std", "alloc"].contains(name))
}

fn filter(spec: &str) -> Targets {
    // Settings validated the filter already; fall back to `info` all the same.
    spec.parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

/// Readable logs on stderr, for local runs (stdout is kept for command output).
pub(crate) fn init_local(spec: &str) {
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

/// JSON logs for Lambda: one object per line, the event's fields flattened,
/// and `spans`: the runtime's invocation span (`requestId`) and the batch's
/// (`shard`), so the lines of invocations that overlap in one process
/// (Lambda Managed Instances) say which one wrote them.
pub(crate) fn init_lambda(spec: &str) {
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .without_time()
        .with_ansi(false);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter(spec))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Local;

    #[test]
    fn the_users_own_crate_logs_at_info_by_default() {
        assert_eq!(user_crate("orders::Orders"), Some("orders"));
        assert_eq!(
            user_crate("shardline::handler::FnHandler<order_audit::main::{{closure}}>"),
            Some("order_audit")
        );
        assert_eq!(user_crate("alloc::sync::Arc<core::cell::Cell<u8>>"), None);
        assert_eq!(user_crate("u8"), None);
        // This test's own type lives in the framework: nothing to add.
        assert_eq!(default_filter::<Local>(false), "warn");
        assert_eq!(default_filter::<Local>(true), "info");
        assert_eq!(default_filter::<std::sync::Arc<u8>>(false), "warn");
        assert!(
            "warn,orders=info"
                .parse::<Targets>()
                .is_ok_and(|t| t.would_enable("orders::db", &tracing::Level::INFO)
                    && !t.would_enable("aws_config", &tracing::Level::INFO))
        );
    }
}

//! Error types shared by every layer. A leaf module.

/// A boxed error, as handlers, commands and backends may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

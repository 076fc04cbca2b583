//! `active-users`: who is active right now, from a Kinesis stream of heartbeats.
//!
//! Payload: `{"user": "<guid>", "ts": <epoch ms>}` (see [`heartbeat`]). A user
//! is active while their last heartbeat is within `ACTIVE_WINDOW_SECONDS`
//! (default 120). Only the present matters, so:
//!
//! - records that arrived in the stream longer ago than the window are
//!   acknowledged by Shardline's stale skip rule without reaching the handler:
//!   catching up after downtime or a reshard costs no write at all;
//! - within a batch only each user's latest heartbeat is kept (the handler
//!   buffers in [`Handler::handle`] and writes in [`Handler::flush`], once per
//!   shard, before Shardline checkpoints it; [`Handler::begin`] starts each
//!   shard's batch with an empty buffer);
//! - a user's last-seen time never moves back ([`store`], [`dynamodb`]);
//! - order does not matter, so the parent-shard guard is off.
//!
//! The library holds the handler and the stores; `main.rs` wires them into a
//! Shardline [`shardline::App`].

pub mod dynamodb;
pub mod event;
pub mod heartbeat;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shardline::buffer::ShardBuffers;
use shardline::config::{ConfigError, parse_var};
use shardline::tables::StoreError;
use shardline::time::epoch_millis;
use shardline::{Batch, BoxError, FlushError, Handler, HandlerError, Record};

use crate::heartbeat::{Heartbeat, is_active};
pub use crate::store::ACTIVE_USERS_TABLE;
use crate::store::ActiveUsersStore;

/// The variable with the active window in seconds.
pub const WINDOW_VAR: &str = "ACTIVE_WINDOW_SECONDS";
/// The active window when [`WINDOW_VAR`] is unset.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);
/// The longest window accepted: ten years (the sample events use it, so their
/// fixed timestamps still count as recent).
pub const MAX_WINDOW_SECONDS: u64 = 315_360_000;

/// The active window from `lookup` ([`WINDOW_VAR`], default [`DEFAULT_WINDOW`]).
///
/// # Errors
/// [`ConfigError`] naming the variable when it is not a whole number of seconds
/// from 1 to [`MAX_WINDOW_SECONDS`].
pub fn window_from(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    Ok(parse_var(
        lookup,
        WINDOW_VAR,
        "a whole number of seconds from 1 to 315360000",
        |s: &u64| (1..=MAX_WINDOW_SECONDS).contains(s),
    )?
    .map_or(DEFAULT_WINDOW, Duration::from_secs))
}

/// The handler: buffers each shard's latest heartbeat per user, writes them on flush.
#[derive(Debug)]
pub struct ActiveUsers {
    store: ActiveUsersStore,
    window: Duration,
    pending: ShardBuffers<BTreeMap<String, u64>>,
}

impl ActiveUsers {
    /// A handler writing to `store`, with an active window of `window`.
    pub fn new(store: ActiveUsersStore, window: Duration) -> Self {
        ActiveUsers {
            store,
            window,
            pending: ShardBuffers::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &ActiveUsersStore {
        &self.store
    }

    /// The active window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The users active now, with their last-seen times.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn active_now(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.store
            .active(epoch_millis(SystemTime::now()), self.window)
            .await
    }
}

impl Handler for ActiveUsers {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let now_ms = epoch_millis(SystemTime::now());
        let beat =
            Heartbeat::parse(&record.data, now_ms, self.window).map_err(HandlerError::permanent)?;
        if !is_active(beat.ts, now_ms, self.window) {
            // The record arrived recently, but the heartbeat it carries is
            // already older than the window (a producer that buffered it): it
            // cannot make anyone active, so it is not written.
            shardline::metrics::add_count("HeartbeatsExpired", 1);
            return Ok(());
        }
        self.pending.with(&record.shard, |latest| {
            let ts = latest.entry(beat.user).or_insert(beat.ts);
            *ts = (*ts).max(beat.ts);
        });
        Ok(())
    }

    async fn begin(&self, batch: &Batch<'_>) {
        // Whatever an invocation that failed before its flush left is dropped:
        // Lambda delivers those records again.
        self.pending.begin(batch.shard());
    }

    async fn flush(&self, batch: &Batch<'_>) -> Result<(), FlushError> {
        let shard = batch.shard();
        let latest = self.pending.take(shard);
        if latest.is_empty() {
            return Ok(());
        }
        // A failure here leaves the batch unchecked-pointed: Lambda delivers it
        // again and the same times are applied again, which changes nothing.
        let done = self
            .store
            .advance(&latest, self.window)
            .await
            .map_err(HandlerError::retryable)?;
        shardline::metrics::add_count("UsersWritten", done.written as u64);
        shardline::metrics::add_count("UsersUnchanged", done.unchanged as u64);
        tracing::info!(
            shard = %shard.shard_id,
            users = latest.len(),
            written = done.written,
            unchanged = done.unchanged,
            "last-seen times written"
        );
        Ok(())
    }
}

/// The `active` command: prints the active users as one JSON object
/// `{"<user>": <last_seen_ms>, ...}`, sorted by user.
///
/// # Errors
/// A usage error for extra arguments, or the store's error.
pub async fn active_command(users: Arc<ActiveUsers>, args: Vec<String>) -> Result<(), BoxError> {
    if let Some(extra) = args.first() {
        return Err(format!("active takes no arguments (got {extra:?})").into());
    }
    let active = users.active_now().await?;
    println!("{}", serde_json::to_string(&active)?);
    Ok(())
}

/// The `event` command: `event [--age SECONDS] USER...` prints a Kinesis event
/// with one heartbeat per user, seen (and arrived) `--age` seconds ago (0 by
/// default).
///
/// # Errors
/// A usage error for a bad command line.
pub async fn event_command(_: Arc<ActiveUsers>, args: Vec<String>) -> Result<(), BoxError> {
    let mut age = Duration::ZERO;
    let mut users = Vec::new();
    let mut rest = args.into_iter();
    while let Some(arg) = rest.next() {
        if arg == "--age" {
            let seconds = rest
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or("--age takes a whole number of seconds")?;
            age = Duration::from_secs(seconds);
        } else {
            users.push(arg);
        }
    }
    if users.is_empty() {
        return Err("usage: event [--age SECONDS] USER...".into());
    }
    let event = event::heartbeat_event(&users, age, SystemTime::now());
    println!("{}", serde_json::to_string_pretty(&event)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_validated_with_the_variable_named() {
        let none = |_: &str| None;
        assert_eq!(window_from(&none).unwrap(), DEFAULT_WINDOW);
        let set = |v: &'static str| move |n: &str| (n == WINDOW_VAR).then(|| v.to_owned());
        assert_eq!(window_from(&set("300")).unwrap(), Duration::from_secs(300));
        for bad in ["0", "-1", "2m", "315360001"] {
            let err = window_from(&set(bad)).unwrap_err();
            assert_eq!(err.variable, WINDOW_VAR, "{bad}");
            assert!(err.to_string().contains("ACTIVE_WINDOW_SECONDS"), "{err}");
        }
    }
}

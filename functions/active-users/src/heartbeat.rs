//! The heartbeat payload and its rules.
//!
//! `{"user": "<guid>", "ts": <epoch milliseconds>}`; other fields are ignored.
//!
//! - `user`: any non-empty string up to 1,024 bytes (a GUID in practice; the
//!   format is not enforced, so other producers' ids work too).
//! - `ts`: when the user was seen, in milliseconds since the epoch. A value
//!   before 1973 is refused: it is almost always seconds sent as milliseconds.
//!   A value more than the active window ahead of this machine's clock is
//!   refused too: it would pin the user as active (and, since last-seen never
//!   moves back, block later heartbeats) until that future time.
//!
//! A refused heartbeat is a permanent failure: Shardline quarantines it with its
//! payload and goes on.

use std::time::Duration;

use serde::Deserialize;

/// Longest user id accepted, in bytes (a DynamoDB partition key holds 2,048).
pub const MAX_USER_BYTES: usize = 1024;

/// The earliest `ts` taken as milliseconds: 1973-03-03. Anything smaller is
/// almost surely a time in seconds.
pub const MIN_TS_MS: u64 = 100_000_000_000;

/// One heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Heartbeat {
    /// The user.
    pub user: String,
    /// When the user was seen (epoch milliseconds).
    pub ts: u64,
}

/// Why a payload is not a usable heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    /// Not JSON of the heartbeat's shape.
    #[error("not a heartbeat {{\"user\": \"<id>\", \"ts\": <epoch ms>}}: {0}")]
    Shape(String),
    /// The user id is empty or too long.
    #[error("user must be a non-empty string of at most {MAX_USER_BYTES} bytes (got {0} bytes)")]
    User(usize),
    /// `ts` looks like seconds.
    #[error("ts {0} is before 1973 as epoch milliseconds: was it sent in seconds?")]
    Seconds(u64),
    /// `ts` is too far ahead.
    #[error(
        "ts {ts} is {ahead_ms} ms ahead of this clock, more than the active window: \
         the producer's clock is off"
    )]
    Future {
        /// The heartbeat's time.
        ts: u64,
        /// How far ahead of now.
        ahead_ms: u64,
    },
}

impl Heartbeat {
    /// Parses and checks a payload, at `now_ms`, for an active window of `window`.
    ///
    /// # Errors
    /// [`HeartbeatError`] when the payload is not a usable heartbeat.
    pub fn parse(payload: &[u8], now_ms: u64, window: Duration) -> Result<Self, HeartbeatError> {
        let beat: Heartbeat =
            serde_json::from_slice(payload).map_err(|e| HeartbeatError::Shape(describe(&e)))?;
        if beat.user.is_empty() || beat.user.len() > MAX_USER_BYTES {
            return Err(HeartbeatError::User(beat.user.len()));
        }
        if beat.ts < MIN_TS_MS {
            return Err(HeartbeatError::Seconds(beat.ts));
        }
        let ahead_ms = beat.ts.saturating_sub(now_ms);
        if ahead_ms > window_ms(window) {
            return Err(HeartbeatError::Future {
                ts: beat.ts,
                ahead_ms,
            });
        }
        Ok(beat)
    }
}

/// What is wrong with a payload, without quoting it: serde's messages can
/// carry values from the payload (`invalid type: string "..."`), and the reason
/// is logged and kept with the quarantined record.
fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let message = error.to_string();
    let what = match error.classify() {
        // Names a field of the heartbeat, nothing of the payload.
        Category::Data if message.starts_with("missing field") => message
            .split(" at line")
            .next()
            .unwrap_or("missing field")
            .to_owned(),
        Category::Data => "a field has the wrong type or value".to_owned(),
        Category::Syntax => "not JSON".to_owned(),
        Category::Eof => "truncated JSON".to_owned(),
        Category::Io => "unreadable".to_owned(),
    };
    format!("{what} (line {}, column {})", error.line(), error.column())
}

/// The window in milliseconds.
pub fn window_ms(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a user last seen at `last_seen_ms` is active at `now_ms`: seen within
/// the window (a last-seen time ahead of the clock counts as active).
pub fn is_active(last_seen_ms: u64, now_ms: u64, window: Duration) -> bool {
    last_seen_ms.saturating_add(window_ms(window)) >= now_ms
}

/// The TTL of a user's item: when the window after `last_seen_ms` ends, in
/// epoch seconds (rounded up, so the item never expires while still active).
pub fn expires_at(last_seen_ms: u64, window: Duration) -> u64 {
    last_seen_ms
        .saturating_add(window_ms(window))
        .div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_763_790_000_000;
    const WINDOW: Duration = Duration::from_secs(120);

    fn parse(text: &str) -> Result<Heartbeat, HeartbeatError> {
        Heartbeat::parse(text.as_bytes(), NOW, WINDOW)
    }

    #[test]
    fn a_heartbeat_parses_and_extra_fields_are_ignored() {
        let beat = parse(r#"{"user":"u-1","ts":1763789990000,"app":"web"}"#).unwrap();
        assert_eq!(
            beat,
            Heartbeat {
                user: "u-1".into(),
                ts: 1_763_789_990_000
            }
        );
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        assert!(matches!(parse("not json"), Err(HeartbeatError::Shape(_))));
        assert!(matches!(
            parse(r#"{"user":"u"}"#),
            Err(HeartbeatError::Shape(_))
        ));
        assert!(matches!(
            parse(r#"{"user":"u","ts":"soon"}"#),
            Err(HeartbeatError::Shape(_))
        ));
        assert!(matches!(
            parse(r#"{"user":"u","ts":-5}"#),
            Err(HeartbeatError::Shape(_))
        ));
        // The reason never quotes the payload.
        let err = parse(r#"{"user":"secret-id","ts":"secret-value"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a heartbeat {\"user\": \"<id>\", \"ts\": <epoch ms>}: \
             a field has the wrong type or value (line 1, column 39)"
        );
        let err = parse(r#"{"ts":1763789990000}"#).unwrap_err();
        assert!(
            err.to_string().contains("missing field `user` (line 1"),
            "{err}"
        );
        let err = parse("secret text").unwrap_err();
        assert!(
            err.to_string().ends_with("not JSON (line 1, column 1)"),
            "{err}"
        );
        assert_eq!(
            parse(r#"{"user":"","ts":1763789990000}"#),
            Err(HeartbeatError::User(0))
        );
        let long = format!(r#"{{"user":"{}","ts":1763789990000}}"#, "x".repeat(1025));
        assert_eq!(parse(&long), Err(HeartbeatError::User(1025)));
        assert_eq!(
            parse(r#"{"user":"u","ts":1763789990}"#),
            Err(HeartbeatError::Seconds(1_763_789_990))
        );
        assert_eq!(
            parse(r#"{"user":"u","ts":1763790200000}"#),
            Err(HeartbeatError::Future {
                ts: 1_763_790_200_000,
                ahead_ms: 200_000
            })
        );
        // A little ahead (clock skew within the window) is fine.
        assert!(parse(r#"{"user":"u","ts":1763790060000}"#).is_ok());
    }

    #[test]
    fn activity_and_expiry_follow_the_window() {
        assert!(is_active(NOW - 120_000, NOW, WINDOW));
        assert!(!is_active(NOW - 120_001, NOW, WINDOW));
        assert!(is_active(NOW + 5_000, NOW, WINDOW));
        assert_eq!(expires_at(1_000_000_000_001, WINDOW), 1_000_000_121);
        assert_eq!(expires_at(1_000_000_000_000, WINDOW), 1_000_000_120);
    }
}

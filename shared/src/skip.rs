//! Skip rules: records acknowledged without calling the handler.
//!
//! Three rules, checked in this order for each record:
//! 1. [`SkipRule::Checkpointed`]: at or below the shard's checkpoint, or done
//!    past it by another key (a Lambda retry re-delivers what an earlier
//!    attempt already did).
//! 2. [`SkipRule::Stale`]: older than the configured maximum age (a consumer that
//!    only cares about the present, seed 004's active-users tracker).
//! 3. [`SkipRule::Duplicate`]: its dedup key was claimed by another record within
//!    the dedup window (a producer sent the same event twice, under a new
//!    sequence number).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::record::Record;

/// Why a record was acknowledged without being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipRule {
    /// At or below the checkpoint, or done past it: already done.
    Checkpointed,
    /// Older than the maximum record age.
    Stale,
    /// Its dedup key was already claimed by another record.
    Duplicate,
}

impl SkipRule {
    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            SkipRule::Checkpointed => "checkpointed",
            SkipRule::Stale => "stale",
            SkipRule::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for SkipRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A function that takes a record's dedup key from its payload (`None`: the
/// record is not deduplicated).
pub type DedupKeyFn = Arc<dyn Fn(&Record) -> Option<String> + Send + Sync>;

/// Deduplication by a key in the payload, within a time window.
#[derive(Clone)]
pub struct DedupRule {
    /// Takes the key from a record.
    pub key: DedupKeyFn,
    /// How long a claimed key keeps later records with the same key out.
    pub window: Duration,
}

impl fmt::Debug for DedupRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupRule")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The skip rules of one consumer.
#[derive(Debug, Clone, Default)]
pub struct SkipRules {
    /// Records older than this are acknowledged without handling (`None`:
    /// never), checked on every delivery, Lambda's retries included.
    pub max_record_age: Option<Duration>,
    /// Deduplication by payload key (`None`: off).
    pub dedup: Option<DedupRule>,
    /// Hands records at or below the checkpoint to the handler again instead
    /// of skipping them. A windowed function needs it: its state comes from
    /// Lambda, which resends a failed invocation's records with the state from
    /// before it, whatever Shardline's checkpoint says (see the `window` module).
    pub handle_checkpointed: bool,
}

impl SkipRules {
    /// The rule that skips `record` at `now`, if any, checked in their order:
    /// checkpointed (`done`: at or below its unit's checkpoint, unless
    /// [`SkipRules::handle_checkpointed`]), stale,
    /// duplicate (`duplicate`: another record holds its dedup key).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use shardline::skip::{SkipRule, SkipRules};
    /// let rules = SkipRules { max_record_age: Some(Duration::from_secs(60)), ..SkipRules::default() };
    /// let event = shardline::sample::event_bytes(&[shardline::sample::SampleRecord::new("1", b"x")]);
    /// let decoded = shardline::decode::decode_event(&event).unwrap();
    /// let record = decoded.items[0].record();
    /// let now = SystemTime::now();
    /// assert_eq!(rules.rule_for(record, now, true, true), Some(SkipRule::Checkpointed));
    /// assert_eq!(rules.rule_for(record, now, false, true), Some(SkipRule::Duplicate));
    /// let later = now + Duration::from_secs(3600);
    /// assert_eq!(rules.rule_for(record, later, false, true), Some(SkipRule::Stale));
    /// assert_eq!(rules.rule_for(record, now, false, false), None);
    /// ```
    pub fn rule_for(
        &self,
        record: &Record,
        now: SystemTime,
        done: bool,
        duplicate: bool,
    ) -> Option<SkipRule> {
        if done && !self.handle_checkpointed {
            Some(SkipRule::Checkpointed)
        } else if self.is_stale(record, now) {
            Some(SkipRule::Stale)
        } else if duplicate {
            Some(SkipRule::Duplicate)
        } else {
            None
        }
    }

    /// Whether `record` is older than the maximum age at `now`.
    pub fn is_stale(&self, record: &Record, now: SystemTime) -> bool {
        match (self.max_record_age, record.age(now)) {
            (Some(max), Some(age)) => age > max,
            _ => false,
        }
    }
}

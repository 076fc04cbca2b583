//! A slot: one batch in flight at a time for one shard (or, with a
//! `ParallelizationFactor` above 1, for the partition keys hashed to it), and
//! Lambda's rules for what follows an answer.
//!
//! The driver (a real process pool, or the simulator) pushes the records it
//! reads, takes a batch when the batching window says so
//! ([`SlotModel::take_batch`]), asks what to invoke ([`SlotModel::next_step`]),
//! invokes it, and hands the answer back ([`SlotModel::answered`]) until the
//! slot is idle again. Time comes in as arguments; nothing here sleeps.

use std::collections::VecDeque;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{Map, Value};
use shardline_event::SequenceNumber;

use crate::answer::{Verdict, verdict};
use crate::config::MappingConfig;
use crate::discard::Discard;
use crate::record::{MAX_PAYLOAD, StreamRecord, event};
use crate::window::{OpenWindow, STATE_MAX_BYTES, answered_state, start_of};

/// The slot among `slots` of a record with `partition_key`: each key always
/// to the same slot (Lambda orders records per key only, with a
/// `ParallelizationFactor` above 1).
pub fn slot_of(partition_key: &str, slots: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    partition_key.hash(&mut hasher);
    usize::try_from(hasher.finish() % slots.max(1) as u64).unwrap_or(0)
}

/// One invocation the mapping makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// Records, with the window's state when windows are on.
    Records {
        /// The records, in order.
        records: Vec<StreamRecord>,
        /// Retries already made of the batch they start.
        retries: u32,
        /// The window they are in, with the state to hand on.
        window: Option<OpenWindow>,
    },
    /// A window's final invocation, without records.
    Final {
        /// The window and its last state.
        window: OpenWindow,
        /// Ended early (the state grew over 1 MB): the window goes on.
        early: bool,
    },
}

impl Invocation {
    /// Its records (none for a final invocation).
    pub fn records(&self) -> &[StreamRecord] {
        match self {
            Invocation::Records { records, .. } => records,
            Invocation::Final { .. } => &[],
        }
    }

    /// The Lambda event, or why it cannot be sent (over the 6 MB payload:
    /// a function error, as Lambda reports it).
    ///
    /// # Errors
    /// The reason, when the payload is over [`MAX_PAYLOAD`].
    pub fn payload(&self, stream_arn: &str, shard_id: &str) -> Result<Bytes, String> {
        let payload = match self {
            Invocation::Records {
                records,
                window: Some(window),
                ..
            } => window.event(stream_arn, shard_id, records, false, false),
            Invocation::Records { records, .. } => event(stream_arn, shard_id, records),
            Invocation::Final { window, early } => {
                window.event(stream_arn, shard_id, &[], true, *early)
            }
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(format!(
                "the payload is {} bytes, over Lambda's 6 MB",
                payload.len()
            ));
        }
        Ok(payload)
    }
}

/// How an invocation went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The function answered with this body.
    Response(Bytes),
    /// It failed: an error response, a crash, a timeout, a payload too large.
    Failed(String),
}

/// What to do next for the slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Invoke the function (and hand the answer to [`SlotModel::answered`]).
    Invoke(Invocation),
    /// These records are discarded unsent (past `MaximumRecordAgeInSeconds`).
    Discard(Discard),
    /// Nothing is in flight.
    Idle,
}

/// What an answer settled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answered {
    /// Records now done (Lambda's checkpoint moved over them).
    pub done: usize,
    /// The batch is retried (a retry that counts).
    pub retried: bool,
    /// The batch was split (bisect: not a retry).
    pub bisected: bool,
    /// Records given up on.
    pub discards: Vec<Discard>,
}

/// A window's final invocation owed before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Closing {
    early: bool,
    failures: u32,
}

/// The state of one slot of one shard.
#[derive(Debug, Default)]
pub struct SlotModel {
    queue: VecDeque<StreamRecord>,
    /// The record at the head of a retried batch, and the retries made from it.
    head: Option<(SequenceNumber, u32)>,
    /// With tumbling windows, the window open.
    window: Option<OpenWindow>,
    /// The batch in flight: its parts still to invoke (bisect), each with its retries.
    pending: VecDeque<(Vec<StreamRecord>, u32)>,
    closing: Option<Closing>,
}

impl SlotModel {
    /// Adds records read from the shard.
    pub fn push(&mut self, records: impl IntoIterator<Item = StreamRecord>) {
        self.queue.extend(records);
    }

    /// Records waiting for a batch.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether a batch (or a window's final invocation) is in flight.
    pub fn in_flight(&self) -> bool {
        !self.pending.is_empty() || self.closing.is_some()
    }

    /// Nothing waiting, nothing in flight, no window open.
    pub fn is_idle(&self) -> bool {
        !self.in_flight() && self.queue.is_empty() && self.window.is_none()
    }

    /// The window open, if any.
    pub fn window(&self) -> Option<&OpenWindow> {
        self.window.as_ref()
    }

    /// Takes the next batch from the queue into flight: at most `BatchSize`
    /// records within the 6 MB payload, of one window. The driver calls it
    /// when records wait and the batching window is over (or the batch is
    /// full). Returns whether a batch was taken.
    pub fn take_batch(&mut self, config: &MappingConfig, stream_arn: &str, shard_id: &str) -> bool {
        if self.in_flight() || self.queue.is_empty() {
            return false;
        }
        let state_size = self
            .window
            .as_ref()
            .map_or(0, |w| w.state.to_string().len());
        let mut size = 256 + state_size;
        let mut batch: Vec<StreamRecord> = Vec::new();
        while let Some(record) = self.queue.front() {
            let record_size = record.event_size(stream_arn, shard_id);
            let other_window = match (config.tumbling_window, batch.first()) {
                (Some(length), Some(first)) => start_of(record, length) != start_of(first, length),
                _ => false,
            };
            if batch.len() == config.batch_size
                || other_window
                || (!batch.is_empty() && size + record_size > MAX_PAYLOAD)
            {
                break;
            }
            size += record_size;
            batch.extend(self.queue.pop_front());
        }
        let retries = match (&self.head, batch.first()) {
            (Some((head, retries)), Some(first)) if *head == first.sequence => *retries,
            _ => 0,
        };
        if let (Some(length), Some(first)) = (config.tumbling_window, batch.first())
            && self
                .window
                .as_ref()
                .is_some_and(|w| w.start != start_of(first, length))
        {
            // A record of a later window: the open one is over.
            self.closing = Some(Closing {
                early: false,
                failures: 0,
            });
        }
        self.pending.push_back((batch, retries));
        true
    }

    /// Closes the open window when the clock is past its end (and a second
    /// and the batching window more, for its last records to be read) and
    /// nothing of it waits. Returns whether a final invocation is now owed.
    pub fn close_if_over(&mut self, now: SystemTime, config: &MappingConfig) -> bool {
        let Some(window) = &self.window else {
            return false;
        };
        let grace = Duration::from_secs(1) + config.batching_window;
        if self.in_flight() || !self.queue.is_empty() || now < window.end() + grace {
            return false;
        }
        self.closing = Some(Closing {
            early: false,
            failures: 0,
        });
        true
    }

    /// How long until [`SlotModel::close_if_over`] would close the open
    /// window (`None`: no window open).
    pub fn window_left(&self, now: SystemTime, config: &MappingConfig) -> Option<Duration> {
        let window = self.window.as_ref()?;
        let grace = Duration::from_secs(1) + config.batching_window;
        Some(
            (window.end() + grace)
                .duration_since(now)
                .unwrap_or(Duration::ZERO),
        )
    }

    /// What to invoke next for what is in flight: a window's final
    /// invocation if one is owed, else the next part of the batch, after its
    /// records past `MaximumRecordAgeInSeconds` at `now` are discarded.
    pub fn next_step(&mut self, config: &MappingConfig, now: SystemTime) -> Step {
        if let Some(closing) = self.closing {
            match &self.window {
                Some(window) => {
                    return Step::Invoke(Invocation::Final {
                        window: window.clone(),
                        early: closing.early,
                    });
                }
                None => self.closing = None,
            }
        }
        while let Some((batch, retries)) = self.pending.front_mut() {
            if let Some(expired) = expired(batch, config, now) {
                return Step::Discard(expired);
            }
            if batch.is_empty() {
                self.pending.pop_front();
                continue;
            }
            if let Some(length) = config.tumbling_window
                && self.window.is_none()
            {
                self.window = Some(OpenWindow::of(&batch[0], length));
            }
            return Step::Invoke(Invocation::Records {
                records: batch.clone(),
                retries: *retries,
                window: self.window.clone(),
            });
        }
        Step::Idle
    }

    /// Follows Lambda's rules after `invocation` (the one [`SlotModel::next_step`]
    /// gave) was answered with `answer`.
    pub fn answered(
        &mut self,
        invocation: &Invocation,
        answer: Answer,
        config: &MappingConfig,
    ) -> Answered {
        match invocation {
            Invocation::Final { early, .. } => {
                self.final_answered(*early, &answer, config);
                Answered::default()
            }
            Invocation::Records { records, .. } => {
                let Some((batch, retries)) = self.pending.pop_front() else {
                    return Answered::default();
                };
                debug_assert_eq!(&batch, records);
                let verdict = self.read_answer(&batch, answer, config);
                self.follow(batch, retries, verdict, config)
            }
        }
    }

    /// The verdict of an answer; in a window, the state it hands on (an
    /// answer without one is a failed invocation).
    fn read_answer(
        &mut self,
        batch: &[StreamRecord],
        answer: Answer,
        config: &MappingConfig,
    ) -> Verdict {
        let body = match answer {
            Answer::Response(body) => body,
            Answer::Failed(reason) => return Verdict::Failed(reason),
        };
        let verdict = verdict(&body, batch, config.report_failures);
        let Some(window) = &mut self.window else {
            return verdict;
        };
        let Some((state, size)) = answered_state(&body) else {
            return Verdict::Failed(
                "the answer has no state: a failed invocation in a tumbling window".into(),
            );
        };
        if !matches!(verdict, Verdict::Failed(_)) {
            window.state = state;
            if size > STATE_MAX_BYTES {
                self.closing = Some(Closing {
                    early: true,
                    failures: 0,
                });
            }
        }
        verdict
    }

    /// What follows `verdict` for `batch`, made after `retries` retries.
    fn follow(
        &mut self,
        mut batch: Vec<StreamRecord>,
        retries: u32,
        verdict: Verdict,
        config: &MappingConfig,
    ) -> Answered {
        let mut answered = Answered::default();
        let reason = match verdict {
            Verdict::Done => {
                answered.done = batch.len();
                return answered;
            }
            Verdict::RetryFrom(index) => {
                answered.done = index;
                let rest = batch.split_off(index);
                if config.bisect && index > 0 {
                    // Bisected at the returned record: only the rest is retried.
                    answered.bisected = true;
                    self.pending.push_front((rest, retries));
                    return answered;
                }
                // A partial failure at the first record is retried (or
                // discarded) as it is; only a function error halves a batch.
                let reason = "partial batch failure".to_owned();
                self.retry_or_discard(rest, retries, reason, config, &mut answered);
                return answered;
            }
            Verdict::Failed(reason) => reason,
        };
        if config.bisect && batch.len() > 1 {
            answered.bisected = true;
            let second = batch.split_off(batch.len() / 2);
            self.pending.push_front((second, retries));
            self.pending.push_front((batch, retries));
            return answered;
        }
        self.retry_or_discard(batch, retries, reason, config, &mut answered);
        answered
    }

    /// A failed batch: retried (with bisect, in place; else from the queue,
    /// with newer records behind it), or discarded past the retry limit.
    fn retry_or_discard(
        &mut self,
        batch: Vec<StreamRecord>,
        retries: u32,
        reason: String,
        config: &MappingConfig,
        answered: &mut Answered,
    ) {
        if config.retry_limit.is_some_and(|limit| retries >= limit) {
            answered.discards.push(Discard {
                records: batch,
                condition: "RetryAttemptsExhausted",
                invokes: retries + 1,
                reason,
            });
            return;
        }
        answered.retried = true;
        if config.bisect {
            self.pending.push_front((batch, retries + 1));
            return;
        }
        // The checkpoint stays before this record: the retry reads on from
        // it, with newer records behind it up to the batch size.
        if let Some(first) = batch.first() {
            self.head = Some((first.sequence.clone(), retries + 1));
        }
        for record in batch.into_iter().rev() {
            self.queue.push_front(record);
        }
    }

    /// A final invocation answered: with a state, the window is closed (or,
    /// ended early, goes on with a fresh state); without, it is tried again,
    /// and dropped past `MaximumRetryAttempts`.
    fn final_answered(&mut self, early: bool, answer: &Answer, config: &MappingConfig) {
        let Some(closing) = &mut self.closing else {
            return;
        };
        let succeeded = matches!(answer, Answer::Response(body) if answered_state(body).is_some());
        let out_of_retries = config
            .retry_limit
            .is_some_and(|limit| closing.failures >= limit);
        if !succeeded && !out_of_retries {
            closing.failures += 1;
            return;
        }
        self.closing = None;
        match (&mut self.window, early) {
            (Some(window), true) => window.state = Value::Object(Map::new()),
            _ => self.window = None,
        }
    }
}

/// Splits off the records of `batch` past the record age at `now`.
fn expired(
    batch: &mut Vec<StreamRecord>,
    config: &MappingConfig,
    now: SystemTime,
) -> Option<Discard> {
    let max_age = config.max_record_age?;
    let now = shardline_event::sample::epoch_seconds(now);
    let oldest = now - max_age.as_secs_f64();
    if !batch.iter().any(|r| r.arrival < oldest) {
        return None;
    }
    let (expired, fresh): (Vec<StreamRecord>, Vec<StreamRecord>) = std::mem::take(batch)
        .into_iter()
        .partition(|r| r.arrival < oldest);
    *batch = fresh;
    Some(Discard {
        records: expired,
        condition: "RecordAgeExceeded",
        invokes: 0,
        reason: "record age exceeded".to_owned(),
    })
}

#[cfg(test)]
#[path = "slot_tests.rs"]
mod tests;

//! What happened in a run, as the oracle needs it: the records the producer
//! put (and what each was meant to be), every handler call, the effects that
//! landed, the windows closed, the invocations and what they exposed each
//! record to.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use shardline::Position;
use shardline::time::Instant;

/// What the producer meant a record to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Handled without trouble (unless a fault says otherwise).
    Healthy,
    /// Fails for good: quarantined at once.
    Permanent,
    /// Fails retryably, always: quarantined after the attempts.
    Retryable,
    /// Its handler call never ends: cut off, quarantined after the attempts.
    Hang,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Healthy => 'h',
            Kind::Permanent => 'p',
            Kind::Retryable => 'r',
            Kind::Hang => 'x',
        }
    }

    fn from_letter(letter: char) -> Option<Kind> {
        Some(match letter {
            'h' => Kind::Healthy,
            'p' => Kind::Permanent,
            'r' => Kind::Retryable,
            'x' => Kind::Hang,
            _ => return None,
        })
    }
}

/// A user record's payload: `id:kind:dedup-key`, padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// The record's identity in the run.
    pub id: u64,
    /// What it is meant to be.
    pub kind: Kind,
    /// Its dedup key (a producer duplicate shares its original's).
    pub dedup: u64,
}

impl Payload {
    /// The bytes put on the stream.
    pub fn encode(&self, pad: usize) -> Bytes {
        let text = format!(
            "{}:{}:{}:{}",
            self.id,
            self.kind.letter(),
            self.dedup,
            "-".repeat(pad)
        );
        Bytes::from(text)
    }

    /// Reads [`Payload::encode`]'s bytes.
    pub fn decode(data: &[u8]) -> Option<Payload> {
        let text = std::str::from_utf8(data).ok()?;
        let mut parts = text.split(':');
        let id = parts.next()?.parse().ok()?;
        let kind = Kind::from_letter(parts.next()?.chars().next()?)?;
        let dedup = parts.next()?.parse().ok()?;
        Some(Payload { id, kind, dedup })
    }
}

/// Where a user record went on the source stream.
#[derive(Debug, Clone)]
pub struct Produced {
    /// Its payload.
    pub payload: Payload,
    /// The bytes put (the user record's data).
    pub data: Bytes,
    /// Its own partition key.
    pub user_key: String,
    /// The key Lambda routes by (the aggregate's, for a KPL user record).
    pub outer_key: String,
    /// The source shard.
    pub shard: String,
    /// Its position there.
    pub position: Position,
    /// When it arrived, epoch seconds.
    pub arrival: f64,
}

/// One invocation of the function.
#[derive(Debug, Clone)]
pub struct InvocationLog {
    /// The source shard.
    pub shard: String,
    /// A duplicate delivery: Lambda does not read its answer.
    pub duplicate: bool,
    /// When it started and ended (`None`: still running, or killed).
    pub started: Instant,
    /// When it ended.
    pub ended: Option<Instant>,
    /// It answered, its commit was not superseded, and its answer reached Lambda.
    pub clean: bool,
    /// The record its answer asked Lambda to retry from, if any.
    pub retry_from: Option<String>,
    /// Records Lambda delivered in its event.
    pub delivered: Vec<u64>,
    /// Records its handler was called on (each call).
    pub called: Vec<u64>,
    /// Records its handler finished without error.
    pub handled: Vec<u64>,
    /// Handler calls it cut off (started, position, record).
    pub cut_off: Vec<(Instant, Position, u64)>,
}

impl InvocationLog {
    /// Whether its answer asked Lambda to deliver `position` again (a retry
    /// from it or from an earlier record; the sequence numbers have one width).
    pub fn asked_again(&self, position: &Position) -> bool {
        self.retry_from
            .as_ref()
            .is_some_and(|from| position.sequence.to_string() >= *from)
    }
}

/// A window's close: what its state held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The source shard.
    pub shard: String,
    /// The window's start, as the event gave it.
    pub window: String,
    /// The records folded, in order.
    pub ids: Vec<u64>,
}

/// Everything that happened.
#[derive(Debug, Default)]
pub struct Record {
    /// The user records put, by id.
    pub produced: BTreeMap<u64, Produced>,
    /// Records whose effect landed: id to the order it landed in.
    pub applied: BTreeMap<u64, u64>,
    /// The invocation whose handler landed each record's effect.
    pub applied_by: BTreeMap<u64, u64>,
    /// Handler calls, by record.
    pub calls: BTreeMap<u64, u32>,
    /// Invocations, by number.
    pub invocations: BTreeMap<u64, InvocationLog>,
    /// Faults each record met in an invocation that answered: a failed
    /// handler call, a cut off call that was the longest, a delivery left
    /// undone. What may count an attempt against it.
    pub exposures: BTreeMap<u64, u32>,
    /// Windows closed.
    pub closes: Vec<Close>,
    /// Records Lambda discarded (retry limit, record age), by id (a record
    /// the operator redrove keeps its id under its new position).
    pub discarded: BTreeSet<u64>,
    /// The landing order's next number.
    next_order: u64,
    /// Poison records handle well from now on (the operator mended the cause).
    pub mended: bool,
    /// The landing order at which the operator's replay and redrive began:
    /// what lands from then on is out of the stream's order by design.
    pub operator_from: Option<u64>,
    /// Records the operator replayed or redrove.
    pub operated: BTreeSet<u64>,
    /// Some invocation failed, crashed, timed out, left records for a retry
    /// or lost its commit: without any of that, every batch was done whole,
    /// in turn, and a fan-out writes each user key in order even when its
    /// records sit in aggregates of different keys.
    pub disturbed: bool,
    /// Invocations that died with their process because another invocation
    /// of it crashed (several at once per process: LMI).
    pub killed_with_process: u64,
    /// Invocations that timed out on Lambda Managed Instances and ran on
    /// beside Lambda's retry.
    pub ran_on_after_timeout: u64,
}

/// The run's record, shared by the handlers and the driver.
#[derive(Debug, Clone, Default)]
pub struct World(Arc<Mutex<Record>>);

impl World {
    /// Locks the record.
    pub fn lock(&self) -> MutexGuard<'_, Record> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Record {
    /// The effect of `id` lands, by `invocation` (once: later calls only count).
    pub fn apply(&mut self, id: u64, invocation: u64) {
        if !self.applied.contains_key(&id) {
            self.applied.insert(id, self.next_order);
            self.applied_by.insert(id, invocation);
            self.next_order += 1;
        }
    }

    /// One more fault met by `id`.
    pub fn expose(&mut self, id: u64) {
        *self.exposures.entry(id).or_default() += 1;
    }

    /// The landing order the next effect gets.
    pub fn next_order(&self) -> u64 {
        self.next_order
    }

    /// The record at `position` of `shard`, if one was put there.
    pub fn at(&self, shard: &str, position: &Position) -> Option<&Produced> {
        self.produced
            .values()
            .find(|p| p.shard == shard && p.position == *position)
    }
}

impl fmt::Display for InvocationLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}clean {} handled {:?} cut off {:?}",
            self.shard,
            if self.duplicate { "duplicate " } else { "" },
            self.clean,
            self.handled,
            self.cut_off.iter().map(|c| c.2).collect::<Vec<_>>()
        )
    }
}

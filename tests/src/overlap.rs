//! A handler that shows how its calls overlap: it logs each call's start and
//! end, sleeps a delay chosen per record, counts the calls in flight, and fails
//! the records it is told to; and the check that a key's calls never overlap
//! and come in order.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shardline::{Handler, HandlerError, Record};

/// Start and end of each handler call, in the order they happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Start(u64),
    End(u64),
}

/// A handler that logs each call's start and end, sleeps a delay chosen per
/// record, counts how many calls overlap, and fails the records `fails` names.
pub struct Probe {
    pub steps: Mutex<Vec<Step>>,
    failed: Mutex<Vec<u64>>,
    in_flight: AtomicUsize,
    pub most: AtomicUsize,
    delay: Box<dyn Fn(u64) -> Duration + Send + Sync>,
    fails: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("steps", &self.steps)
            .field("most", &self.most)
            .finish_non_exhaustive()
    }
}

impl Probe {
    pub fn new(delay: impl Fn(u64) -> Duration + Send + Sync + 'static) -> Self {
        Probe {
            steps: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            delay: Box::new(delay),
            fails: Box::new(|_| false),
        }
    }

    pub fn failing(mut self, fails: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.fails = Box::new(fails);
        self
    }

    /// The records whose calls ended without failing, in the order they ended.
    pub fn done(&self) -> Vec<u64> {
        let failed = self.failed.lock().unwrap();
        let steps = self.steps.lock().unwrap();
        steps
            .iter()
            .filter_map(|s| match s {
                Step::End(i) if !failed.contains(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    pub fn started(&self) -> Vec<u64> {
        let steps = self.steps.lock().unwrap();
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Start(i) => Some(*i),
                Step::End(_) => None,
            })
            .collect()
    }

    pub fn reset(&self) {
        self.steps.lock().unwrap().clear();
        self.failed.lock().unwrap().clear();
        self.most.store(0, Ordering::SeqCst);
    }
}

/// The record's number: its payload is the number as text, or `a.u` for user
/// record `u` of aggregate `a` (numbered `a * 100 + u`).
pub fn number(record: &Record) -> u64 {
    let text = record.text().unwrap_or_default();
    match text.split_once('.') {
        Some((a, u)) => a.parse::<u64>().unwrap() * 100 + u.parse::<u64>().unwrap(),
        None => text.parse().unwrap(),
    }
}

impl Handler for Probe {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let n = number(record);
        self.steps.lock().unwrap().push(Step::Start(n));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep((self.delay)(n)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.steps.lock().unwrap().push(Step::End(n));
        if (self.fails)(record.text().unwrap_or_default()) {
            self.failed.lock().unwrap().push(n);
            return Err(HandlerError::retryable(format!("record {n}: not yet")));
        }
        Ok(())
    }
}

/// A delay of 0 to 4 ms that looks random but is fixed per record.
pub fn jitter(n: u64) -> Duration {
    Duration::from_micros(n.wrapping_mul(2_654_435_761) % 4_000)
}

/// Per key, the steps must be start(a) end(a) start(b) end(b)... with a < b:
/// a key's next record starts only after the previous one ended, in order.
pub fn assert_in_order_per_key(steps: &[Step], key_of: impl Fn(u64) -> u64) {
    let mut per_key: BTreeMap<u64, Vec<Step>> = BTreeMap::new();
    for step in steps {
        let (Step::Start(n) | Step::End(n)) = *step;
        per_key.entry(key_of(n)).or_default().push(*step);
    }
    for (k, steps) in per_key {
        let mut last: Option<u64> = None;
        for pair in steps.chunks(2) {
            let [Step::Start(a), Step::End(b)] = pair else {
                panic!("key {k}: a call overlapped or did not end: {steps:?}");
            };
            assert_eq!(a, b, "key {k}: {steps:?}");
            assert!(
                last.is_none_or(|l| l < *a),
                "key {k} out of order: {steps:?}"
            );
            last = Some(*a);
        }
    }
}

//! A slot: one batch in flight at a time for one shard (or, with a
//! ParallelizationFactor above 1, for the partition keys hashed to it). The
//! rules are Lambda's, as [`shardline_esm::SlotModel`] has them; this file
//! only drives them in real time: it waits for records and the batching
//! window, hands the invocations to a function process, and hands the answers
//! back to the model.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use shardline_esm::{Answer, Invocation, SlotModel, Step, StreamRecord};
use tokio::sync::Notify;

use super::Mapping;
use crate::sandbox::Outcome;

/// The records waiting for one slot, and the slot's model.
#[derive(Debug, Default)]
pub(crate) struct SlotQueue {
    model: Mutex<SlotModel>,
    arrived: Notify,
    /// What the batch in flight waits on (for the progress line).
    phase: Mutex<Option<(&'static str, Instant)>>,
}

impl SlotQueue {
    fn model(&self) -> MutexGuard<'_, SlotModel> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds records read from the shard.
    pub(crate) fn push(&self, records: impl IntoIterator<Item = StreamRecord>) {
        self.model().push(records);
        self.arrived.notify_one();
    }

    /// Records waiting.
    pub(crate) fn len(&self) -> usize {
        self.model().queued()
    }

    /// Nothing waiting, nothing in flight, no window open. A batch is taken
    /// from the queue and marked in flight under one lock
    /// ([`SlotModel::take_batch`]): it is always seen in one place or the other.
    pub(crate) fn is_idle(&self) -> bool {
        self.model().is_idle()
    }

    /// Whether a batch is in flight.
    pub(crate) fn in_flight(&self) -> bool {
        self.model().in_flight()
    }

    /// What the batch in flight waits on, and since when.
    pub(crate) fn phase(&self) -> Option<(&'static str, Instant)> {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_phase(&self, phase: Option<&'static str>) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase.map(|p| (p, Instant::now()));
    }
}

/// One slot of one shard.
pub(crate) struct Slot {
    pub mapping: Arc<Mapping>,
    pub shard_id: Arc<str>,
    pub queue: Arc<SlotQueue>,
}

/// The pause before a window's failed final invocation is tried again.
const FINAL_RETRY_PAUSE: Duration = Duration::from_millis(100);

impl Slot {
    /// Runs until aborted: batches from the queue, one at a time.
    pub(crate) async fn run(self) {
        loop {
            self.wait_for_work().await;
            self.drive().await;
            self.queue.set_phase(None);
        }
    }

    /// Waits for records, then for the batching window to fill a batch, and
    /// takes it; or for the open window's time to be over, and closes it.
    async fn wait_for_work(&self) {
        let config = &self.mapping.config.mapping;
        loop {
            let notified = self.queue.arrived.notified();
            let left = {
                let mut model = self.queue.model();
                if model.in_flight() || model.queued() > 0 {
                    break;
                }
                if model.close_if_over(SystemTime::now(), config) {
                    return;
                }
                model.window_left(SystemTime::now(), config)
            };
            match left {
                None => notified.await,
                Some(left) => {
                    let _ =
                        tokio::time::timeout(left.max(Duration::from_millis(1)), notified).await;
                }
            }
        }
        let window_ends = Instant::now() + config.batching_window;
        while self.queue.len() < config.batch_size && Instant::now() < window_ends {
            let notified = self.queue.arrived.notified();
            let _ = tokio::time::timeout(window_ends - Instant::now(), notified).await;
        }
        let (arn, shard) = (&self.mapping.stream_arn, &self.shard_id);
        self.queue.model().take_batch(config, arn, shard);
    }

    /// Invokes the function as the model says until nothing is in flight.
    async fn drive(&self) {
        let config = &self.mapping.config.mapping;
        loop {
            let step = self.queue.model().next_step(config, SystemTime::now());
            let invocation = match step {
                Step::Idle => return,
                Step::Discard(discard) => {
                    self.mapping.discard(&self.shard_id, &discard);
                    continue;
                }
                Step::Invoke(invocation) => invocation,
            };
            let answer = self.invoke(&invocation).await;
            let failed_final = matches!(invocation, Invocation::Final { .. })
                && matches!(answer, Answer::Failed(_));
            let answered = self.queue.model().answered(&invocation, answer, config);
            let counters = &self.mapping.counters;
            counters.done(answered.done);
            if answered.retried {
                counters.retry();
            }
            if answered.bisected {
                counters.bisect();
            }
            for discard in &answered.discards {
                self.mapping.discard(&self.shard_id, discard);
            }
            if failed_final {
                eprintln!(
                    "source: {}: a window's final invocation failed; retrying",
                    self.shard_id
                );
                counters.retry();
                tokio::time::sleep(FINAL_RETRY_PAUSE).await;
            }
        }
    }

    /// One invocation: the function's answer, or why it failed.
    async fn invoke(&self, invocation: &Invocation) -> Answer {
        let mapping = &self.mapping;
        let payload = match invocation.payload(&mapping.stream_arn, &self.shard_id) {
            Ok(payload) => payload,
            Err(reason) => {
                mapping.counters.function_error();
                return Answer::Failed(reason);
            }
        };
        let records = invocation.records().len();
        match self.call(payload, records).await {
            Ok(body) => Answer::Response(body),
            Err(reason) => Answer::Failed(reason),
        }
    }

    /// Hands `payload` (of `records` records) to a function process: the
    /// answer's body, or why the function failed.
    async fn call(&self, payload: bytes::Bytes, records: usize) -> Result<bytes::Bytes, String> {
        let mapping = &self.mapping;
        self.queue
            .set_phase(Some("starting or taking a function process"));
        let sandbox = mapping.pool.take().await.map_err(|e| {
            mapping.counters.crash();
            format!("cannot start the function: {e}")
        })?;
        mapping.counters.invocation(records);
        let kill_after = mapping.chaos_kill();
        let started = Instant::now();
        let (_, outcome, _) = sandbox
            .invoke(payload, mapping.config.timeout, kill_after, &|phase| {
                self.queue.set_phase(Some(phase));
            })
            .await;
        if matches!(outcome, Outcome::Response(_) | Outcome::FunctionError(_)) {
            mapping.took(started.elapsed());
        }
        mapping.touch();
        match outcome {
            Outcome::Response(body) => Ok(body),
            Outcome::FunctionError(error) => {
                mapping.counters.function_error();
                Err(format!("function error: {error}"))
            }
            Outcome::Crashed(why) => {
                mapping.counters.crash();
                Err(why)
            }
            Outcome::TimedOut => {
                mapping.counters.timeout();
                Err(format!("Task timed out after {:?}", mapping.config.timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_esm::MappingConfig;

    fn records(n: u64) -> Vec<StreamRecord> {
        (1..=n)
            .map(|n| StreamRecord {
                sequence: n.to_string().parse().unwrap(),
                partition_key: "k".into(),
                data: bytes::Bytes::from_static(b"x"),
                arrival: 1.0,
            })
            .collect()
    }

    /// The source finishes a shard when every slot is idle and stops its
    /// slots: a batch taken from the queue must read as in flight at once, or
    /// the shard can be finished with that batch never invoked (seen in a
    /// ledger fault soak: 90 records of a parent never delivered).
    #[test]
    fn a_batch_taken_is_in_flight_before_the_queue_reads_empty() {
        let queue = SlotQueue::default();
        queue.push(records(3));
        assert!(!queue.is_idle());
        let config = MappingConfig {
            batch_size: 5,
            ..MappingConfig::default()
        };
        assert!(queue.model().take_batch(&config, "arn", "shardId-0"));
        assert_eq!(queue.len(), 0);
        assert!(!queue.is_idle(), "the taken batch is in flight");
        let step = queue.model().next_step(&config, SystemTime::now());
        let Step::Invoke(invocation) = step else {
            panic!("an invocation");
        };
        queue
            .model()
            .answered(&invocation, Answer::Response(bytes::Bytes::new()), &config);
        assert!(queue.is_idle());
    }
}

//! The shards of the stream: found by ListShards (again every second, so
//! children appear after a split or a merge), started when they may start,
//! finished when read to their end with every record done.
//!
//! By default a child starts once every parent is finished (all its records
//! delivered and done or discarded), as the KCL does and as a consumer relying
//! on per-key order needs; `--children-at-once` starts it at once instead.
//! Children are read from their start (TRIM_HORIZON), whatever the mapping's
//! starting position.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use tokio::task::JoinHandle;

use super::Mapping;
use super::reader::{ReadState, Start, read_shard};
use super::slot::{Slot, SlotQueue};

struct Running {
    reader: JoinHandle<()>,
    slots: Vec<(Arc<SlotQueue>, JoinHandle<()>)>,
    state: Arc<ReadState>,
}

impl Running {
    fn is_finished(&self) -> bool {
        self.state.ended.load(Ordering::SeqCst) && self.slots.iter().all(|(q, _)| q.is_idle())
    }

    fn is_quiet(&self) -> bool {
        (self.state.ended.load(Ordering::SeqCst) || self.state.caught_up.load(Ordering::SeqCst))
            && self.slots.iter().all(|(q, _)| q.is_idle())
    }

    fn stop(self) {
        self.reader.abort();
        for (_, slot) in self.slots {
            slot.abort();
        }
    }
}

enum Phase {
    Waiting(Start),
    Running(Running),
    Finished,
}

struct Known {
    parents: Vec<String>,
    phase: Phase,
}

/// The shards of one mapping.
pub(crate) struct Shards {
    mapping: Arc<Mapping>,
    client: Client,
    known: BTreeMap<String, Known>,
    listed_at: Option<Instant>,
}

/// One shard as ListShards gives it.
struct Listed {
    id: String,
    parents: Vec<String>,
    closed: bool,
}

impl Shards {
    /// The shards of the mapping's stream, before the first listing.
    pub(crate) fn new(mapping: Arc<Mapping>, client: Client) -> Self {
        Shards {
            mapping,
            client,
            known: BTreeMap::new(),
            listed_at: None,
        }
    }

    /// Every shard the stream lists (ListShards pages by NextToken alone: the
    /// API refuses a stream name beside it).
    async fn list(&self) -> Result<Vec<Listed>, String> {
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = match &token {
                Some(token) => self.client.list_shards().next_token(token),
                None => self
                    .client
                    .list_shards()
                    .stream_name(&self.mapping.stream_name),
            };
            let page = request
                .send()
                .await
                .map_err(|e| format!("ListShards: {}", DisplayErrorContext(&e)))?;
            for shard in page.shards() {
                let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect();
                let closed = shard
                    .sequence_number_range()
                    .is_some_and(|r| r.ending_sequence_number().is_some());
                listed.push(Listed {
                    id: shard.shard_id().to_owned(),
                    parents,
                    closed,
                });
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(listed),
            }
        }
    }

    /// Lists the shards (at most once a second) and learns the new ones: those
    /// of the first listing start at `start` (a closed one with LATEST has
    /// nothing left to read), later ones at their start.
    pub(crate) async fn refresh(&mut self, start: Start) -> Result<(), String> {
        if self
            .listed_at
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return Ok(());
        }
        let first = self.listed_at.is_none();
        let listed = self.list().await?;
        self.listed_at = Some(Instant::now());
        for shard in listed {
            if self.known.contains_key(&shard.id) {
                continue;
            }
            let phase = match (first, start) {
                (true, Start::Latest) if shard.closed => Phase::Finished,
                (true, start) => Phase::Waiting(start),
                (false, _) => Phase::Waiting(Start::TrimHorizon),
            };
            self.known.insert(
                shard.id,
                Known {
                    parents: shard.parents,
                    phase,
                },
            );
        }
        Ok(())
    }

    /// Starts the waiting shards that may start, and finishes the running ones
    /// that are done.
    pub(crate) fn advance(&mut self) {
        let finished: Vec<String> = self
            .known
            .iter()
            .filter(|(_, k)| matches!(&k.phase, Phase::Running(run) if run.is_finished()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in finished {
            if let Some(known) = self.known.get_mut(&id)
                && let Phase::Running(run) = std::mem::replace(&mut known.phase, Phase::Finished)
            {
                run.stop();
                eprintln!("source: {id} finished");
            }
        }
        let ready: Vec<(String, Start)> = self
            .known
            .iter()
            .filter_map(|(id, known)| match known.phase {
                Phase::Waiting(start) if self.may_start(known) => Some((id.clone(), start)),
                _ => None,
            })
            .collect();
        for (id, start) in ready {
            let run = self.start(&id, start);
            if let Some(known) = self.known.get_mut(&id) {
                known.phase = Phase::Running(run);
            }
        }
    }

    /// Whether a waiting shard's parents let it start: each finished, or no
    /// longer listed (expired from the stream).
    fn may_start(&self, known: &Known) -> bool {
        self.mapping.config.children_at_once
            || known.parents.iter().all(|parent| {
                self.known
                    .get(parent)
                    .is_none_or(|p| matches!(p.phase, Phase::Finished))
            })
    }

    fn start(&self, shard_id: &str, start: Start) -> Running {
        let shard_id: Arc<str> = Arc::from(shard_id);
        let mut slots = Vec::new();
        for _ in 0..self.mapping.config.mapping.parallelization {
            let queue = Arc::new(SlotQueue::default());
            let slot = Slot {
                mapping: self.mapping.clone(),
                shard_id: shard_id.clone(),
                queue: queue.clone(),
            };
            slots.push((queue, tokio::spawn(slot.run())));
        }
        let state = Arc::new(ReadState::default());
        let reader = tokio::spawn(read_shard(
            self.mapping.clone(),
            self.client.clone(),
            shard_id,
            start,
            slots.iter().map(|(q, _)| q.clone()).collect(),
            state.clone(),
        ));
        Running {
            reader,
            slots,
            state,
        }
    }

    /// Nothing left to do now: no shard waits to start, every running shard
    /// is read to its end or caught up, and no slot holds a record.
    pub(crate) fn is_quiet(&self) -> bool {
        self.known.values().all(|known| match &known.phase {
            Phase::Waiting(_) => false,
            Phase::Running(run) => run.is_quiet(),
            Phase::Finished => true,
        })
    }

    /// Stops every running shard.
    pub(crate) fn stop(&mut self) {
        for known in self.known.values_mut() {
            if let Phase::Running(run) = std::mem::replace(&mut known.phase, Phase::Finished) {
                run.stop();
            }
        }
    }

    /// The progress line.
    pub(crate) fn progress(&self) -> String {
        let (mut waiting, mut running, mut finished) = (0, 0, 0);
        let mut behind = Vec::new();
        for (id, known) in &self.known {
            match &known.phase {
                Phase::Waiting(_) => waiting += 1,
                Phase::Finished => finished += 1,
                Phase::Running(run) => {
                    running += 1;
                    let queued: usize = run.slots.iter().map(|(q, _)| q.len()).sum();
                    let in_flight = run.slots.iter().filter(|(q, _)| q.in_flight()).count();
                    let ms = run.state.behind_ms.load(Ordering::Relaxed);
                    let reading = if run.state.caught_up.load(Ordering::Relaxed) {
                        "caught up"
                    } else {
                        "reading"
                    };
                    let mut line = format!(
                        "{id} {queued} queued, {in_flight} in flight, {ms} ms behind, {reading}"
                    );
                    // A batch in flight well past the function's timeout is a
                    // bug of the source: say where it waits.
                    for (slot, (queue, _)) in run.slots.iter().enumerate() {
                        if let Some((phase, since)) = queue.phase()
                            && since.elapsed()
                                > self.mapping.config.timeout + Duration::from_secs(5)
                        {
                            line.push_str(&format!(
                                " (slot {slot} {phase} for {} s)",
                                since.elapsed().as_secs()
                            ));
                        }
                    }
                    behind.push(line);
                }
            }
        }
        let c = self.mapping.counters.snapshot();
        format!(
            "source: shards {running} running, {waiting} waiting, {finished} finished | \
             read {} done {} | invocations {} retries {} errors {} crashes {} timeouts {} discarded {} | {}",
            c.records_read,
            c.records_done,
            c.invocations,
            c.retries,
            c.function_errors,
            c.crashes,
            c.timeouts,
            c.discarded,
            behind.join("; ")
        )
    }

    /// How many shards were finished.
    pub(crate) fn finished(&self) -> usize {
        self.known
            .values()
            .filter(|k| matches!(k.phase, Phase::Finished))
            .count()
    }
}

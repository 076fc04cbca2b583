//! Fan-out delivery progress against the embedded store and file sinks:
//! interleaved batches of one shard (ParallelizationFactor > 1).

use crate::common;

use std::sync::Arc;

use common::{Env, Rec, event, seq};
use shardline::decode::decode_event;
use shardline::sink::file::FileSink;
use shardline::sink::{FanOut, Sink, StaticDestinations};
use shardline::{Deadline, ProgressMode, process_event};

fn sinks(env: &Env, names: &[&str]) -> Vec<Arc<dyn Sink>> {
    names
        .iter()
        .map(|n| {
            Arc::new(FileSink::new(*n, env.dir.path().join(format!("{n}.jsonl")))) as Arc<dyn Sink>
        })
        .collect()
}

fn delivered(env: &Env, name: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(env.dir.path().join(format!("{name}.jsonl"))).unwrap_or_default();
    let mut seqs: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["source_sequence_number"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    seqs.sort();
    seqs
}

#[tokio::test]
async fn interleaved_batches_of_one_shard_deliver_every_record() {
    let mut env = Env::new("fanout-pk");
    env.config.progress = ProgressMode::PartitionKey;
    let fanout = FanOut::new(StaticDestinations(sinks(&env, &["a", "b"])), 1 << 20);
    let batch = |key: &str, ns: &[u64]| {
        let recs: Vec<Rec> = ns
            .iter()
            .map(|&n| Rec::new(seq(n), format!("r{n}").as_bytes()).key(key))
            .collect();
        event(&recs)
    };
    for (key, ns) in [("ka", [1, 3, 5, 7]), ("kb", [2, 4, 6, 8])] {
        let outcome = process_event(
            decode_event(&batch(key, &ns)).unwrap(),
            &fanout,
            &env.store,
            &env.config,
            Deadline::none(),
        )
        .await
        .unwrap();
        assert!(outcome.response.is_success(), "{:?}", outcome.report);
        assert_eq!(outcome.report.processed, 4, "{:?}", outcome.report);
    }
    let all: Vec<String> = (1..=8).map(seq).collect();
    for name in ["a", "b"] {
        assert_eq!(delivered(&env, name), all, "destination {name}");
    }
}

fn texts_of(env: &Env, name: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(env.dir.path().join(format!("{name}.jsonl"))).unwrap_or_default();
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["source_sequence_number"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A fan-out to file sinks `a` and `b`; `b` cannot be written while the
/// returned path (its folder) is a file.
fn blocked_fanout(env: &Env) -> (FanOut, std::path::PathBuf) {
    let blocker = env.dir.path().join("b-dir");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let sinks: Vec<Arc<dyn Sink>> = vec![
        Arc::new(FileSink::new("a", env.dir.path().join("a.jsonl"))),
        Arc::new(FileSink::new("b", blocker.join("b.jsonl"))),
    ];
    (FanOut::new(StaticDestinations(sinks), 1 << 20), blocker)
}

#[tokio::test]
async fn a_shorter_retry_keeps_what_was_delivered_past_its_end() {
    let env = Env::new("fanout-bisect");
    let (fanout, blocker) = blocked_fanout(&env);
    let recs: Vec<Rec> = (1..=10)
        .map(|n| Rec::new(seq(n), format!("r{n}").as_bytes()))
        .collect();
    let run = |records: &[Rec]| {
        let json = event(records);
        let (fanout, env) = (&fanout, &env);
        async move {
            process_event(
                decode_event(&json).unwrap(),
                fanout,
                &env.store,
                &env.config,
                Deadline::none(),
            )
            .await
            .unwrap()
        }
    };
    let first = run(&recs).await;
    assert!(
        !first.response.is_success(),
        "b failed: the batch is retried"
    );
    assert_eq!(texts_of(&env, "a").len(), 10);
    // b can be written now. Lambda bisects the batch after a function error
    // (or a retry comes back shorter): first records 1-5, then 6-10.
    std::fs::remove_file(&blocker).unwrap();
    for half in [&recs[..5], &recs[5..]] {
        let out = run(half).await;
        assert!(out.response.is_success(), "{:?}", out.report);
    }
    let all: Vec<String> = (1..=10).map(seq).collect();
    assert_eq!(texts_of(&env, "a"), all, "a got every record once");
    let mut b = texts_of(&env, "b-dir/b");
    b.sort();
    assert_eq!(b, all, "b got every record once");
}

#[tokio::test]
async fn a_record_kinesis_would_refuse_is_quarantined_not_sent() {
    let env = Env::new("fanout-invalid");
    let fanout = FanOut::new(StaticDestinations(sinks(&env, &["a"])), 1 << 20);
    let long_key = "k".repeat(257);
    let recs = vec![
        Rec::new(seq(1), b"fine"),
        Rec::new(seq(2), b"key too long").key(&long_key),
        Rec::new(seq(3), b"fine too"),
    ];
    let out = process_event(
        decode_event(&event(&recs)).unwrap(),
        &fanout,
        &env.store,
        &env.config,
        Deadline::none(),
    )
    .await
    .unwrap();
    assert!(out.response.is_success(), "{:?}", out.report);
    assert_eq!(out.report.quarantined_permanent, 1, "{:?}", out.report);
    assert_eq!(texts_of(&env, "a"), [seq(1), seq(3)]);
    let quarantined = env.quarantined().await;
    assert_eq!(quarantined.len(), 1);
    assert!(
        quarantined[0].detail.contains("partition key"),
        "{}",
        quarantined[0].detail
    );
}

#[tokio::test]
async fn a_destination_that_keeps_failing_counts_attempts_until_the_record_is_quarantined() {
    let mut env = Env::new("fanout-attempts");
    env.config.max_attempts = 2;
    let (fanout, _blocked_folder) = blocked_fanout(&env);
    let recs: Vec<Rec> = (1..=3)
        .map(|n| Rec::new(seq(n), format!("r{n}").as_bytes()))
        .collect();
    let json = event(&recs);
    let mut retried_from = Vec::new();
    for _ in 0..2 {
        let out = process_event(
            decode_event(&json).unwrap(),
            &fanout,
            &env.store,
            &env.config,
            Deadline::none(),
        )
        .await
        .unwrap();
        retried_from.push(common::failures(&out));
    }
    assert_eq!(
        retried_from,
        [vec![seq(1)], vec![seq(2)]],
        "record 1 used up its attempts"
    );
    let quarantined = env.quarantined().await;
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].sequence_number, seq(1));
    assert_eq!(quarantined[0].data.as_ref(), b"r1");
    assert_eq!(
        texts_of(&env, "a"),
        [seq(1), seq(2), seq(3)],
        "a was written once"
    );
}

/// The fan-out's counts (requests, retries) travel with the batch into its
/// report, not through a process-wide counter: two invocations run at once
/// in one process each get their own.
#[tokio::test]
async fn the_fan_outs_counts_travel_in_each_batchs_report() {
    let env = Env::new("fanout-counts");
    let fanout = FanOut::new(StaticDestinations(sinks(&env, &["a", "b"])), 1 << 20);
    let batch = |first: u64, count: u64| {
        let recs: Vec<Rec> = (first..first + count)
            .map(|n| Rec::new(seq(n), format!("r{n}").as_bytes()).key(&format!("k{n}")))
            .collect();
        event(&recs)
    };
    let (small, large) = (batch(1, 2), batch(10, 5));
    let run = |event: &[u8]| {
        let decoded = decode_event(event).unwrap();
        process_event(decoded, &fanout, &env.store, &env.config, Deadline::none())
    };
    let (one, other) = tokio::join!(run(&small), run(&large));
    let (one, other) = (one.unwrap(), other.unwrap());
    // The file sink writes a destination's records in one request a flush:
    // two destinations, two requests, in each batch.
    assert_eq!(one.report.counts.get("FanoutRequests"), Some(&2));
    assert_eq!(other.report.counts.get("FanoutRequests"), Some(&2));
    assert_eq!(one.report.counts.get("FanoutRetries"), Some(&0));
}

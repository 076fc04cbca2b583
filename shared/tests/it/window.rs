//! Tumbling windows through the engine on the embedded store: the state
//! threaded from a window's first invocation to its final one, a failing
//! record inside a window (partial failure with the state before it), a
//! quarantined record, a whole-invocation retry with the old state, a failed
//! close, and an early-terminated window. (The DynamoDB store is exercised by
//! `functions/key-counts/tests/it/dynamodb.rs` on moto.)

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shardline::sample::SampleWindow;
use shardline::window::{
    WindowError, WindowHandler, WindowInfo, WindowOutcome, decode_window_event,
    process_window_event,
};
use shardline::{Deadline, HandlerError, QuarantineReason, Record};

const START: &str = "2026-11-23T19:00:00Z";
const END: &str = "2026-11-23T19:01:00Z";

/// The texts of the window's records, in the order folded in.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Texts {
    texts: Vec<String>,
}

/// Folds each text into the state; `poison...` is permanent, `fail_on` retryable.
#[derive(Default)]
struct Collect {
    fail_on: Mutex<Option<String>>,
    close_fails: AtomicBool,
    closed: Mutex<Vec<(WindowInfo, Vec<String>)>>,
}

impl WindowHandler for Collect {
    type State = Texts;

    fn add(&self, state: &mut Texts, record: &Record) -> Result<(), HandlerError> {
        let text = record
            .text()
            .ok_or_else(|| HandlerError::permanent("not UTF-8"))?;
        if text.starts_with("poison") {
            return Err(HandlerError::permanent("a poison record"));
        }
        if self.fail_on.lock().unwrap().as_deref() == Some(text) {
            return Err(HandlerError::retryable("downstream is busy"));
        }
        state.texts.push(text.to_owned());
        Ok(())
    }

    async fn close(&self, window: &WindowInfo, state: &Texts) -> Result<(), HandlerError> {
        if self.close_fails.load(Ordering::SeqCst) {
            return Err(HandlerError::retryable("the results table is unavailable"));
        }
        let closed = (window.clone(), state.texts.clone());
        self.closed.lock().unwrap().push(closed);
        Ok(())
    }
}

impl Collect {
    fn fail_on(&self, text: Option<&str>) {
        *self.fail_on.lock().unwrap() = text.map(str::to_owned);
    }

    fn closed(&self) -> Vec<(WindowInfo, Vec<String>)> {
        self.closed.lock().unwrap().clone()
    }
}

fn window() -> SampleWindow {
    SampleWindow::new(START, END)
}

fn rec(n: u64, text: &str) -> Rec {
    Rec::new(seq(n), text).key(&format!("k{}", n % 2))
}

async fn invoke(
    env: &Env,
    handler: &Arc<Collect>,
    event: Vec<u8>,
) -> Result<WindowOutcome, WindowError> {
    let event = decode_window_event(&event).expect("the test event decodes");
    process_window_event(event, handler, &env.store, &env.config, Deadline::none()).await
}

fn texts(outcome: &WindowOutcome) -> Vec<String> {
    let state = Value::Object(outcome.response.state.clone());
    serde_json::from_value::<Texts>(state).unwrap().texts
}

fn state_of(outcome: &WindowOutcome) -> Value {
    Value::Object(outcome.response.state.clone())
}

fn retry_from(outcome: &WindowOutcome) -> Vec<String> {
    let failures = &outcome.response.batch_item_failures;
    failures.iter().map(|f| f.item_identifier.clone()).collect()
}

#[tokio::test]
async fn the_state_threads_from_the_first_invocation_to_the_final_one() {
    let mut env = Env::new("window-thread");
    // Whatever the function's settings, a window runs a shard in order.
    env.config.concurrency = 8;
    let handler = Arc::new(Collect::default());
    let first = window().event_bytes(&[rec(1, "a"), rec(2, "b")]);
    let first = invoke(&env, &handler, first).await.unwrap();
    assert_eq!(texts(&first), ["a", "b"]);
    assert!(first.response.is_success() && !first.closed);

    let middle = window().state(state_of(&first)).event_bytes(&[rec(3, "c")]);
    let middle = invoke(&env, &handler, middle).await.unwrap();
    assert_eq!(texts(&middle), ["a", "b", "c"]);
    assert!(
        handler.closed().is_empty(),
        "no close before the final invocation"
    );

    let last = window().state(state_of(&middle)).closing(false);
    let last = invoke(&env, &handler, last.event_bytes(&[rec(4, "d")]))
        .await
        .unwrap();
    assert!(last.closed);
    assert_eq!(texts(&last), ["a", "b", "c", "d"]);
    let closed = handler.closed();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].1, ["a", "b", "c", "d"]);
    assert_eq!(
        (closed[0].0.start.as_str(), closed[0].0.end.as_str()),
        (START, END)
    );
    assert!(closed[0].0.is_final && !closed[0].0.terminated_early);
    assert_eq!(closed[0].0.shard_id, SHARD);
    assert_eq!(closed[0].0.stream_arn, STREAM);
}

#[tokio::test]
async fn a_failing_record_stops_the_window_there_with_the_state_before_it() {
    let env = Env::new("window-fail");
    let handler = Arc::new(Collect::default());
    handler.fail_on(Some("b"));
    let before = json!({"texts": ["x"]});
    let event = window()
        .state(before)
        .event_bytes(&[rec(1, "a"), rec(2, "b"), rec(3, "c")]);
    let outcome = invoke(&env, &handler, event).await.unwrap();
    assert_eq!(retry_from(&outcome), [seq(2)]);
    assert_eq!(
        texts(&outcome),
        ["x", "a"],
        "the state after the records done"
    );
    assert_eq!((outcome.report.failed, outcome.report.not_started), (1, 1));

    // Lambda retries from the failed record with the state returned.
    handler.fail_on(None);
    let retry = window()
        .state(state_of(&outcome))
        .event_bytes(&[rec(2, "b"), rec(3, "c")]);
    let retry = invoke(&env, &handler, retry).await.unwrap();
    assert!(retry.response.is_success());
    assert_eq!(texts(&retry), ["x", "a", "b", "c"]);
}

#[tokio::test]
async fn the_final_invocation_closes_only_once_its_records_are_done() {
    let env = Env::new("window-final-fail");
    let handler = Arc::new(Collect::default());
    handler.fail_on(Some("b"));
    let last = window().closing(false);
    let outcome = invoke(
        &env,
        &handler,
        last.event_bytes(&[rec(1, "a"), rec(2, "b")]),
    )
    .await
    .unwrap();
    assert!(!outcome.closed && handler.closed().is_empty());
    assert_eq!(retry_from(&outcome), [seq(2)]);

    handler.fail_on(None);
    let retry = last.state(state_of(&outcome)).event_bytes(&[rec(2, "b")]);
    let retry = invoke(&env, &handler, retry).await.unwrap();
    assert!(retry.closed);
    assert_eq!(handler.closed()[0].1, ["a", "b"]);
}

#[tokio::test]
async fn quarantined_records_are_done_and_add_nothing_to_the_window() {
    let env = Env::new("window-quarantine");
    let handler = Arc::new(Collect::default());
    let records = [
        rec(1, "a"),
        rec(2, "poison pill"),
        Rec::raw(seq(3), "%%% not base64"),
        rec(4, "d"),
    ];
    let outcome = invoke(
        &env,
        &handler,
        window().closing(false).event_bytes(&records),
    )
    .await
    .unwrap();
    assert!(outcome.response.is_success());
    assert_eq!(texts(&outcome), ["a", "d"]);
    assert_eq!(handler.closed()[0].1, ["a", "d"]);
    let mut reasons: Vec<(String, QuarantineReason)> = env
        .quarantined()
        .await
        .into_iter()
        .map(|q| (q.sequence_number, q.reason))
        .collect();
    reasons.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        reasons,
        [
            (seq(2), QuarantineReason::Permanent),
            (seq(3), QuarantineReason::Undecodable)
        ]
    );
}

#[tokio::test]
async fn a_whole_invocation_retried_with_the_old_state_folds_its_records_again() {
    let env = Env::new("window-redo");
    let handler = Arc::new(Collect::default());
    let event = window()
        .state(json!({"texts": ["x"]}))
        .event_bytes(&[rec(1, "a"), rec(2, "b")]);
    let first = invoke(&env, &handler, event.clone()).await.unwrap();
    assert_eq!(texts(&first), ["x", "a", "b"]);
    assert_eq!(env.checkpoint().await, Some((seq(2), 0)));
    // The response was lost (say, a timeout after the commit): Lambda sends
    // the batch again with the state from before it. Shardline's checkpoint is
    // past both records, but skipping them would drop them from the window.
    let again = invoke(&env, &handler, event).await.unwrap();
    assert_eq!(texts(&again), ["x", "a", "b"]);
    assert_eq!(again.report.skipped(), 0);
}

#[tokio::test]
async fn a_failed_close_fails_the_invocation_and_the_retry_closes_once() {
    let env = Env::new("window-close");
    let handler = Arc::new(Collect::default());
    handler.close_fails.store(true, Ordering::SeqCst);
    let event = window()
        .state(json!({"texts": ["x"]}))
        .closing(false)
        .event_bytes(&[rec(1, "a")]);
    let err = invoke(&env, &handler, event.clone()).await.unwrap_err();
    assert!(matches!(err, WindowError::Close { .. }), "{err}");
    let text = err.to_string();
    for part in [SHARD, START, END, seq(1).as_str(), "unavailable"] {
        assert!(text.contains(part), "{part} in {text}");
    }
    handler.close_fails.store(false, Ordering::SeqCst);
    let retry = invoke(&env, &handler, event).await.unwrap();
    assert!(retry.closed);
    let expected = vec!["x".to_owned(), "a".to_owned()];
    assert_eq!(handler.closed(), [(retry_info(), expected)]);
}

fn retry_info() -> WindowInfo {
    WindowInfo {
        start: START.into(),
        end: END.into(),
        shard_id: SHARD.into(),
        stream_arn: STREAM.into(),
        is_final: true,
        terminated_early: false,
    }
}

#[tokio::test]
async fn an_early_terminated_window_closes_its_part_and_goes_on_fresh() {
    let env = Env::new("window-early");
    let handler = Arc::new(Collect::default());
    let cut = window()
        .state(json!({"texts": ["a", "b"]}))
        .closing(true)
        .event_bytes(&[rec(3, "c")]);
    let cut = invoke(&env, &handler, cut).await.unwrap();
    assert!(cut.closed);
    // The same window goes on with a fresh state, and closes again at its end.
    let fresh = window().state(json!({})).event_bytes(&[rec(4, "d")]);
    let fresh = invoke(&env, &handler, fresh).await.unwrap();
    assert_eq!(texts(&fresh), ["d"]);
    let end = window()
        .state(state_of(&fresh))
        .closing(false)
        .event_bytes(&[]);
    let end = invoke(&env, &handler, end).await.unwrap();
    assert!(end.closed && end.report.records == 0);
    let closed = handler.closed();
    assert_eq!(closed.len(), 2);
    assert!(closed[0].0.terminated_early && !closed[1].0.terminated_early);
    assert_eq!(
        (closed[0].1.clone(), closed[1].1.clone()),
        (
            vec!["a".to_owned(), "b".into(), "c".into()],
            vec!["d".to_owned()]
        )
    );
}

#[tokio::test]
async fn a_state_of_another_shape_fails_the_invocation_by_name() {
    let env = Env::new("window-shape");
    let handler = Arc::new(Collect::default());
    let event = window()
        .state(json!({"texts": 5}))
        .event_bytes(&[rec(1, "a")]);
    let err = invoke(&env, &handler, event).await.unwrap_err();
    assert!(matches!(err, WindowError::State { .. }), "{err}");
    assert!(
        err.to_string().contains(SHARD) && err.to_string().contains(START),
        "{err}"
    );
}

/// A window with more poison records than one commit quarantines (32): the
/// first commit takes 32 and stops the shard at the next one, so the state
/// returned holds nothing past the record Lambda is told to retry from; the
/// retry quarantines the rest and folds each good record once.
#[tokio::test]
async fn more_poison_than_one_commit_takes_folds_each_good_record_once() {
    let env = Env::new("window-poison-flood");
    let handler = Arc::new(Collect::default());
    let all: Vec<Rec> = (1..=45)
        .map(|n| match n {
            1..=40 => rec(n, &format!("poison-{n}")),
            _ => rec(n, &format!("good-{n}")),
        })
        .collect();
    let mut state = json!({});
    let mut from = seq(1);
    let mut invocations = 0;
    let outcome = loop {
        invocations += 1;
        assert!(invocations < 5, "the window never gets past the poison");
        let records: Vec<Rec> = all
            .iter()
            .filter(|r| r.sequence_number >= from)
            .cloned()
            .collect();
        let event = window().state(state.clone()).event_bytes(&records);
        let outcome = invoke(&env, &handler, event).await.unwrap();
        state = state_of(&outcome);
        match retry_from(&outcome).first() {
            Some(next) => from = next.clone(),
            None => break outcome,
        }
    };
    assert_eq!(invocations, 2, "32, then 8 more");
    assert_eq!(
        texts(&outcome),
        ["good-41", "good-42", "good-43", "good-44", "good-45"]
    );
    assert_eq!(env.quarantined().await.len(), 40);
}

/// Lambda can only be told an aggregate's sequence number: a record failing
/// inside a KPL aggregate makes Lambda send the whole aggregate again, so the
/// state returned is the one from before it (found by the simulation: the
/// aggregate's earlier user records were folded twice).
#[tokio::test]
async fn a_retry_inside_a_kpl_aggregate_returns_the_state_from_before_it() {
    use shardline::decode::kpl::{UserRecord, aggregate};
    let env = Env::new("window-kpl-retry");
    let handler = Arc::new(Collect::default());
    handler.fail_on(Some("c"));
    let user = |text: &str| UserRecord {
        partition_key: "k".into(),
        explicit_hash_key: None,
        data: bytes::Bytes::from(text.to_owned()),
    };
    let outer = Rec::new(seq(2), aggregate(&[user("a"), user("b"), user("c")])).key("agg");
    let records = [rec(1, "x"), outer];
    let first = invoke(&env, &handler, window().event_bytes(&records))
        .await
        .unwrap();
    assert_eq!(retry_from(&first), [seq(2)], "Lambda is told the aggregate");
    assert_eq!(texts(&first), ["x"], "the state from before the aggregate");
    handler.fail_on(None);
    let resent = window().state(state_of(&first)).event_bytes(&records[1..]);
    let second = invoke(&env, &handler, resent).await.unwrap();
    assert!(second.response.is_success());
    assert_eq!(texts(&second), ["x", "a", "b", "c"]);
}

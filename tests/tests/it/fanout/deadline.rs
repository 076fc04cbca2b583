//! A destination slower than the invocation's time: the deadline cuts the
//! flush, never the invocation, and only what was given up on may come twice.

use std::time::Duration;

use shardline::decode::decode_event;
use shardline::sink::kinesis::KinesisSink;
use shardline::sink::{DeliveryOrder, OutRecord, Sink};
use shardline::{Deadline, EngineConfig, process_event};
use shardline_tests::fault_proxy::{FaultProxy, Faults};
use shardline_tests::lambda::{event, made_up, stream_arn};

use super::{Setup, records};

#[tokio::test]
async fn a_slow_destination_never_holds_the_invocation_past_its_deadline() {
    let setup = Setup::new().await;
    let streams = setup.streams(1).await;
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        &Faults {
            delay_ms: 600,
            ..Faults::default()
        },
    );
    let (client, _) = setup.client(Some(&proxy.endpoint));
    let fanout = setup.fanout(&client, &streams, DeliveryOrder::Ordered);
    let mut config = EngineConfig::new("fanout");
    config.time_reserve = Duration::from_millis(200);
    // One key: ordered delivery sends its records one request at a time.
    let batch = made_up(0, 5, |_| "k".into(), |i| format!("rec-{i:06}").into_bytes());
    let json = event(&stream_arn("source"), "shardId-000000000000", &batch);
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(invocations <= 10, "no progress across invocations");
        let remaining = Duration::from_millis(1_000);
        let started = std::time::Instant::now();
        let outcome = process_event(
            decode_event(&json).unwrap(),
            &fanout,
            &setup.store,
            &config,
            Deadline::after(remaining),
        )
        .await
        .unwrap();
        assert!(
            started.elapsed() < remaining,
            "invocation {invocations} answered after {:?}, past its {remaining:?}",
            started.elapsed()
        );
        if outcome.response.is_success() {
            break;
        }
    }
    assert!(invocations > 1, "the batch needed several invocations");
    let given_up = fanout.given_up();
    println!("records given up on at a deadline: {given_up}");
    setup
        .assert_delivered_but_given_up(&streams[0], &batch, true, given_up)
        .await;
}

#[tokio::test]
async fn a_request_given_up_on_at_the_deadline_is_counted_and_only_its_records_come_twice() {
    let setup = Setup::new().await;
    let streams = setup.streams(1).await;
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        &Faults {
            delay_ms: 900,
            ..Faults::default()
        },
    );
    let (client, _) = setup.client(Some(&proxy.endpoint));
    let sink = KinesisSink::new(client, &streams[0]).order(DeliveryOrder::Throughput);
    let batch = records(20);
    let out: Vec<OutRecord> = decode_event(&event(
        &stream_arn("source"),
        "shardId-000000000000",
        &batch,
    ))
    .unwrap()
    .items
    .into_iter()
    .map(|item| match item {
        shardline::decode::Item::Ready(record) => OutRecord::copy_of(&record),
        other => panic!("undecodable: {other:?}"),
    })
    .collect();
    // Time for a first request (at least 250 ms and half again), not for its
    // 900 ms answer: it is started, then given up on.
    let cut = sink
        .send(&out, Deadline::after(Duration::from_millis(600)))
        .await;
    assert!(!cut.is_complete());
    let given_up = cut.counts.get("FanoutGivenUp").copied().unwrap_or(0);
    assert_eq!(given_up, 20, "every record was in the request given up on");
    // The proxy still forwards the request it held: the retry writes them twice.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let retry = sink
        .send(&out, Deadline::after(Duration::from_secs(10)))
        .await;
    assert!(retry.is_complete(), "{:?}", retry.error);
    assert!(!retry.counts.contains_key("FanoutGivenUp"));
    setup
        .assert_delivered_but_given_up(&streams[0], &batch, true, given_up)
        .await;
    let read = setup.read_all(&streams[0]).await;
    assert_eq!(
        read.len(),
        40,
        "the request given up on was written after all"
    );
}

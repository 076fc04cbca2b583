//! A buffering handler's flush gets time of its own (item 10 of the
//! simulation issue). Slow `handle` calls used the invocation's time up to
//! the commit's reserve, the fan-out's flush had none left to send anything,
//! and the first record of each unit was charged an attempt each time until
//! it was quarantined, healthy as it was. Now a flush that ran out of time
//! before trying a record charges nothing, and the fan-out asks for more time
//! next time ([`shardline::Handler::flush_time`]), so the batch gets through.
//! Over the simulated Kinesis (a destination whose requests take 400 ms).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shardline::decode::decode_event;
use shardline::sample::{SampleRecord, event_bytes};
use shardline::sink::kinesis::KinesisSink;
use shardline::sink::{FanOut, Sink, StaticDestinations};
use shardline::state::{EmbeddedStore, StateStore};
use shardline::time::SimulatedWallClock;
use shardline::{
    Batch, Deadline, EngineConfig, FlushError, Handler, HandlerError, Record, process_event,
};
use shardline_sim::kinesis::{Call, Fault, FaultHook, KinesisService};

/// Every PutRecords takes 400 ms.
struct SlowDestination;

impl FaultHook for SlowDestination {
    fn on_request(&mut self, call: &Call<'_>) -> Option<Fault> {
        (call.operation == "PutRecords").then_some(Fault::Delay(Duration::from_millis(400)))
    }
}

/// The fan-out, each `handle` taking 100 ms first.
struct Slow(FanOut);

impl Handler for Slow {
    async fn begin(&self, batch: &Batch<'_>) {
        self.0.begin(batch).await;
    }

    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.0.handle(record).await
    }

    fn flush_time(&self) -> Duration {
        self.0.flush_time()
    }

    async fn flush(&self, batch: &Batch<'_>) -> Result<(), FlushError> {
        self.0.flush(batch).await
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn slow_records_leave_the_flush_its_time_and_charge_no_healthy_record() {
    let _clock =
        SimulatedWallClock::start(SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000));
    let kinesis = KinesisService::new();
    kinesis.create_stream("copy", 1).unwrap();
    kinesis.set_faults(SlowDestination);
    let sink: Arc<dyn Sink> = Arc::new(KinesisSink::new(kinesis.client(), "copy"));
    let handler = Slow(FanOut::new(StaticDestinations(vec![sink]), 1 << 20));
    let dir = std::env::temp_dir().join(format!("sim-flush-time-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = EmbeddedStore::open(&dir).unwrap();
    let mut config = EngineConfig::new("copy");
    config.max_attempts = 2;
    config.time_reserve = Duration::from_millis(200);
    let records: Vec<SampleRecord> = (1..=40u64)
        .map(|n| {
            SampleRecord::new(
                shardline::sample::sequence_number(n),
                format!("record {n}").as_bytes(),
            )
            .key(&format!("k{n}"))
        })
        .collect();
    let mut left = records.clone();
    let mut invocations = 0;
    while !left.is_empty() {
        invocations += 1;
        assert!(invocations <= 6, "the batch does not get through");
        let event = decode_event(&event_bytes(&left)).unwrap();
        let outcome = process_event(
            event,
            &handler,
            &store,
            &config,
            Deadline::after(Duration::from_secs(3)),
        )
        .await
        .unwrap();
        let Some(failure) = outcome.response.batch_item_failures.first() else {
            break;
        };
        let from = failure.item_identifier.clone();
        left.retain(|r| r.sequence_number >= from);
    }
    let quarantined = store.quarantined("copy").await.unwrap();
    assert!(
        quarantined.is_empty(),
        "healthy records quarantined for lack of time: {:?}",
        quarantined.iter().map(|q| &q.detail).collect::<Vec<_>>()
    );
    let written = kinesis.stream_records("copy").unwrap();
    let count: usize = written.values().map(Vec::len).sum();
    assert_eq!(
        count, 40,
        "every record delivered once, in {invocations} invocations"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

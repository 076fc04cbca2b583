//! The engine-speed workload shared by `benches/speed.rs` and the peers'
//! scripts (`scripts/peers/speed.{py,mjs}`): ledger transactions of about
//! 1 KiB of JSON each, in a Lambda Kinesis event written to a file, and the
//! sum of their `amount` fields, which every implementation must reproduce.

use std::path::Path;

use serde::Deserialize;
use shardline::sample::{SampleRecord, event_bytes};

/// Lambda's limit on an invocation payload (6 MB), in bytes.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/ledger";

/// A ledger transaction as the handlers read it: only `amount` matters.
#[derive(Debug, Deserialize)]
pub struct Txn {
    /// Cents, signed.
    pub amount: i64,
}

/// The payload of transaction `i`: about 1 KiB of JSON.
pub fn payload(i: usize) -> String {
    let memo = "invoice settlement for services rendered; reference ".repeat(17);
    format!(
        r#"{{"txn":"t-{i:08}","account":"A{:04}","seq":{},"amount":{},"currency":"EUR","booked_at":"2026-11-23T18:00:00Z","memo":"{memo}{i}"}}"#,
        i % 1000,
        i / 1000 + 1,
        (i % 17) as i64 * 113 - 800,
    )
}

/// The sum of `amount` over transactions `0..records`.
pub fn expected_sum(records: usize) -> i64 {
    (0..records).map(|i| (i % 17) as i64 * 113 - 800).sum()
}

/// A Lambda Kinesis event of transactions `0..records`, as JSON bytes.
pub fn ledger_event(records: usize) -> Vec<u8> {
    let arrival = Some(1_795_000_000.25);
    let items: Vec<SampleRecord> = (0..records)
        .map(|i| {
            SampleRecord::new(
                format!("49590338271490256608559692538361571095921575989136{i:06}"),
                payload(i),
            )
            .key(&format!("A{:04}", i % 1000))
            .shard(STREAM, "shardId-000000000000")
            .arrived(arrival)
        })
        .collect();
    event_bytes(&items)
}

/// The most transactions whose event stays within [`MAX_PAYLOAD`].
pub fn records_under_payload_limit() -> usize {
    let one = ledger_event(1).len();
    let two = ledger_event(2).len();
    let per_record = two - one;
    let mut records = (MAX_PAYLOAD - one) / per_record + 1;
    while ledger_event(records).len() > MAX_PAYLOAD {
        records -= 1;
    }
    records
}

/// One event of the workload: its name, records, and the file the peers read.
#[derive(Debug, Clone)]
pub struct SpeedEvent {
    /// `"10k"` or `"6mb"`.
    pub name: &'static str,
    /// Records in it.
    pub records: usize,
    /// The event JSON.
    pub bytes: Vec<u8>,
}

impl SpeedEvent {
    /// The two events of the benchmark: 10,000 transactions, and the largest
    /// event under the 6 MB payload limit.
    pub fn both() -> Vec<SpeedEvent> {
        let largest = records_under_payload_limit();
        vec![
            SpeedEvent {
                name: "10k",
                records: 10_000,
                bytes: ledger_event(10_000),
            },
            SpeedEvent {
                name: "6mb",
                records: largest,
                bytes: ledger_event(largest),
            },
        ]
    }

    /// Writes the event to `dir/ledger-<name>.json` for the peers.
    ///
    /// # Errors
    /// The file system's.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("ledger-{}.json", self.name));
        std::fs::write(&path, &self.bytes)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_about_a_kibibyte_and_the_sum_matches_them() {
        let len = payload(12_345).len();
        assert!((950..=1100).contains(&len), "{len}");
        let sum: i64 = (0..300)
            .map(|i| serde_json::from_str::<Txn>(&payload(i)).unwrap().amount)
            .sum();
        assert_eq!(sum, expected_sum(300));
    }

    #[test]
    fn the_largest_event_is_the_largest_under_the_limit() {
        let n = records_under_payload_limit();
        assert!(ledger_event(n).len() <= MAX_PAYLOAD);
        assert!(ledger_event(n + 1).len() > MAX_PAYLOAD);
    }
}

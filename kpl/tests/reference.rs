//! The crate against the reference implementation of the format
//! (`aws_kinesis_agg`, pinned in `kpl/fixtures/requirements.txt`), through the
//! fixtures `kpl/fixtures/make_fixtures.py` wrote with it:
//!
//! - `reference.json`: Kinesis records the reference aggregated, or written to
//!   fail its checks, and the user records the reference reads from them. The
//!   crate reads exactly those, and aggregates them to the same bytes.
//! - `crate_made.json`: aggregates the crate made, and what the reference read
//!   from them: the crate still makes those bytes, and the reference read back
//!   the records they were made of.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use kpl::{Aggregator, Deaggregated, UserRecord, aggregate, deaggregate, user_records};
use serde::Deserialize;

#[derive(Deserialize, Clone, Debug)]
struct Json {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: String,
}

impl Json {
    fn record(&self) -> UserRecord {
        UserRecord {
            partition_key: self.partition_key.clone(),
            explicit_hash_key: self.explicit_hash_key.clone(),
            data: Bytes::from(STANDARD.decode(&self.data).unwrap()),
        }
    }
}

fn records(json: &[Json]) -> Vec<UserRecord> {
    json.iter().map(Json::record).collect()
}

#[derive(Deserialize)]
struct ReferenceCase {
    name: String,
    kinesis_records: Vec<Json>,
    user_records: Vec<Json>,
}

#[derive(Deserialize)]
struct CrateCase {
    name: String,
    max_bytes: usize,
    user_records: Vec<Json>,
    crate_aggregates: Vec<Json>,
    reference_read: Vec<Json>,
}

#[derive(Deserialize)]
struct Fixture<C> {
    made_by: String,
    cases: Vec<C>,
}

fn fixture<C: for<'de> Deserialize<'de>>(name: &str) -> Fixture<C> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let fixture: Fixture<C> = serde_json::from_str(&text).unwrap();
    assert!(
        fixture.made_by.contains("aws_kinesis_agg=="),
        "{}",
        fixture.made_by
    );
    fixture
}

#[test]
fn the_crate_reads_exactly_the_user_records_the_reference_reads() {
    let fixture: Fixture<ReferenceCase> = fixture("reference.json");
    assert_eq!(fixture.cases.len(), 10);
    for case in &fixture.cases {
        let read: Vec<UserRecord> = records(&case.kinesis_records)
            .into_iter()
            .flat_map(user_records)
            .collect();
        assert_eq!(read, records(&case.user_records), "case {}", case.name);
    }
}

#[test]
fn reference_aggregates_are_aggregates_and_the_crate_makes_them_byte_for_byte() {
    let fixture: Fixture<ReferenceCase> = fixture("reference.json");
    let mut aggregates = 0;
    for case in &fixture.cases {
        for kinesis in records(&case.kinesis_records) {
            let outcome = deaggregate(&kinesis.data);
            let fallback = case.name.starts_with("bad_") || case.name.starts_with("magic_");
            match outcome {
                Deaggregated::Aggregate(inner) => {
                    assert!(!fallback, "case {}", case.name);
                    aggregates += 1;
                    assert_eq!(aggregate(&inner), kinesis.data, "case {}", case.name);
                    assert_eq!(kinesis.partition_key, inner[0].partition_key);
                    assert_eq!(kinesis.explicit_hash_key, inner[0].explicit_hash_key);
                }
                Deaggregated::Fallback(_) => assert!(fallback, "case {}", case.name),
                Deaggregated::Plain => assert!(case.name.starts_with("plain_"), "{}", case.name),
            }
        }
    }
    // mixed_keys, explicit_hash_keys, single_record: one each; 400 records of 150 bytes cut at 16 KiB: 5.
    assert_eq!(aggregates, 8);
}

#[test]
fn the_reference_reads_back_what_the_crate_aggregates() {
    let fixture: Fixture<CrateCase> = fixture("crate_made.json");
    assert_eq!(fixture.cases.len(), 2);
    for case in &fixture.cases {
        let input = records(&case.user_records);
        assert_eq!(records(&case.reference_read), input, "case {}", case.name);
        // The crate still makes the aggregates the reference read.
        let mut aggregator = Aggregator::with_max_bytes(case.max_bytes).unwrap();
        let mut made = Vec::new();
        for record in input {
            made.extend(aggregator.add(record).unwrap());
        }
        made.extend(aggregator.finish());
        let expected = records(&case.crate_aggregates);
        assert_eq!(made.len(), expected.len(), "case {}", case.name);
        for (made, expected) in made.iter().zip(&expected) {
            assert_eq!(made.data, expected.data, "case {}", case.name);
            assert_eq!(made.partition_key, expected.partition_key);
            assert_eq!(made.explicit_hash_key, expected.explicit_hash_key);
            assert!(made.size() <= case.max_bytes);
        }
    }
}

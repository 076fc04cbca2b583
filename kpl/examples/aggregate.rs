//! Aggregates user records read as JSON from standard input, and writes the
//! aggregates as JSON: what `kpl/fixtures/make_fixtures.py` hands to the
//! reference implementation to read back.
//!
//! ```text
//! echo '[{"partition_key":"k","explicit_hash_key":null,"data":"aGk="}]' \
//!     | cargo run -q -p shardline-kpl --example aggregate -- 1048576
//! ```
//!
//! Input: an array of `{partition_key, explicit_hash_key, data}` (data in
//! base64); the argument is the aggregates' largest size in bytes (1 MiB if
//! absent). Output: the aggregates, in the same shape.

use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kpl::{Aggregate, Aggregator, UserRecord};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Json {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: String,
}

impl From<Aggregate> for Json {
    fn from(aggregate: Aggregate) -> Self {
        Json {
            partition_key: aggregate.partition_key,
            explicit_hash_key: aggregate.explicit_hash_key,
            data: STANDARD.encode(&aggregate.data),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let max_bytes = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => kpl::MAX_RECORD_BYTES,
    };
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let records: Vec<Json> = serde_json::from_str(&input)?;
    let mut aggregator = Aggregator::with_max_bytes(max_bytes)?;
    let mut out: Vec<Json> = Vec::new();
    for record in records {
        let mut user = UserRecord::new(record.partition_key, STANDARD.decode(record.data)?);
        user.explicit_hash_key = record.explicit_hash_key;
        out.extend(aggregator.add(user)?.map(Json::from));
    }
    out.extend(aggregator.finish().map(Json::from));
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

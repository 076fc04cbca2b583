//! Event decoding never panics, and a well-formed envelope loses no record.
//!
//! The first byte picks the input: the rest as a whole event (any bytes), as
//! one record's payload (base64-encoded by the test, so KPL aggregates and
//! their fallbacks are reached), or as one record's `data` text as it came
//! (base64 or not).

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardline_event::decode::{Item, decode_event};
use shardline_event::sample::{SampleRecord, event_bytes, sequence_number};

const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/fuzz";
const SHARD: &str = "shardId-000000000001";

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let record = match mode % 3 {
        0 => {
            // Any bytes: an error or a decoded event, never a panic.
            let _ = decode_event(rest);
            return;
        }
        1 => SampleRecord::new(sequence_number(7), rest),
        _ => SampleRecord::raw(sequence_number(7), &String::from_utf8_lossy(rest)),
    };
    let event = event_bytes(&[record.shard(ARN, SHARD)]);
    let decoded = decode_event(&event).expect("a well-formed envelope decodes");
    assert!(!decoded.items.is_empty(), "the record is kept");
    for (index, item) in decoded.items.iter().enumerate() {
        let record = item.record();
        assert_eq!(&*record.shard.shard_id, SHARD);
        assert_eq!(record.position.sequence.as_str(), sequence_number(7));
        assert_eq!(record.position.subsequence, index as u64);
        if mode % 3 == 1 && decoded.items.len() == 1 {
            // One item from a base64 payload: the payload itself, unless it
            // was an aggregate of one user record.
            if let Item::Ready(r) = item
                && decoded.kpl.aggregates == 0
            {
                assert_eq!(&r.data[..], rest, "a plain payload arrives as it was");
            }
        }
    }
});

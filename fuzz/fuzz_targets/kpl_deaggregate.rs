//! KPL deaggregation never panics; what it accepts packs back to the same user
//! records.
//!
//! The first byte picks the input: the rest as a record's data (any bytes), or
//! as an aggregate's protobuf body wrapped with the magic and a correct MD5, so
//! the fuzzer reaches the protobuf and key-table checks behind the digest.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use kpl::{Deaggregated, KPL_MAGIC, aggregate, deaggregate};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let data = if mode % 2 == 0 {
        Bytes::copy_from_slice(rest)
    } else {
        let mut wrapped = KPL_MAGIC.to_vec();
        wrapped.extend_from_slice(rest);
        wrapped.extend_from_slice(&md5::compute(rest).0);
        Bytes::from(wrapped)
    };
    match deaggregate(&data) {
        Deaggregated::Plain => assert!(!data.starts_with(&KPL_MAGIC)),
        Deaggregated::Fallback(reason) => {
            assert!(data.starts_with(&KPL_MAGIC));
            assert!(!reason.to_string().is_empty());
        }
        Deaggregated::Aggregate(records) => {
            assert!(!records.is_empty());
            let again = deaggregate(&Bytes::from(aggregate(&records)));
            assert_eq!(again, Deaggregated::Aggregate(records), "a round trip keeps the user records");
        }
    }
});

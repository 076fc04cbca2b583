//! What a destination stream received, checked against what was sent.

use std::collections::HashMap;

use crate::lambda::EventRecord;

/// Asserts that `read` (payload and partition key, each shard in order) holds
/// every record of `expected` with its key, at least once, and no other; that
/// copies beyond the first number at most `given_up` (the records of requests
/// given up on at a deadline, which may have been written before a retry wrote
/// them again: none when nothing was given up); and, if `ordered`, that each
/// key's first copies come in the order sent.
///
/// # Panics
/// When any of that does not hold, naming `what`.
pub fn assert_delivered_once(
    what: &str,
    read: &[(&[u8], &str)],
    expected: &[EventRecord],
    ordered: bool,
    given_up: u64,
) {
    let wanted: HashMap<&[u8], &str> = expected
        .iter()
        .map(|r| (r.data.as_slice(), r.partition_key.as_str()))
        .collect();
    let mut seen: HashMap<&[u8], u64> = HashMap::new();
    let mut last: HashMap<&str, &[u8]> = HashMap::new();
    for &(data, key) in read {
        assert_eq!(
            wanted.get(data).copied(),
            Some(key),
            "{what}: unknown record or wrong partition key"
        );
        let copies = seen.entry(data).or_default();
        *copies += 1;
        if *copies == 1 && ordered {
            // A key lives on one shard; each shard is read in order.
            if let Some(previous) = last.insert(key, data) {
                assert!(previous < data, "{what}: key {key} out of order");
            }
        }
    }
    assert_eq!(
        seen.len(),
        wanted.len(),
        "{what}: records seen at least once"
    );
    let extra: u64 = seen.values().map(|n| n - 1).sum();
    assert!(
        extra <= given_up,
        "{what}: {extra} copies of records seen twice, with {given_up} records given up on at a deadline"
    );
}

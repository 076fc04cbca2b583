//! The window's state and what each record adds to it: per partition key, the
//! records and the bytes of payload.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shardline::Record;

/// One key's count: `[records, bytes]` in the state's JSON, to keep the state
/// small (Lambda carries at most 1 MB; about 40,000 keys of 10 characters fit).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyCount(pub u64, pub u64);

impl KeyCount {
    /// Records counted.
    pub(crate) fn records(self) -> u64 {
        self.0
    }

    /// Payload bytes counted.
    pub(crate) fn bytes(self) -> u64 {
        self.1
    }
}

/// The state of one window of one shard, as it travels between invocations:
/// `{"first": "<position>", "keys": {"<partition key>": [records, bytes]}}`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    /// The position (`sequence/subsequence`) of the first record counted in
    /// this state: it names this part of the window, so writing the same part
    /// twice adds nothing, while the parts of a window ended early add up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    /// Per partition key, records and bytes.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyCount>,
}

impl Counts {
    /// Counts `record`: one more record and its payload's bytes for its key.
    pub(crate) fn add(&mut self, record: &Record) {
        let count = self.keys.entry(record.partition_key.clone()).or_default();
        count.0 += 1;
        count.1 += record.data.len() as u64;
        if self.first.is_none() {
            self.first = Some(record.position.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline::sample::{SampleRecord, event_bytes, sequence_number};

    #[test]
    fn records_and_bytes_add_up_per_key_and_the_first_record_names_the_part() {
        let event = event_bytes(&[
            SampleRecord::new(sequence_number(1), b"abc").key("k1"),
            SampleRecord::new(sequence_number(2), b"de").key("k2"),
            SampleRecord::new(sequence_number(3), b"").key("k1"),
        ]);
        let decoded = shardline::decode::decode_event(&event).unwrap();
        let mut counts = Counts::default();
        for item in &decoded.items {
            counts.add(item.record());
        }
        assert_eq!(counts.keys["k1"], KeyCount(2, 3));
        assert_eq!(counts.keys["k2"], KeyCount(1, 2));
        assert_eq!(counts.first, Some(format!("{}/0", sequence_number(1))));
        let json = serde_json::to_value(&counts).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"first": format!("{}/0", sequence_number(1)),
                               "keys": {"k1": [2, 3], "k2": [1, 2]}})
        );
        assert_eq!(serde_json::from_value::<Counts>(json).unwrap(), counts);
    }
}

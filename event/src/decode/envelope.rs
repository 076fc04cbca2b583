//! The Lambda Kinesis event's JSON shape, read leniently: every field is
//! optional at the serde level, so each record's problems are judged one by one
//! (see [`decode_event`](super::decode_event)).
//!
//! [`KinesisEventEnvelope`] owns its strings (what a deserializer without the
//! input at hand gives); [`RecordView`] is one record borrowed from either it
//! or the event's bytes, which is how [`decode_event`](super::decode_event)
//! reads them without copying the payload text.

use std::borrow::Cow;

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A Lambda event from a Kinesis event source mapping, as JSON gives it.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct KinesisEventEnvelope {
    /// The records (`Records`).
    #[serde(rename = "Records", default)]
    pub records: Option<Vec<EnvelopeRecord>>,
}

/// One entry of `Records`.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeRecord {
    #[serde(rename = "eventID")]
    pub event_id: Option<String>,
    pub event_source: Option<String>,
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: Option<String>,
    pub kinesis: Option<EnvelopeKinesis>,
}

/// The `kinesis` object of a record.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeKinesis {
    pub partition_key: Option<String>,
    pub sequence_number: Option<String>,
    pub data: Option<String>,
    pub approximate_arrival_timestamp: Option<f64>,
}

/// The envelope borrowed from the event's bytes (strings without escapes are
/// not copied).
#[derive(Debug, Deserialize)]
pub(super) struct BorrowedEnvelope<'a> {
    #[serde(rename = "Records", borrow, default)]
    pub records: Option<Vec<BorrowedRecord<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BorrowedRecord<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    event_source: Option<Text<'a>>,
    #[serde(rename = "eventSourceARN", borrow, default)]
    event_source_arn: Option<Text<'a>>,
    #[serde(borrow, default)]
    kinesis: Option<BorrowedKinesis<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BorrowedKinesis<'a> {
    #[serde(borrow, default)]
    partition_key: Option<Text<'a>>,
    #[serde(borrow, default)]
    sequence_number: Option<Text<'a>>,
    #[serde(borrow, default)]
    data: Option<Text<'a>>,
    #[serde(default)]
    approximate_arrival_timestamp: Option<f64>,
}

/// A JSON string borrowed from the input when it has no escapes, copied when
/// it has. (serde borrows a bare `Cow<str>` field, but not one inside an
/// `Option`.)
#[derive(Debug)]
pub(super) struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

/// One record of the event, whichever way it was read.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordView<'a> {
    pub event_id: Option<&'a str>,
    pub event_source: Option<&'a str>,
    pub event_source_arn: Option<&'a str>,
    pub kinesis: Option<KinesisView<'a>>,
}

/// The `kinesis` object of a [`RecordView`].
#[derive(Debug, Clone, Copy)]
pub(super) struct KinesisView<'a> {
    pub partition_key: Option<&'a str>,
    pub sequence_number: Option<&'a str>,
    pub data: Option<&'a str>,
    pub approximate_arrival_timestamp: Option<f64>,
}

/// `From<&Record> for RecordView` for a record type whose text fields deref to `str`.
macro_rules! view_from {
    ($record:ty) => {
        impl<'a> From<&'a $record> for RecordView<'a> {
            fn from(record: &'a $record) -> Self {
                RecordView {
                    event_id: record.event_id.as_deref(),
                    event_source: record.event_source.as_deref(),
                    event_source_arn: record.event_source_arn.as_deref(),
                    kinesis: record.kinesis.as_ref().map(|k| KinesisView {
                        partition_key: k.partition_key.as_deref(),
                        sequence_number: k.sequence_number.as_deref(),
                        data: k.data.as_deref(),
                        approximate_arrival_timestamp: k.approximate_arrival_timestamp,
                    }),
                }
            }
        }
    };
}

view_from!(BorrowedRecord<'_>);
view_from!(EnvelopeRecord);

//! `quarantine redrive --to-stream NAME`: quarantined records back onto a
//! stream (the source or another), each with its partition key and, if it had
//! one, its explicit hash key, per shard in sequence order, one PutRecord at a
//! time. A record leaves the quarantine only after its put succeeded; when a
//! put fails, the rest of that shard's records stay (so they keep their order)
//! and the other shards go on.
//!
//! Between a put and the delete that follows, a stop leaves the record both on
//! the stream and in the quarantine: a second redrive puts it again (at least
//! once, as Kinesis producers are).

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use serde::Serialize;

use super::replay::in_shard_order;
use crate::quarantine::QuarantinedRecord;
use crate::state::{QuarantineStore, StateError};

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RedriveOutcome {
    /// Put on the stream and removed from the quarantine.
    Redriven {
        /// The shard it landed on.
        to_shard: String,
        /// Its new sequence number.
        to_sequence_number: String,
    },
    /// A dry run: it would be put.
    WouldPut,
    /// The put failed: the record stays (with the rest of its shard).
    PutFailed {
        /// The error.
        detail: String,
    },
    /// Left alone, and why.
    Skipped {
        /// Why.
        why: String,
    },
}

/// Why a redrive stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedriveError {
    /// The store failed to remove a record that was put.
    #[error("redrive of {shard_id}/{sequence_number}: put on the stream, but {source}")]
    State {
        /// The record's shard.
        shard_id: String,
        /// The record's sequence number.
        sequence_number: String,
        /// The store's error.
        #[source]
        source: StateError,
    },
}

/// Puts `records` (already filtered) of `consumer` on `stream` (a name or an
/// ARN), calling `report` with each record's outcome. With `dry_run`, only
/// reports what would be put. Records an interrupted replay claimed are left
/// alone (their handler may have applied them).
///
/// # Errors
/// [`RedriveError`] when a record was put but cannot be removed from the
/// quarantine (it would be put again by the next redrive).
pub async fn redrive(
    store: &dyn QuarantineStore,
    client: &Client,
    stream: &str,
    consumer: &str,
    records: Vec<QuarantinedRecord>,
    dry_run: bool,
    mut report: impl FnMut(&QuarantinedRecord, &RedriveOutcome),
) -> Result<Vec<RedriveOutcome>, RedriveError> {
    let mut outcomes = Vec::new();
    let mut failed_shard: Option<(String, String)> = None;
    for record in in_shard_order(records) {
        let shard = (record.stream_arn.clone(), record.shard_id.clone());
        let outcome = if failed_shard.as_ref() == Some(&shard) {
            RedriveOutcome::Skipped {
                why: "an earlier record of its shard could not be put".into(),
            }
        } else if record.replay_started_at.is_some() {
            RedriveOutcome::Skipped {
                why: "an interrupted replay claimed it: it may have been applied".into(),
            }
        } else if dry_run {
            RedriveOutcome::WouldPut
        } else {
            put_and_remove(store, client, stream, consumer, &record).await?
        };
        if matches!(outcome, RedriveOutcome::PutFailed { .. }) {
            failed_shard = Some(shard);
        }
        report(&record, &outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

async fn put_and_remove(
    store: &dyn QuarantineStore,
    client: &Client,
    stream: &str,
    consumer: &str,
    record: &QuarantinedRecord,
) -> Result<RedriveOutcome, RedriveError> {
    let request = client
        .put_record()
        .partition_key(&record.partition_key)
        .set_explicit_hash_key(record.explicit_hash_key.clone())
        .data(Blob::new(record.data.to_vec()));
    let request = if stream.starts_with("arn:") {
        request.stream_arn(stream)
    } else {
        request.stream_name(stream)
    };
    let put = match request.send().await {
        Ok(put) => put,
        Err(e) => {
            let detail = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
            return Ok(RedriveOutcome::PutFailed { detail });
        }
    };
    store
        .remove_quarantined(consumer, &record.key())
        .await
        .map_err(|source| RedriveError::State {
            shard_id: record.shard_id.clone(),
            sequence_number: record.sequence_number.clone(),
            source,
        })?;
    Ok(RedriveOutcome::Redriven {
        to_shard: put.shard_id().to_owned(),
        to_sequence_number: put.sequence_number().to_owned(),
    })
}

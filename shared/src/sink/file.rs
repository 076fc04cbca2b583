//! A local JSON-lines file as a destination, so a local `invoke` shows what a
//! fan-out would have sent. One line per record: `stream`, `partition_key`,
//! `explicit_hash_key`, `data` (base64), `source_sequence_number`,
//! `source_subsequence_number`.

use std::io::Write as _;
use std::path::PathBuf;

use async_trait::async_trait;

use super::{OutRecord, SendOutcome, Sink, SinkError};
use crate::quarantine::encode_payload;
use crate::time::Deadline;

/// Appends records to a file, standing in for the stream `destination`.
#[derive(Debug, Clone)]
pub struct FileSink {
    destination: String,
    path: PathBuf,
    max_record_bytes: usize,
}

impl FileSink {
    /// Records for `destination` go to `path` (created, appended to).
    pub fn new(destination: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        FileSink {
            destination: destination.into(),
            path: path.into(),
            max_record_bytes: super::DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// Sets the largest record taken, as the stream it stands for would.
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    fn write(&self, records: &[OutRecord]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        for record in records {
            let line = serde_json::json!({
                "stream": self.destination,
                "partition_key": record.partition_key,
                "explicit_hash_key": record.explicit_hash_key,
                "data": encode_payload(&record.data),
                "source_sequence_number": record.source.sequence.as_str(),
                "source_subsequence_number": record.source.subsequence,
            });
            writeln!(file, "{line}")?;
        }
        file.flush()
    }
}

#[async_trait]
impl Sink for FileSink {
    fn destination(&self) -> &str {
        &self.destination
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    async fn send(&self, records: &[OutRecord], _deadline: Deadline) -> SendOutcome {
        match self.write(records) {
            Ok(()) => SendOutcome {
                delivered: vec![true; records.len()],
                requests: 1,
                ..SendOutcome::default()
            },
            Err(e) => SendOutcome {
                delivered: vec![false; records.len()],
                requests: 1,
                error: Some(SinkError::File {
                    path: self.path.display().to_string(),
                    message: e.to_string(),
                }),
                ..SendOutcome::default()
            },
        }
    }
}

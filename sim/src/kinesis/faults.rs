//! Faults: what goes wrong with a request, decided by a [`FaultHook`] the
//! simulator supplies, per request and per PutRecords entry.

use std::collections::VecDeque;
use std::time::Duration;

use super::stream::{ACCOUNT, stream_arn};
use super::wire::ApiError;

/// One request, as the fault hook sees it (after it is parsed and validated,
/// before it is applied).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The operation: `PutRecords`, `GetRecords`, `ListShards`...
    pub operation: &'a str,
    /// The stream it names (by name, ARN, shard iterator or `NextToken`), if
    /// any; it may not exist.
    pub stream: Option<&'a str>,
    /// The shard it reads (GetShardIterator, GetRecords).
    pub shard: Option<&'a str>,
    /// The entries it puts: those of PutRecords, 1 for PutRecord, else 0.
    pub entries: usize,
    /// The request's JSON.
    pub request: &'a serde_json::Value,
}

/// One PutRecords entry, as the fault hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct EntryCall<'a> {
    /// Its place in the request.
    pub index: usize,
    /// Its partition key.
    pub partition_key: &'a str,
    /// Its explicit hash key, if any.
    pub explicit_hash_key: Option<&'a str>,
    /// Its data.
    pub data: &'a [u8],
    /// The shard it would land on.
    pub shard: &'a str,
}

/// What goes wrong with a whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Plain latency: wait, then handle the request as usual.
    Delay(Duration),
    /// Fail before applying anything.
    Fail(Failure),
    /// Refuse the stream, applying nothing.
    Refuse(Refusal),
    /// Apply, then wait before answering: a caller with a deadline gives up
    /// on an answer that landed.
    Late(Duration),
    /// Apply, then lose the answer (the connection breaks).
    LoseAnswer,
    /// Lose the request: the connection breaks before it arrives, nothing is
    /// applied.
    LoseRequest,
}

/// A failure of a whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `500 InternalFailure`.
    Internal,
    /// `400 ProvisionedThroughputExceededException`.
    Throughput,
    /// `400 LimitExceededException` (the control-plane and read limits).
    LimitExceeded,
}

/// A refusal of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `AccessDeniedException`: the caller may not use the stream.
    AccessDenied,
    /// `ResourceNotFoundException`: the stream is not there.
    NotFound,
}

/// A failure of one PutRecords entry (not applied; the others are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFault {
    /// `ProvisionedThroughputExceededException`.
    Throughput,
    /// `InternalFailure`.
    Internal,
}

/// Decides what goes wrong. Called with the service's fault lock held: a hook
/// must not call the service.
pub trait FaultHook: Send {
    /// The fault of a whole request, if any.
    fn on_request(&mut self, call: &Call<'_>) -> Option<Fault>;

    /// The fault of one PutRecords entry, if any (asked for every entry of a
    /// request the request fault let through, in order).
    fn on_entry(&mut self, call: &Call<'_>, entry: &EntryCall<'_>) -> Option<EntryFault> {
        let _ = (call, entry);
        None
    }
}

/// Nothing goes wrong.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFaults;

impl FaultHook for NoFaults {
    fn on_request(&mut self, _: &Call<'_>) -> Option<Fault> {
        None
    }
}

/// Faults handed out in order: request faults to the next requests of an
/// operation (or of any), entry faults to the next entries put.
///
/// ```
/// use shardline_sim::kinesis::{EntryFault, Failure, Fault, ScriptedFaults};
/// let script = ScriptedFaults::new()
///     .request(Some("PutRecords"), Fault::Fail(Failure::Throughput))
///     .entries([None, Some(EntryFault::Internal)]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScriptedFaults {
    requests: VecDeque<(Option<String>, Fault)>,
    entries: VecDeque<Option<EntryFault>>,
}

impl ScriptedFaults {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `fault` for the next request of `operation` (of any, with `None`)
    /// not given a fault yet.
    pub fn request(mut self, operation: Option<&str>, fault: Fault) -> Self {
        self.requests
            .push_back((operation.map(str::to_owned), fault));
        self
    }

    /// Adds faults for the next entries put, one each (`None`: it goes through).
    pub fn entries(mut self, faults: impl IntoIterator<Item = Option<EntryFault>>) -> Self {
        self.entries.extend(faults);
        self
    }

    /// Whether every fault has been handed out.
    pub fn is_spent(&self) -> bool {
        self.requests.is_empty() && self.entries.is_empty()
    }
}

impl FaultHook for ScriptedFaults {
    fn on_request(&mut self, call: &Call<'_>) -> Option<Fault> {
        let at = self
            .requests
            .iter()
            .position(|(op, _)| op.as_deref().is_none_or(|op| op == call.operation))?;
        self.requests.remove(at).map(|(_, fault)| fault)
    }

    fn on_entry(&mut self, _: &Call<'_>, _: &EntryCall<'_>) -> Option<EntryFault> {
        self.entries.pop_front().flatten()
    }
}

impl Failure {
    /// The error answer.
    pub(super) fn error(self, call: &Call<'_>) -> ApiError {
        let stream = call.stream.unwrap_or("(none)");
        let rate = match call.shard {
            Some(shard) => {
                format!(
                    "Rate exceeded for shard {shard} in stream {stream} under account {ACCOUNT}."
                )
            }
            None => format!("Rate exceeded for stream {stream} under account {ACCOUNT}."),
        };
        match self {
            Failure::Internal => ApiError {
                status: 500,
                code: "InternalFailure",
                message: "Internal service failure.".into(),
            },
            Failure::Throughput => ApiError::client("ProvisionedThroughputExceededException", rate),
            Failure::LimitExceeded => ApiError::client("LimitExceededException", rate),
        }
    }
}

impl Refusal {
    /// The error answer.
    pub(super) fn error(self, call: &Call<'_>) -> ApiError {
        let stream = call.stream.unwrap_or("(none)");
        match self {
            Refusal::AccessDenied => ApiError::client(
                "AccessDeniedException",
                format!(
                    "User: arn:aws:sts::{ACCOUNT}:assumed-role/sim/sim is not authorized to perform: kinesis:{op} on resource: {arn} because no identity-based policy allows the kinesis:{op} action",
                    op = call.operation,
                    arn = stream_arn(stream)
                ),
            ),
            Refusal::NotFound => ApiError::stream_not_found(stream),
        }
    }
}

impl EntryFault {
    /// The entry's `ErrorCode` and `ErrorMessage`.
    pub(super) fn code_and_message(self, stream: &str, shard: &str) -> (&'static str, String) {
        match self {
            EntryFault::Throughput => (
                "ProvisionedThroughputExceededException",
                format!(
                    "Rate exceeded for shard {shard} in stream {stream} under account {ACCOUNT}."
                ),
            ),
            EntryFault::Internal => ("InternalFailure", "Internal service failure.".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(operation: &str) -> Call<'_> {
        static NULL: serde_json::Value = serde_json::Value::Null;
        Call {
            operation,
            stream: Some("s"),
            shard: None,
            entries: 0,
            request: &NULL,
        }
    }

    #[test]
    fn a_script_hands_out_faults_in_order_by_operation() {
        let mut script = ScriptedFaults::new()
            .request(Some("PutRecords"), Fault::LoseAnswer)
            .request(None, Fault::Fail(Failure::Internal));
        assert_eq!(
            script.on_request(&call("ListShards")),
            Some(Fault::Fail(Failure::Internal))
        );
        assert_eq!(script.on_request(&call("ListShards")), None);
        assert_eq!(
            script.on_request(&call("PutRecords")),
            Some(Fault::LoseAnswer)
        );
        assert!(script.is_spent());
    }
}

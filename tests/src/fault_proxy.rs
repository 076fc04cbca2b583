//! A fault-injecting proxy in front of kinesis-mock (`scripts/fault_proxy.py`):
//! fails a share of PutRecords entries and whole requests, denies a stream,
//! refuses over-long partition keys, and delays requests; expires the shard
//! iterator of chosen GetRecords requests; in front of DynamoDB it fails a
//! share of requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// What the proxy injects.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Share of PutRecords entries failed with ProvisionedThroughputExceededException.
    pub entry_failure_rate: f64,
    /// Share of PutRecords requests failed whole with a 500 InternalFailure.
    pub request_failure_rate: f64,
    /// Streams whose PutRecords get AccessDeniedException.
    pub deny_streams: Vec<String>,
    /// Milliseconds each PutRecords is held before it is forwarded.
    pub delay_ms: u64,
    /// A random 0..this many more milliseconds per PutRecords.
    pub jitter_ms: u64,
    /// Refuse a whole PutRecords (ValidationException) holding a partition key
    /// longer than this many characters, as Kinesis does (0: no check).
    pub max_partition_key: usize,
    /// Share of DynamoDB requests failed (throttling or internal errors), in
    /// front of moto, drawn at random.
    pub dynamodb_failure_rate: f64,
    /// Fail the first N requests of a DynamoDB operation (such as `UpdateItem`).
    pub dynamodb_fail_first: Vec<(String, u32)>,
    /// Fail the N-th request (1-based) of a DynamoDB operation: one request
    /// in a sequence, such as the second TransactWriteItems of a commit.
    pub dynamodb_fail_nth: Vec<(String, u32)>,
    /// Cancel the N-th TransactWriteItems with this code as its first item's
    /// cancellation reason (`None` for the others), as DynamoDB does when one
    /// item of a transaction is throttled.
    pub dynamodb_cancel_nth: Vec<(u32, String)>,
    /// Milliseconds each DynamoDB request is held before it is forwarded.
    pub dynamodb_delay_ms: u64,
    /// Expire the shard iterator of the N-th GetRecords (1-based, counting
    /// every GetRecords the proxy sees): that request and every later one with
    /// the same iterator get a 400 `ExpiredIteratorException`, unforwarded, as
    /// Kinesis answers an iterator older than 5 minutes.
    pub expire_get_records_nth: Vec<u32>,
    /// The seed of the random draws.
    pub seed: u64,
}

/// A running proxy; stopped when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    /// The proxy's endpoint URL.
    pub endpoint: String,
    child: Child,
}

impl FaultProxy {
    /// Starts a proxy to `target` (kinesis-mock's endpoint) on a free loopback port.
    pub fn start(target: &str, faults: &Faults) -> FaultProxy {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/fault_proxy.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg("--target")
            .arg(target)
            .arg("--entry-failure-rate")
            .arg(faults.entry_failure_rate.to_string())
            .arg("--request-failure-rate")
            .arg(faults.request_failure_rate.to_string());
        command
            .arg("--delay-ms")
            .arg(faults.delay_ms.to_string())
            .arg("--jitter-ms")
            .arg(faults.jitter_ms.to_string())
            .arg("--max-partition-key")
            .arg(faults.max_partition_key.to_string())
            .arg("--dynamodb-failure-rate")
            .arg(faults.dynamodb_failure_rate.to_string())
            .arg("--dynamodb-delay-ms")
            .arg(faults.dynamodb_delay_ms.to_string());
        command.arg("--seed").arg(faults.seed.to_string());
        for (operation, count) in &faults.dynamodb_fail_first {
            command
                .arg("--dynamodb-fail-first")
                .arg(format!("{operation}:{count}"));
        }
        for (operation, nth) in &faults.dynamodb_fail_nth {
            command
                .arg("--dynamodb-fail-nth")
                .arg(format!("{operation}:{nth}"));
        }
        for (nth, code) in &faults.dynamodb_cancel_nth {
            command
                .arg("--dynamodb-cancel-nth")
                .arg(format!("{nth}:{code}"));
        }
        for nth in &faults.expire_get_records_nth {
            command.arg("--expire-get-records-nth").arg(nth.to_string());
        }
        for stream in &faults.deny_streams {
            command.arg("--deny-stream").arg(stream);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs scripts/fault_proxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("proxy stdout"))
            .read_line(&mut line)
            .expect("the proxy prints its address");
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected proxy output {line:?}"))
            .to_owned();
        FaultProxy { endpoint, child }
    }

    /// A proxy to DynamoDB at `target` that fails `rate` of the requests,
    /// drawn from `seed`.
    pub fn dynamodb(target: &str, rate: f64, seed: u64) -> FaultProxy {
        let faults = Faults {
            dynamodb_failure_rate: rate,
            seed,
            ..Faults::default()
        };
        FaultProxy::start(target, &faults)
    }

    /// The proxy's counters (`put_records_requests`, `injected_entry_failures`, ...).
    pub fn stats(&self) -> serde_json::Value {
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect to the proxy");
        write!(
            stream,
            "GET /__stats HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("proxy stats {body:?}: {e}"))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

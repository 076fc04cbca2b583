//! Bad input, fed to each function through `shardline-cli invoke` (the function's
//! own Lambda runtime loop, as in Lambda): malformed base64, payloads that are
//! not JSON or not of the function's shape, truncated and corrupted KPL
//! aggregates, an empty batch, 10,000 records, a batch of almost 6 MB, a record
//! at the 1 MiB limit and one of 10 MiB, and events of other sources. Each gets
//! the outcome the README's "Bad input" table gives; every record of a handled
//! batch is accounted for (processed, or quarantined with its payload), and
//! nothing panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;
use shardline::decode::kpl::{UserRecord, aggregate};
use shardline::sample::{SampleRecord, event_bytes, sequence_number};
use shardline_tests::source::{binaries, clean_command};
use shardline_tests::unique_name;

/// Lambda's invocation payload limit, as `shardline-cli invoke` applies it.
const SIX_MB: usize = 6 * 1024 * 1024;
const MIB: usize = 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Function {
    Ledger,
    ActiveUsers,
    Fanout,
}

const ALL: [Function; 3] = [Function::Ledger, Function::ActiveUsers, Function::Fanout];

impl Function {
    fn binary(self) -> &'static PathBuf {
        let bins = binaries();
        match self {
            Function::Ledger => &bins.ledger,
            Function::ActiveUsers => &bins.active_users,
            Function::Fanout => &bins.fanout,
        }
    }

    /// Whether the function reads its payloads (the fan-out copies bytes).
    fn reads_payload(self) -> bool {
        self != Function::Fanout
    }

    /// The `i`th well-formed payload, padded with JSON whitespace to `size` bytes.
    fn good(self, i: usize, size: usize) -> Vec<u8> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let mut payload = match self {
            Function::Ledger => {
                format!(r#"{{"account":"acct-{i}","seq":1,"amount":100,"txn":"t-{i}"}}"#)
            }
            Function::ActiveUsers => format!(r#"{{"user":"u-{i}","ts":{now_ms}}}"#),
            Function::Fanout => format!(r#"{{"n":{i}}}"#),
        }
        .into_bytes();
        payload.resize(size.max(payload.len()), b' ');
        payload
    }

    fn env(self, command: &mut Command, dir: &Path) {
        command
            .env("SHARDLINE_STATE_DIR", dir)
            .env("SHARDLINE_METRICS", "off")
            .env("SHARDLINE_LOG", "warn");
        if self == Function::Fanout {
            command
                .env("FANOUT_SINK", "file")
                .env("FANOUT_DESTINATIONS", "dest");
        }
        if self == Function::ActiveUsers {
            // The cases are built first and run one after another: on a busy
            // machine the last ones run minutes after their records were
            // stamped, past the default window (records older are skipped).
            command.env("ACTIVE_WINDOW_SECONDS", "86400");
        }
    }

    /// Runs one of the function's own commands on the state in `dir`.
    fn command(self, dir: &Path, args: &[&str]) -> String {
        let mut command = clean_command(self.binary());
        self.env(&mut command, dir);
        let out = command.args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{self:?} {args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "{self:?} {args:?} panicked: {stderr}"
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// How many records reached the function's output.
    fn processed(self, dir: &Path) -> usize {
        match self {
            Function::Ledger => self.command(dir, &["txns"]).lines().count(),
            Function::ActiveUsers => {
                let active: BTreeMap<String, u64> =
                    serde_json::from_str(&self.command(dir, &["active"])).unwrap();
                active.len()
            }
            Function::Fanout => std::fs::read_to_string(dir.join("fanout/dest.jsonl"))
                .map_or(0, |text| text.lines().count()),
        }
    }

    /// The quarantine: reason and payload of each entry.
    fn quarantined(self, dir: &Path) -> Vec<(String, Vec<u8>)> {
        self.command(dir, &["quarantine"])
            .lines()
            .map(|line| {
                let entry: Value = serde_json::from_str(line).unwrap();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(entry["data"].as_str().unwrap())
                    .unwrap();
                (entry["reason"].as_str().unwrap().to_owned(), data)
            })
            .collect()
    }
}

/// What a case must come to.
#[derive(Debug)]
enum Expect {
    /// A response with no batch item failure; this many records processed and
    /// these (reason, payload) quarantined.
    Handled {
        processed: usize,
        quarantined: Vec<(&'static str, Vec<u8>)>,
    },
    /// An error response whose type or message holds this text; nothing written.
    Error(&'static str),
    /// Refused before the function runs (over 6 MB).
    Refused,
}

fn record(n: u64, payload: &[u8]) -> SampleRecord {
    SampleRecord::new(sequence_number(n), payload).key(&format!("key-{}", n % 7))
}

fn good_batch(f: Function, count: usize, size: usize) -> Vec<SampleRecord> {
    (0..count)
        .map(|i| record(i as u64 + 1, &f.good(i, size)))
        .collect()
}

/// A batch holding one bad payload between two good ones: the good ones are
/// processed, the bad one quarantined if the function reads payloads.
fn one_bad(f: Function, bad: Vec<u8>) -> (Vec<u8>, Expect) {
    let records = [
        record(1, &f.good(1, 0)),
        record(2, &bad),
        record(3, &f.good(3, 0)),
    ];
    let expect = if f.reads_payload() {
        Expect::Handled {
            processed: 2,
            quarantined: vec![("permanent", bad)],
        }
    } else {
        Expect::Handled {
            processed: 3,
            quarantined: vec![],
        }
    };
    (event_bytes(&records), expect)
}

/// A batch of `count` good records padded to `size` bytes, all processed.
fn all_good(f: Function, count: usize, size: usize) -> (Vec<u8>, Expect) {
    (
        event_bytes(&good_batch(f, count, size)),
        Expect::Handled {
            processed: count,
            quarantined: vec![],
        },
    )
}

/// The largest padded payload for which `count` records stay within 6 MB.
fn six_mb_payload(f: Function, count: usize) -> usize {
    let one = event_bytes(&good_batch(f, 1, 1000)).len();
    let per_record = one - event_bytes(&[]).len();
    // base64 makes each payload byte 4/3; keep a little room for the commas.
    let overhead = per_record - 1000 * 4 / 3;
    (SIX_MB / count - overhead - 8) * 3 / 4
}

fn kpl(f: Function) -> Vec<u8> {
    let users: Vec<UserRecord> = (10..13)
        .map(|i| UserRecord {
            partition_key: format!("k{i}"),
            explicit_hash_key: None,
            data: f.good(i, 0).into(),
        })
        .collect();
    aggregate(&users)
}

/// Every case, for `f`.
fn cases(f: Function) -> Vec<(&'static str, Vec<u8>, Expect)> {
    let mut cases = Vec::new();
    let raw = "this is not base64!";
    let records = [
        record(1, &f.good(1, 0)),
        SampleRecord::raw(sequence_number(2), raw),
        record(3, &f.good(3, 0)),
    ];
    cases.push((
        "malformed base64",
        event_bytes(&records),
        Expect::Handled {
            processed: 2,
            quarantined: vec![("undecodable", raw.as_bytes().to_vec())],
        },
    ));
    let (event, expect) = one_bad(f, b"\xff\xfe not json at all \x00".to_vec());
    cases.push(("not JSON", event, expect));
    let (event, expect) = one_bad(f, br#"{"hello":["world"],"seq":"one"}"#.to_vec());
    cases.push(("JSON of the wrong shape", event, expect));
    let aggregate = kpl(f);
    let (event, expect) = one_bad(f, aggregate[..aggregate.len() / 2].to_vec());
    cases.push(("truncated KPL aggregate", event, expect));
    let mut corrupted = aggregate.clone();
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0x5a;
    let (event, expect) = one_bad(f, corrupted);
    cases.push(("corrupted KPL aggregate", event, expect));
    cases.push((
        "empty batch",
        event_bytes(&[]),
        Expect::Handled {
            processed: 0,
            quarantined: vec![],
        },
    ));
    let (event, expect) = all_good(f, 10_000, 0);
    cases.push(("10,000 records", event, expect));
    let (event, expect) = all_good(f, 1_000, six_mb_payload(f, 1_000));
    assert!(
        event.len() <= SIX_MB && event.len() > SIX_MB - 64 * 1024,
        "{}",
        event.len()
    );
    cases.push(("a batch of almost 6 MB", event, expect));
    // Kinesis counts the partition key ("key-1") in the 1 MiB.
    let (event, expect) = all_good(f, 1, MIB - 5);
    cases.push(("a record at the 1 MiB limit", event, expect));
    cases.push((
        "a 10 MiB record",
        event_bytes(&good_batch(f, 1, 10 * MIB)),
        Expect::Refused,
    ));
    cases.push((
        "an SQS event",
        SQS_EVENT.as_bytes().to_vec(),
        Expect::Error("not a Kinesis event"),
    ));
    cases.push((
        "a DynamoDB Streams event",
        DYNAMODB_EVENT.as_bytes().to_vec(),
        Expect::Error("not a Kinesis event"),
    ));
    cases.push((
        "an event that is not JSON",
        b"<xml/>".to_vec(),
        Expect::Error("Shardline.NotAKinesisEvent"),
    ));
    let mut unplaceable: Value =
        serde_json::from_slice(&event_bytes(&good_batch(f, 2, 0))).unwrap();
    unplaceable["Records"][1]["kinesis"]
        .as_object_mut()
        .unwrap()
        .remove("sequenceNumber");
    cases.push((
        "a record without a sequence number",
        unplaceable.to_string().into_bytes(),
        Expect::Error("record 1 (eventID"),
    ));
    cases
}

/// Runs `event` through `shardline-cli invoke` into the function; its JSON line
/// and the function's stderr.
fn invoke(f: Function, dir: &Path, event: &[u8]) -> (Value, String) {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("event.json");
    std::fs::write(&file, event).unwrap();
    let mut command = clean_command(&binaries().shardline);
    f.env(&mut command, dir);
    let out = command
        .args(["invoke", "--function-timeout", "120", "--event"])
        .arg(&file)
        .arg("--")
        .arg(f.binary())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{stdout:?}: {e}"));
    (line, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn check(f: Function, name: &str, event: &[u8], expect: &Expect) {
    let dir = std::env::temp_dir().join(unique_name("bad-input"));
    let (line, stderr) = invoke(f, &dir, event);
    let context = format!(
        "{f:?}, {name}: {line}\n{}",
        stderr.chars().take(4000).collect::<String>()
    );
    assert!(!stderr.contains("panicked"), "a panic: {context}");
    match expect {
        Expect::Handled {
            processed,
            quarantined,
        } => {
            assert_eq!(line["outcome"], "response", "{context}");
            assert_eq!(
                line["response"],
                serde_json::json!({"batchItemFailures": []}),
                "{context}"
            );
            assert_eq!(f.processed(&dir), *processed, "processed: {context}");
            let got = f.quarantined(&dir);
            let want: Vec<(String, Vec<u8>)> = quarantined
                .iter()
                .map(|(r, d)| ((*r).to_owned(), d.clone()))
                .collect();
            assert!(
                got == want,
                "quarantined {:?}: {context}",
                got.iter().map(|(r, d)| (r, d.len())).collect::<Vec<_>>()
            );
        }
        Expect::Error(text) => {
            assert_eq!(line["outcome"], "function_error", "{context}");
            assert!(line["error"].to_string().contains(text), "{context}");
            assert_eq!(f.processed(&dir), 0, "{context}");
            assert!(f.quarantined(&dir).is_empty(), "{context}");
        }
        Expect::Refused => {
            assert_eq!(line["outcome"], "refused", "{context}");
            assert!(
                !dir.join("shardline.sqlite").exists() || f.processed(&dir) == 0,
                "{context}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn run_all(f: Function) {
    for (name, event, expect) in cases(f) {
        check(f, name, &event, &expect);
    }
}

#[test]
fn the_ledger_accounts_for_every_bad_input() {
    run_all(Function::Ledger);
}

#[test]
fn active_users_accounts_for_every_bad_input() {
    run_all(Function::ActiveUsers);
}

#[test]
fn the_fanout_accounts_for_every_bad_input() {
    run_all(Function::Fanout);
}

/// A 10 MiB record never reaches a function in Lambda (the event is over 6 MB).
/// Given to a function directly (its local `invoke` command has no payload
/// limit), it is handled by the function's rules: the ledger and active-users
/// apply it, the fan-out quarantines it whole (over the destinations' 1 MiB).
#[test]
fn a_ten_mib_record_given_directly_is_applied_or_quarantined_whole() {
    for f in ALL {
        let dir = std::env::temp_dir().join(unique_name("bad-input-10mib"));
        std::fs::create_dir_all(&dir).unwrap();
        let payload = f.good(1, 10 * MIB);
        std::fs::write(dir.join("event.json"), event_bytes(&[record(1, &payload)])).unwrap();
        let stdout = f.command(&dir, &["invoke", dir.join("event.json").to_str().unwrap()]);
        assert_eq!(stdout.trim(), r#"{"batchItemFailures":[]}"#, "{f:?}");
        if f.reads_payload() {
            assert_eq!(f.processed(&dir), 1, "{f:?}");
        } else {
            assert_eq!(f.processed(&dir), 0);
            assert!(
                f.quarantined(&dir) == vec![("permanent".to_owned(), payload)],
                "{f:?}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

const SQS_EVENT: &str = r#"{"Records":[{"messageId":"059f36b4-87a3-44ab-83d2-661975830a7d",
  "receiptHandle":"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a","body":"Test message.",
  "attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1545082649183"},
  "messageAttributes":{},"md5OfBody":"e4e68fb7bd0e697a0ae8f1bb342846b3",
  "eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-2:123456789012:my-queue","awsRegion":"us-east-2"}]}"#;

const DYNAMODB_EVENT: &str = r#"{"Records":[{"eventID":"c4ca4238a0b923820dcc509a6f75849b","eventName":"INSERT",
  "eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1",
  "dynamodb":{"Keys":{"Id":{"N":"101"}},"NewImage":{"Message":{"S":"New item!"},"Id":{"N":"101"}},
  "ApproximateCreationDateTime":1428537600,"SequenceNumber":"4421584500000000017450439091",
  "SizeBytes":26,"StreamViewType":"NEW_AND_OLD_IMAGES"},
  "eventSourceARN":"arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899"}]}"#;

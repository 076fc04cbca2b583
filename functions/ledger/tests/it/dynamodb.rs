//! The `ledger` binary on DynamoDB (moto): `setup`, balances in `LEDGER_TABLE`,
//! a replay after a crash applying nothing twice, and a quarantined record
//! larger than a DynamoDB item printed whole by `quarantine`.

use std::process::{Command, Output};

use base64::Engine as _;
use shardline_tests::lambda::{EventRecord, event, stream_arn};
use shardline_tests::{Emulators, unique_name};

struct Aws {
    endpoint: String,
    state_table: String,
    ledger_table: String,
    dir: std::path::PathBuf,
}

impl Aws {
    fn new() -> Aws {
        let emulators = Emulators::from_env();
        let dir = std::env::temp_dir().join(unique_name("ledger-aws"));
        std::fs::create_dir_all(&dir).unwrap();
        Aws {
            endpoint: emulators.dynamodb_endpoint,
            state_table: unique_name("state"),
            ledger_table: unique_name("ledger"),
            dir,
        }
    }

    fn ledger(&self, args: &[&str], consumer: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
        command
            .args(args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        for (name, _) in std::env::vars() {
            if name.starts_with("SHARDLINE_") || name.starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        command
            .env("SHARDLINE_STATE_DIR", &self.dir)
            .env("SHARDLINE_STATE_TABLE", &self.state_table)
            .env("SHARDLINE_CONSUMER", consumer)
            // The sample stream does not exist in an emulator: the guard is tested elsewhere.
            .env("SHARDLINE_PARENT_GUARD", "off")
            .env("LEDGER_TABLE", &self.ledger_table)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        command.output().expect("the ledger binary runs")
    }

    fn ok(&self, args: &[&str], consumer: &str) -> (String, String) {
        let out = self.ledger(args, consumer);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "ledger {args:?} failed: {stderr}");
        (stdout, stderr)
    }
}

#[test]
fn balances_live_in_dynamodb_and_a_replay_after_a_crash_applies_nothing_twice() {
    let aws = Aws::new();
    let (_, stderr) = aws.ok(&["setup"], "ledger");
    assert!(
        stderr.contains(&aws.state_table) && stderr.contains(&aws.ledger_table),
        "{stderr}"
    );

    let (stdout, stderr) = aws.ok(&["invoke", "events/ledger/batch.json"], "ledger");
    assert_eq!(stdout, "{\"batchItemFailures\":[]}\n");
    assert!(stderr.contains("6 processed"), "{stderr}");
    assert_eq!(
        aws.ok(&["balances"], "ledger").0,
        "{\"A1\":750,\"B2\":400}\n"
    );

    // A crash before the checkpoint was written: a consumer with no checkpoint
    // hands every record to the ledger again. Each txn is one conditional
    // transaction on the account's last seq and the txn id: nothing applies twice.
    let (_, stderr) = aws.ok(
        &["invoke", "events/ledger/batch.json"],
        "ledger-after-crash",
    );
    assert!(stderr.contains("6 processed"), "{stderr}");
    assert_eq!(
        aws.ok(&["balances"], "ledger").0,
        "{\"A1\":750,\"B2\":400}\n"
    );

    // The normal retry skips by checkpoint.
    let (_, stderr) = aws.ok(&["invoke", "events/ledger/batch.json"], "ledger");
    assert!(stderr.contains("6 skipped (6 checkpointed"), "{stderr}");
}

#[test]
fn a_quarantined_record_over_400_kb_is_printed_whole() {
    let aws = Aws::new();
    aws.ok(&["setup"], "ledger");
    let payload: Vec<u8> = (0..600 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let records = vec![EventRecord {
        sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
        partition_key: "A1".into(),
        data: payload.clone(),
    }];
    let file = aws.dir.join("big.json");
    std::fs::write(
        &file,
        event(&stream_arn("ledger"), "shardId-000000000000", &records),
    )
    .unwrap();
    let (_, stderr) = aws.ok(&["invoke", file.to_str().unwrap()], "ledger");
    assert!(stderr.contains("1 quarantined (1 permanent"), "{stderr}");

    let (stdout, _) = aws.ok(&["quarantine"], "ledger");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["sequence_number"], records[0].sequence_number);
    assert_eq!(lines[0]["reason"], "permanent");
    let data = base64::engine::general_purpose::STANDARD
        .decode(lines[0]["data"].as_str().unwrap())
        .unwrap();
    assert!(
        data == payload,
        "the payload comes back whole ({} bytes)",
        data.len()
    );
}

#[test]
fn ids_too_long_for_a_dynamodb_key_are_quarantined_at_once_and_the_rest_applied() {
    let aws = Aws::new();
    aws.ok(&["setup"], "ledger");
    let long = "x".repeat(3000);
    let payloads = [
        format!(r#"{{"account":"A1","seq":1,"amount":100,"txn":"{long}"}}"#),
        format!(r#"{{"account":"{long}","seq":1,"amount":100,"txn":"t-2"}}"#),
        r#"{"account":"A1","seq":1,"amount":100,"txn":"t-3"}"#.to_owned(),
    ];
    let records: Vec<EventRecord> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| EventRecord {
            sequence_number: format!("4959033827149025660855969253836157109592157598913658889{i}"),
            partition_key: "A1".into(),
            data: p.as_bytes().to_vec(),
        })
        .collect();
    let file = aws.dir.join("long-ids.json");
    std::fs::write(
        &file,
        event(&stream_arn("ledger"), "shardId-000000000000", &records),
    )
    .unwrap();
    let (stdout, stderr) = aws.ok(&["invoke", file.to_str().unwrap()], "ledger");
    assert_eq!(stdout, "{\"batchItemFailures\":[]}\n", "{stderr}");
    assert!(
        stderr.contains("1 processed") && stderr.contains("2 quarantined (2 permanent"),
        "{stderr}"
    );
    assert_eq!(aws.ok(&["balances"], "ledger").0, "{\"A1\":100}\n");
    let (stdout, _) = aws.ok(&["quarantine"], "ledger");
    for line in stdout.lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            line["detail"]
                .as_str()
                .unwrap()
                .contains("at most 1024 bytes"),
            "{line}"
        );
    }
}

//! Running the `key-counts` binary on a state folder of its own, with the
//! embedded store or against DynamoDB (moto).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use shardline_tests::{Emulators, unique_name};

/// The workspace root: the sample events are addressed from there.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The path of sample `name`, from the workspace root.
pub(crate) fn sample(name: &str) -> String {
    format!("events/key-counts/{name}.json")
}

/// Sample `name` as JSON.
pub(crate) fn sample_json(name: &str) -> Value {
    let text = std::fs::read_to_string(workspace().join(sample(name))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The `counts` output as (shard, key, records, bytes), in its order.
pub(crate) fn rows(stdout: &str) -> Vec<(String, String, u64, u64)> {
    stdout
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            assert_eq!(row["window_start"], "2025-11-23T19:00:00Z", "{line}");
            assert_eq!(row["window_end"], "2025-11-23T19:01:00Z", "{line}");
            (
                row["shard_id"].as_str().unwrap().to_owned(),
                row["partition_key"].as_str().unwrap().to_owned(),
                row["records"].as_u64().unwrap(),
                row["bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A state folder and the environment of one test's runs.
pub(crate) struct Run {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Run {
    /// The embedded store in a fresh folder.
    pub(crate) fn embedded(tag: &str) -> Run {
        let dir = std::env::temp_dir().join(unique_name(&format!("key-counts-{tag}")));
        std::fs::create_dir_all(&dir).unwrap();
        Run {
            dir,
            env: Vec::new(),
        }
    }

    /// Fresh tables on the DynamoDB emulator (state and counts).
    pub(crate) fn dynamodb(tag: &str) -> Run {
        let endpoint = Emulators::from_env().dynamodb_endpoint;
        let mut run = Run::embedded(tag);
        run.env = [
            ("SHARDLINE_STATE_TABLE", unique_name("state")),
            ("KEY_COUNTS_TABLE", unique_name("key-counts")),
            // The sample stream does not exist in an emulator: the guard is tested elsewhere.
            ("SHARDLINE_PARENT_GUARD", "off".to_owned()),
            ("AWS_ENDPOINT_URL_DYNAMODB", endpoint),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        run
    }

    /// The value of `name` in this run's environment.
    pub(crate) fn var(&self, name: &str) -> &str {
        let found = self.env.iter().find(|(k, _)| k == name);
        found.map_or("", |(_, v)| v.as_str())
    }

    /// Writes `event` to `name` in the state folder; returns its path.
    pub(crate) fn write(&self, name: &str, event: &Value) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, event.to_string()).unwrap();
        path.display().to_string()
    }

    /// Runs the binary with `args`.
    pub(crate) fn output(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_key-counts"));
        command.args(args).current_dir(workspace());
        // Nothing from the caller's environment may steer the run.
        for (name, _) in std::env::vars() {
            if name.starts_with("SHARDLINE_")
                || name.starts_with("AWS_")
                || name == "KEY_COUNTS_TABLE"
            {
                command.env_remove(name);
            }
        }
        command.env("SHARDLINE_STATE_DIR", &self.dir);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.output().expect("the key-counts binary runs")
    }

    /// Runs the binary and expects success: (stdout, stderr).
    pub(crate) fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.output(args);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "key-counts {args:?} failed: {stderr}");
        (stdout, stderr)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

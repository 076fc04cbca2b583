//! Running `shardline-cli source` and the functions' binaries from tests.
//!
//! The binaries of other packages are not in a test's environment, so
//! [`binaries`] builds them once (`cargo build --bins`, a no-op when they are
//! up to date) and finds them beside the test executable.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace's binaries.
#[derive(Debug)]
pub struct Binaries {
    /// `shardline` (the event source).
    pub shardline: PathBuf,
    /// The ledger function.
    pub ledger: PathBuf,
    /// The fan-out function.
    pub fanout: PathBuf,
    /// The active-users function.
    pub active_users: PathBuf,
    /// The key-counts function (tumbling windows).
    pub key_counts: PathBuf,
    /// The probe function (`src/bin/probe.rs`): does what each payload asks.
    pub probe: PathBuf,
    /// A Shardline function whose invocations must overlap
    /// (`src/bin/rendezvous.rs`).
    pub rendezvous: PathBuf,
}

/// The workspace's binaries, built on first use.
///
/// # Panics
/// When `cargo build` fails.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        // The whole workspace with its test targets: the features of every
        // dependency unify as in `cargo test --workspace` (the simulator's
        // tokio `test-util`, the dev-dependencies), so nothing `cargo test`
        // built is built again; only the binaries are linked.
        let status = cargo_build()
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build of the binaries failed");
        // target/debug/deps/<test> -> target/debug
        let exe = std::env::current_exe().expect("the test's path");
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the target folder")
            .to_path_buf();
        Binaries {
            shardline: dir.join("shardline-cli"),
            ledger: dir.join("ledger"),
            fanout: dir.join("fanout"),
            active_users: dir.join("active-users"),
            key_counts: dir.join("key-counts"),
            probe: dir.join("probe"),
            rendezvous: dir.join("rendezvous"),
        }
    })
}

/// The variables cargo sets for a test process (or a crate's build) that a
/// build script may watch: ring's reruns when `CARGO_MANIFEST_DIR` or
/// `CARGO_PKG_*` differ from the last build's, and with ring every crate on
/// it (rustls, the SDK, the framework, every binary) is built again.
fn set_by_cargo_for_a_crate(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
        || [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_MANIFEST_LINKS",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ]
        .contains(&name)
}

/// `cargo build` of the workspace's binaries and test targets, in the
/// environment `scripts/test.sh` builds in: without the variables cargo set
/// for this test process, which would make it build again what the test
/// command's build left up to date.
fn cargo_build() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--workspace", "--bins", "--tests", "-q"]);
    for (name, _) in std::env::vars() {
        if set_by_cargo_for_a_crate(&name) {
            command.env_remove(name);
        }
    }
    command
}

/// A command with only what a test gives it: the `SHARDLINE_*` and `AWS_*`
/// variables of the test's own environment are removed.
pub fn clean_command(program: &PathBuf) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars() {
        if name.starts_with("SHARDLINE_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

/// `shardline-cli source --stream STREAM --until-idle IDLE --seed SEED`, ready for
/// more options, then `--` and the function.
pub fn source_command(stream: &str, until_idle: u32, seed: u64) -> Command {
    let mut command = clean_command(&binaries().shardline);
    command.args(["source", "--stream", stream]).args([
        "--until-idle",
        &until_idle.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    command
}

/// A running `shardline-cli source`.
#[derive(Debug)]
pub struct Running {
    child: Child,
    started: Instant,
    /// Its stderr (progress, and the function's logs), shown when it fails.
    log: PathBuf,
}

impl Running {
    /// Starts `command` (a prepared `shardline-cli source ...`): stdout captured,
    /// stderr kept in a file.
    ///
    /// # Panics
    /// When the process cannot start.
    pub fn start(mut command: Command) -> Running {
        let log = std::env::temp_dir().join(crate::unique_name("source-log"));
        let file = std::fs::File::create(&log).expect("the source's log file");
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("shardline-cli source starts");
        Running {
            child,
            started: Instant::now(),
            log,
        }
    }

    /// The last lines of the source's stderr.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits for the source to exit and returns its JSON summary line.
    ///
    /// # Panics
    /// When it runs past `limit` (it is killed), exits with an error, or
    /// prints no summary; the panic shows the end of its stderr.
    pub fn summary(mut self, limit: Duration) -> serde_json::Value {
        loop {
            if let Some(status) = self.child.try_wait().expect("the source's status") {
                assert!(
                    status.success(),
                    "shardline-cli source failed: {status}\n{}",
                    self.log_tail()
                );
                break;
            }
            if self.started.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "shardline-cli source ran past {limit:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut stdout = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stdout).expect("the source's output");
        }
        let line = stdout.lines().last().unwrap_or_default();
        let summary = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("summary {line:?}: {e}\n{}", self.log_tail()));
        let _ = std::fs::remove_file(&self.log);
        summary
    }
}

/// Prints a fault test's summary line, and appends it to
/// `target/fault-summaries.txt`, which `scripts/test.sh` shows at the end
/// (the test harness keeps a passing test's output to itself).
pub fn report(line: &str) {
    println!("{line}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fault-summaries.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The variable `name` parsed, if it is set and parses.
fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The seed of a fault test: `SHARDLINE_FAULT_SEED`, or `default`.
pub fn seed(default: u64) -> u64 {
    var("SHARDLINE_FAULT_SEED").unwrap_or(default)
}

/// A fault test's size: the variable `name` when set (a soak's size), else
/// `in_ci` (the test command's); at least `least`.
pub fn size(name: &str, in_ci: usize, least: usize) -> usize {
    var(name).unwrap_or(in_ci).max(least)
}

/// How long a soak runs: `SHARDLINE_SOAK_MINUTES` (unset: one run, as in CI).
pub fn soak() -> Option<Duration> {
    var::<f64>("SHARDLINE_SOAK_MINUTES").map(|m| Duration::from_secs_f64(m * 60.0))
}

/// Runs `run` once with the seed `SHARDLINE_FAULT_SEED` (or `default`); with
/// `SHARDLINE_SOAK_MINUTES` set, again and again with new seeds for that long.
pub async fn runs<F, Fut>(default: u64, mut run: F)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let first = seed(default);
    let Some(soak) = soak() else {
        return run(first).await;
    };
    let started = Instant::now();
    let mut seed = first;
    while started.elapsed() < soak {
        run(seed).await;
        seed += 100;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build a test asks for sees none of the variables cargo gave the
    /// test (here at least `CARGO_MANIFEST_DIR` and `CARGO_PKG_NAME`): with
    /// them, ring's build script ran again and the SDK and every binary were
    /// built a second time during the test command's fault tests.
    #[test]
    fn the_binaries_build_without_the_tests_cargo_variables() {
        let command = cargo_build();
        let removed: Vec<String> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
        ] {
            assert!(
                std::env::var_os(name).is_some(),
                "cargo sets {name} for a test"
            );
            assert!(
                removed.iter().any(|r| r == name),
                "{name} reaches the build"
            );
        }
        assert!(!removed.iter().any(|r| r == "CARGO_HOME" || r == "PATH"));
    }
}

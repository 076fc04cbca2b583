//! `shardline-cli invoke`: event files through a function's own Lambda runtime
//! loop, one process kept warm from one event to the next, as one sandbox in
//! Lambda serves one invocation after another; with
//! `--per-execution-environment-max-concurrency N`, in turns of N events at
//! once to that one process, as on Lambda Managed Instances.
//!
//! Each invocation prints one JSON line: the event file, the outcome
//! (`response`, `function_error`, `crashed`, `timed_out`, or `refused` for an
//! event Lambda would not accept), the response or error body, and the time it
//! took (`ms`); on a process's first invocation its init time (`init_ms`:
//! process start to its first `invocation/next`), and after each its peak
//! resident memory (`peak_rss_kib`, on Linux). The exit status is 0 when every invocation got a response.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::args::InvokeArgs;
use crate::sandbox::{FunctionSpec, Outcome, Pool};
use shardline_esm::MAX_PAYLOAD;

/// Runs every event of `args` and prints one line each.
pub(crate) async fn run(args: InvokeArgs) -> ExitCode {
    let at_once = args.per_execution_environment_max_concurrency;
    let pool = Pool::new(
        FunctionSpec::new(args.command.clone(), args.name()),
        at_once,
    );
    let timeout = Duration::from_secs(args.function_timeout);
    let mut all_answered = true;
    let turn = usize::try_from(at_once).unwrap_or(1).max(1);
    for paths in args.events.chunks(turn) {
        let invocations: Vec<_> = paths
            .iter()
            .map(|path| {
                let (pool, path) = (pool.clone(), path.clone());
                tokio::spawn(async move {
                    match std::fs::read(&path) {
                        Ok(event) => invoke(&pool, Bytes::from(event), timeout).await,
                        Err(e) => json!({"outcome": "unreadable", "error": e.to_string()}),
                    }
                })
            })
            .collect();
        for (invocation, path) in invocations.into_iter().zip(paths) {
            let line = invocation.await.unwrap_or_else(
                |e| json!({"outcome": "crashed", "error": format!("the invocation's task failed: {e}")}),
            );
            all_answered &= line["outcome"] == "response";
            println!("{}", with_event(line, path));
        }
    }
    if all_answered {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn with_event(mut line: Value, path: &Path) -> Value {
    line["event"] = path.display().to_string().into();
    line
}

/// One invocation, as a JSON line.
async fn invoke(pool: &Arc<Pool>, event: Bytes, timeout: Duration) -> Value {
    if event.len() > MAX_PAYLOAD {
        // Lambda's Invoke refuses it (RequestEntityTooLargeException): the
        // function never sees it.
        return json!({
            "outcome": "refused",
            "error": format!("the event is {} bytes, over Lambda's 6 MB invocation payload", event.len()),
        });
    }
    let lease = match pool.take().await {
        Ok(lease) => lease,
        Err(e) => {
            return json!({"outcome": "crashed", "error": format!("cannot start the function: {e}")});
        }
    };
    let started = Instant::now();
    let (nth, outcome, sandbox) = lease.invoke(event, timeout, None, &|_| {}).await;
    let ms = (started.elapsed().as_secs_f64() * 1e5).round() / 1e2;
    let mut line = outcome_line(outcome, ms);
    if sandbox.is_alive() {
        // A process's first invocation is its cold start: how long its init
        // took (start to first `invocation/next`); and its memory so far.
        if nth == 1
            && let Some(init) = sandbox.init_time()
        {
            line["init_ms"] = (init.as_secs_f64() * 1e3).into();
        }
        if let Some(peak) = sandbox.peak_rss_kib() {
            line["peak_rss_kib"] = peak.into();
        }
    }
    line
}

fn outcome_line(outcome: Outcome, ms: f64) -> Value {
    let body = |bytes: &[u8]| {
        serde_json::from_slice::<Value>(bytes)
            .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned().into())
    };
    match outcome {
        Outcome::Response(response) => {
            json!({"outcome": "response", "response": body(&response), "ms": ms})
        }
        Outcome::FunctionError(error) => {
            json!({"outcome": "function_error", "error": body(error.as_bytes()), "ms": ms})
        }
        Outcome::Crashed(why) => json!({"outcome": "crashed", "error": why, "ms": ms}),
        Outcome::TimedOut => json!({"outcome": "timed_out", "ms": ms}),
    }
}

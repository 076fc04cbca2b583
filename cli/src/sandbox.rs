//! Sandboxes: one function process each, with its own Runtime API. A sandbox
//! serves one invocation at a time, as in Lambda; a crash or a timeout is a real
//! process death, and the next invocation starts a fresh process (a cold start).

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::runtime::{Answer, Invocation, RuntimeApi};

/// How to start the function.
#[derive(Debug, Clone)]
pub(crate) struct FunctionSpec {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// The invoked function ARN the runtime reports.
    pub arn: String,
}

impl FunctionSpec {
    /// The function `name`, run by `command`.
    pub(crate) fn new(command: Vec<String>, name: String) -> Self {
        let arn = format!("arn:aws:lambda:us-east-1:000000000000:function:{name}");
        FunctionSpec { command, name, arn }
    }
}

/// What an invocation came to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The function answered; the body.
    Response(Bytes),
    /// The function reported an error (`invocation/{id}/error`).
    FunctionError(String),
    /// The process died before answering (a crash, or killed by chaos).
    Crashed(String),
    /// No answer within the timeout: the process was killed.
    TimedOut,
}

/// A running function process.
pub(crate) struct Sandbox {
    api: RuntimeApi,
    child: Child,
    started: Instant,
    invocations: u64,
}

static REQUESTS: AtomicU64 = AtomicU64::new(1);

impl Sandbox {
    /// Starts the function with `AWS_LAMBDA_RUNTIME_API` pointing at a new API;
    /// the rest of the environment is passed through.
    ///
    /// # Errors
    /// The I/O error when the API or the process cannot start.
    pub(crate) async fn start(spec: &FunctionSpec) -> std::io::Result<Sandbox> {
        let api = RuntimeApi::start(spec.arn.clone()).await?;
        let (program, args) = spec
            .command
            .split_first()
            .ok_or_else(|| std::io::Error::other("no function command"))?;
        let started = Instant::now();
        let child = Command::new(program)
            .args(args)
            .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "shardline-source")
            .stdin(Stdio::null())
            // The function's stdout (metrics lines) joins its logs on stderr:
            // stdout is the summary's.
            .stdout(Stdio::from(std::io::stderr()))
            .kill_on_drop(true)
            .spawn()?;
        Ok(Sandbox {
            api,
            child,
            started,
            invocations: 0,
        })
    }

    /// From the process's start to its first `invocation/next`: its init, once
    /// it has asked for an event.
    pub(crate) fn init_time(&self) -> Option<Duration> {
        Some(self.api.first_next()? - self.started)
    }

    /// Invocations this process has served (answered or not).
    pub(crate) fn invocations(&self) -> u64 {
        self.invocations
    }

    /// The process's peak resident memory so far, in KiB (`VmHWM`; Linux only).
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Invokes the function with `event`. A process that answers is handed
    /// back for the next invocation; one that died, timed out or was killed
    /// (`kill_after`: chaos) is not.
    pub(crate) async fn invoke(
        mut self,
        event: Bytes,
        timeout: Duration,
        kill_after: Option<Duration>,
        phase: &(dyn Fn(&'static str) + Sync),
    ) -> (Option<Sandbox>, Outcome) {
        let (reply, answer) = oneshot::channel();
        let deadline = SystemTime::now() + timeout;
        let invocation = Invocation {
            request_id: format!("source-{:012}", REQUESTS.fetch_add(1, Ordering::Relaxed)),
            event,
            deadline_ms: deadline
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            reply,
        };
        let chaos = async {
            match kill_after {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
        };
        // The timeout covers handing the event over too, as Lambda's covers
        // the whole invocation: nothing here can wait longer than it.
        self.invocations += 1;
        let Sandbox { api, child, .. } = &mut self;
        let delivered = async {
            phase("handing the event to the runtime API");
            api.send(invocation).await.map_err(|_| ())?;
            phase("awaiting the answer");
            answer.await.map_err(|_| ())
        };
        let outcome = tokio::select! {
            answer = delivered => match answer {
                Ok(Answer::Response(body)) => Ok(Outcome::Response(body)),
                Ok(Answer::Error(body)) => Ok(Outcome::FunctionError(String::from_utf8_lossy(&body).into_owned())),
                Err(()) => Err(Outcome::Crashed("the runtime API stopped or dropped the invocation".into())),
            },
            status = child.wait() => {
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                Err(Outcome::Crashed(format!("the function process exited: {status}")))
            }
            () = tokio::time::sleep(timeout) => {
                phase("killing the timed-out process");
                let _ = child.kill().await;
                Err(Outcome::TimedOut)
            }
            () = chaos => {
                phase("killing the process (--kill-rate)");
                let _ = child.kill().await;
                Err(Outcome::Crashed("killed by --kill-rate".into()))
            }
        };
        match outcome {
            Ok(answered) => (Some(self), answered),
            Err(failed) => (None, failed),
        }
    }
}

/// Idle sandboxes, reused; a new one is started (a cold start) when none is idle.
pub(crate) struct Pool {
    spec: FunctionSpec,
    idle: Mutex<Vec<Sandbox>>,
    cold_starts: AtomicU64,
}

impl Pool {
    /// An empty pool for `spec`.
    pub(crate) fn new(spec: FunctionSpec) -> Arc<Self> {
        Arc::new(Pool {
            spec,
            idle: Mutex::new(Vec::new()),
            cold_starts: AtomicU64::new(0),
        })
    }

    /// An idle sandbox, or a new one.
    ///
    /// # Errors
    /// The I/O error when a new process cannot start.
    pub(crate) async fn take(&self) -> std::io::Result<Sandbox> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(sandbox) => Ok(sandbox),
            None => {
                self.cold_starts.fetch_add(1, Ordering::Relaxed);
                Sandbox::start(&self.spec).await
            }
        }
    }

    /// Gives a live sandbox back.
    pub(crate) fn give_back(&self, sandbox: Sandbox) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sandbox);
    }

    /// Processes started so far.
    pub(crate) fn cold_starts(&self) -> u64 {
        self.cold_starts.load(Ordering::Relaxed)
    }
}

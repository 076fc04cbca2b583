//! Sandboxes: one function process each, with its own Runtime API. On classic
//! Lambda a sandbox serves one invocation at a time; on Lambda Managed
//! Instances up to its `PerExecutionEnvironmentMaxConcurrency` at once
//! (lambda/latest/dg/lambda-managed-instances-rust.html). A crash is a real
//! process death that fails every invocation the process had in flight, and
//! the next invocation starts a fresh process (a cold start). A timeout is one
//! too on classic Lambda; on Lambda Managed Instances it fails only its own
//! invocation, whose code runs on, holding its slot until it answers
//! (lambda/latest/dg/lambda-managed-instances-execution-environment.html,
//! "Error handling and recovery").

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

use shardline_esm::Environments;

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
    /// No answer within the timeout: the process was killed (classic
    /// Lambda), or the invocation left to run on (Lambda Managed Instances).
    TimedOut,
}

/// A running function process, shared by the invocations it serves.
pub(crate) struct Sandbox {
    api: RuntimeApi,
    pid: Option<u32>,
    /// Invocations it serves at once; above 1, Lambda Managed Instances.
    max_concurrency: u32,
    started: Instant,
    invocations: AtomicU64,
    /// Asks the process's keeper to kill it, with the reason.
    kill: mpsc::UnboundedSender<String>,
    /// Why the process is gone; `None` while it runs.
    death: watch::Receiver<Option<String>>,
}

static REQUESTS: AtomicU64 = AtomicU64::new(1);

impl Sandbox {
    /// Starts the function with `AWS_LAMBDA_RUNTIME_API` pointing at a new API
    /// and `AWS_LAMBDA_MAX_CONCURRENCY` at `max_concurrency` when above 1 (as
    /// on Lambda Managed Instances); the rest of the environment is passed
    /// through.
    ///
    /// # Errors
    /// The I/O error when the API or the process cannot start.
    pub(crate) async fn start(
        spec: &FunctionSpec,
        max_concurrency: u32,
    ) -> std::io::Result<Sandbox> {
        let api = RuntimeApi::start(spec.arn.clone()).await?;
        let (program, args) = spec
            .command
            .split_first()
            .ok_or_else(|| std::io::Error::other("no function command"))?;
        let started = Instant::now();
        let mut command = Command::new(program);
        command
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
            .kill_on_drop(true);
        if max_concurrency > 1 {
            command.env("AWS_LAMBDA_MAX_CONCURRENCY", max_concurrency.to_string());
        } else {
            command.env_remove("AWS_LAMBDA_MAX_CONCURRENCY");
        }
        let child = command.spawn()?;
        let pid = child.id();
        let (kill, killed) = mpsc::unbounded_channel();
        let (died, death) = watch::channel(None);
        tokio::spawn(keep(child, killed, died));
        Ok(Sandbox {
            api,
            pid,
            max_concurrency,
            started,
            invocations: AtomicU64::new(0),
            kill,
            death,
        })
    }

    /// From the process's start to its first `invocation/next`: its init, once
    /// it has asked for an event.
    pub(crate) fn init_time(&self) -> Option<Duration> {
        Some(self.api.first_next()? - self.started)
    }

    /// The process's peak resident memory so far, in KiB (`VmHWM`; Linux only).
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Whether the process still runs.
    pub(crate) fn is_alive(&self) -> bool {
        self.death.borrow().is_none()
    }

    /// Waits until the process is gone: why.
    async fn gone(&self) -> String {
        let mut death = self.death.clone();
        let why = death.wait_for(Option::is_some).await;
        why.ok().and_then(|why| why.clone()).unwrap_or_default()
    }

    /// Kills the process (if it still runs) and waits until it is gone; every
    /// invocation it had in flight then fails.
    async fn kill(&self, reason: &str) {
        let _ = self.kill.send(reason.to_owned());
        self.gone().await;
    }

    /// Invokes the function with `event`: the invocation's number on this
    /// process (1 for its cold start), its outcome, and, for a timed-out
    /// invocation left running, where its late answer will come. A chaos kill
    /// (`kill_after`), and a timeout on classic Lambda, kill the process, and
    /// with it every invocation it has in flight, as on Lambda.
    async fn invoke(
        &self,
        event: Bytes,
        timeout: Duration,
        kill_after: Option<Duration>,
        phase: &(dyn Fn(&'static str) + Sync),
    ) -> (u64, Outcome, Option<oneshot::Receiver<Answer>>) {
        let (reply, mut answer) = oneshot::channel();
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
        let nth = self.invocations.fetch_add(1, Ordering::Relaxed) + 1;
        let delivered = async {
            phase("handing the event to the runtime API");
            self.api.send(invocation).await.map_err(|_| ())?;
            phase("awaiting the answer");
            (&mut answer).await.map_err(|_| ())
        };
        let outcome = tokio::select! {
            answer = delivered => match answer {
                Ok(Answer::Response(body)) => Outcome::Response(body),
                Ok(Answer::Error(body)) => Outcome::FunctionError(String::from_utf8_lossy(&body).into_owned()),
                Err(()) => Outcome::Crashed("the runtime API stopped or dropped the invocation".into()),
            },
            why = self.gone() => Outcome::Crashed(why),
            () = tokio::time::sleep(timeout) => {
                if self.max_concurrency > 1 {
                    phase("leaving the timed-out invocation to run on");
                    return (nth, Outcome::TimedOut, Some(answer));
                }
                phase("killing the timed-out process");
                self.kill("killed: its invocation timed out").await;
                Outcome::TimedOut
            }
            () = chaos => {
                phase("killing the process (--kill-rate)");
                self.kill("killed by --kill-rate").await;
                Outcome::Crashed("killed by --kill-rate".into())
            }
        };
        (nth, outcome, None)
    }
}

/// Keeps the process: kills it when asked (or when its sandbox is dropped),
/// and says why it is gone once it is.
async fn keep(
    mut child: Child,
    mut killed: mpsc::UnboundedReceiver<String>,
    died: watch::Sender<Option<String>>,
) {
    let why = tokio::select! {
        status = child.wait() => {
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            format!("the function process exited: {status}")
        }
        reason = killed.recv() => {
            let _ = child.kill().await;
            reason.unwrap_or_else(|| "the sandbox was dropped".to_owned())
        }
    };
    let _ = died.send(Some(why));
}

/// One invocation's turn on a sandbox: its slot is free again when dropped,
/// or the sandbox counted dead when its process is gone.
pub(crate) struct Lease {
    pool: Arc<Pool>,
    id: u64,
    sandbox: Arc<Sandbox>,
}

impl std::ops::Deref for Lease {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl Lease {
    /// Invokes the function with `event` on this slot: the invocation's
    /// number on its process (1 for its cold start), its outcome, and the
    /// process (to look at once the slot is given back).
    ///
    /// On Lambda Managed Instances a timed-out invocation runs on and keeps
    /// its slot until it answers or its process dies: its late answer is
    /// dropped, as Lambda drops it.
    pub(crate) async fn invoke(
        self,
        event: Bytes,
        timeout: Duration,
        kill_after: Option<Duration>,
        phase: &(dyn Fn(&'static str) + Sync),
    ) -> (u64, Outcome, Arc<Sandbox>) {
        let sandbox = self.sandbox.clone();
        let (nth, outcome, late) = sandbox.invoke(event, timeout, kill_after, phase).await;
        if let Some(late) = late {
            tokio::spawn(async move {
                tokio::select! {
                    _ = late => {}
                    _ = self.sandbox.gone() => {}
                }
                drop(self);
            });
        }
        (nth, outcome, sandbox)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut environments = self.pool.environments();
        if self.sandbox.is_alive() {
            environments.answered(self.id);
        } else {
            environments.died(self.id);
        }
    }
}

/// The function's sandboxes, placed by Lambda's rules ([`Environments`]): a
/// live one with a free slot serves the next invocation, and a new one is
/// started (a cold start) when none has.
pub(crate) struct Pool {
    spec: FunctionSpec,
    environments: Mutex<Environments<Arc<Sandbox>>>,
    /// Held across a start, so that invocations arriving together fill one
    /// new process instead of starting one each.
    starting: tokio::sync::Mutex<()>,
    cold_starts: AtomicU64,
}

impl Pool {
    /// An empty pool for `spec`, each process serving up to `per_process`
    /// invocations at once (`PerExecutionEnvironmentMaxConcurrency`; 1 on
    /// classic Lambda).
    pub(crate) fn new(spec: FunctionSpec, per_process: u32) -> Arc<Self> {
        Arc::new(Pool {
            spec,
            environments: Mutex::new(Environments::new(per_process)),
            starting: tokio::sync::Mutex::new(()),
            cold_starts: AtomicU64::new(0),
        })
    }

    fn environments(&self) -> std::sync::MutexGuard<'_, Environments<Arc<Sandbox>>> {
        self.environments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot on a live sandbox, or on a new one.
    ///
    /// # Errors
    /// The I/O error when a new process cannot start.
    pub(crate) async fn take(self: &Arc<Self>) -> std::io::Result<Lease> {
        let _starting = self.starting.lock().await;
        let lease = |id, sandbox| Lease {
            pool: self.clone(),
            id,
            sandbox,
        };
        loop {
            let free = self.environments().take_free();
            match free {
                Some((id, sandbox)) if sandbox.is_alive() => return Ok(lease(id, sandbox)),
                // A process that died between invocations serves nothing.
                Some((id, _)) => {
                    self.environments().died(id);
                }
                None => break,
            }
        }
        self.cold_starts.fetch_add(1, Ordering::Relaxed);
        let per_process = self.environments().per_environment();
        let sandbox = Arc::new(Sandbox::start(&self.spec, per_process).await?);
        let id = self.environments().started(sandbox.clone());
        Ok(lease(id, sandbox))
    }

    /// Processes started so far.
    pub(crate) fn cold_starts(&self) -> u64 {
        self.cold_starts.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function that asks for `n` events at once (one thread each) and never
    /// answers: Python's standard library speaking the Runtime API.
    fn silent_function(n: u32) -> FunctionSpec {
        let script = format!(
            "import os, threading, time, urllib.request\n\
             url = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/invocation/next'\n\
             for _ in range({n}):\n    threading.Thread(target=lambda: urllib.request.urlopen(url).read(), daemon=True).start()\n\
             time.sleep(600)\n"
        );
        FunctionSpec::new(vec!["python3".into(), "-c".into(), script], "silent".into())
    }

    const QUIET: &(dyn Fn(&'static str) + Sync) = &|_| {};

    fn invoke(
        lease: Lease,
        timeout: u64,
        kill_after: Option<u64>,
    ) -> impl Future<Output = (u64, Outcome, Arc<Sandbox>)> {
        lease.invoke(
            Bytes::from_static(b"{}"),
            Duration::from_secs(timeout),
            kill_after.map(Duration::from_secs),
            QUIET,
        )
    }

    #[tokio::test]
    async fn a_kill_fails_every_invocation_the_process_has_in_flight() {
        let pool = Pool::new(silent_function(2), 2);
        let first = pool.take().await.unwrap();
        let second = pool.take().await.unwrap();
        assert_eq!(pool.cold_starts(), 1, "two invocations share one process");
        let started = Instant::now();
        let ((_, killed, process), (_, other, _)) =
            tokio::join!(invoke(first, 60, Some(1)), invoke(second, 60, None));
        assert!(matches!(killed, Outcome::Crashed(_)), "{killed:?}");
        assert!(
            matches!(&other, Outcome::Crashed(why) if why.contains("kill-rate")),
            "{other:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(!process.is_alive());
        let _next = pool.take().await.unwrap();
        assert_eq!(
            pool.cold_starts(),
            2,
            "the next invocation starts a new process"
        );
    }

    #[tokio::test]
    async fn on_managed_instances_a_timeout_fails_only_its_invocation_which_keeps_its_slot() {
        let pool = Pool::new(silent_function(2), 2);
        let first = pool.take().await.unwrap();
        let second = pool.take().await.unwrap();
        let started = Instant::now();
        // Still in flight when the first times out.
        let long = tokio::spawn(invoke(second, 600, None));
        let (_, short, process) = invoke(first, 1, None).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(matches!(short, Outcome::TimedOut), "{short:?}");
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(process.is_alive(), "the process lives on");
        assert!(!long.is_finished(), "the other invocation goes on");
        // Both slots are busy (the timed-out invocation runs on): the next
        // invocation gets a process of its own.
        let _third = pool.take().await.unwrap();
        assert_eq!(pool.cold_starts(), 2);
        long.abort();
    }

    #[tokio::test]
    async fn on_classic_lambda_a_timeout_kills_the_process() {
        let pool = Pool::new(silent_function(1), 1);
        let (_, outcome, process) = invoke(pool.take().await.unwrap(), 1, None).await;
        assert!(matches!(outcome, Outcome::TimedOut), "{outcome:?}");
        assert!(!process.is_alive());
    }

    #[tokio::test]
    async fn one_at_a_time_a_second_invocation_gets_a_process_of_its_own() {
        let pool = Pool::new(silent_function(1), 1);
        let _first = pool.take().await.unwrap();
        let _second = pool.take().await.unwrap();
        assert_eq!(pool.cold_starts(), 2);
    }
}

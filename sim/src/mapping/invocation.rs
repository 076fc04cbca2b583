//! One invocation on a function process: Lambda's handover, the process's
//! slot, its death at an await point, and Lambda's timeout (the process's
//! end on classic Lambda; on Lambda Managed Instances the invocation's only,
//! its code running on).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use shardline::Deadline;
use shardline::time::Instant;
use shardline_esm::Answer;

use super::Mapping;
use crate::function::{INVOCATION, Instance};
use crate::world::InvocationLog;

/// What the function's run of one event comes to.
type FunctionResult = Result<(Bytes, shardline::BatchReport), String>;

/// A function process: its instance, and the word of its death, which ends
/// every invocation it has in flight.
#[derive(Debug)]
pub struct Process {
    /// The handler (and fan-out) the process built.
    pub instance: Instance,
    gone: tokio::sync::watch::Sender<bool>,
}

impl Mapping {
    /// Runs the function on `payload` in a process that may die at an await
    /// point or run into Lambda's timeout.
    pub(super) async fn run_invocation(
        self: &Rc<Self>,
        shard: &str,
        payload: &Bytes,
        delivered: Vec<u64>,
        duplicate: bool,
    ) -> Answer {
        let faults = self.dials.now();
        let id = self.invocations.get() + 1;
        self.invocations.set(id);
        self.world.lock().invocations.insert(
            id,
            InvocationLog {
                shard: shard.to_owned(),
                duplicate,
                started: Instant::now(),
                ended: None,
                clean: false,
                retry_from: None,
                delivered,
                called: Vec::new(),
                handled: Vec::new(),
                cut_off: Vec::new(),
            },
        );
        let crash_at = self.dials.roll(faults.crash).then(|| {
            let span = (self.typical_polls.get() * 1.5).max(2.0) as usize;
            1 + self.dials.below(span) as u32
        });
        // Lambda takes a moment to hand an event over: the simulated clock
        // moves with every invocation, as it does with Lambda's.
        let handover = Duration::from_millis(2 + self.dials.below(20) as u64);
        tokio::time::sleep(handover).await;
        let outcome = self
            .in_process(id, payload.clone(), faults.timeout, crash_at)
            .await;
        let undisturbed = matches!(&outcome, Ok((Some(Ok((_, report))), _))
            if report.not_started == 0 && report.failed == 0 && report.superseded == 0);
        if !undisturbed {
            self.world.lock().disturbed = true;
        }
        let answer = match outcome {
            Err(_) => Answer::Failed(format!("Task timed out after {:?}", faults.timeout)),
            Ok((None, _)) => Answer::Failed("the process died".into()),
            Ok((Some(Err(error)), polls)) => {
                self.took(polls);
                Answer::Failed(format!("function error: {error}"))
            }
            Ok((Some(Ok((body, report))), polls)) => {
                self.took(polls);
                self.answered(id, !duplicate && report.superseded == 0, &body);
                Answer::Response(body)
            }
        };
        self.ended(id);
        answer
    }

    /// Invocation `id` on a process's slot: its outcome (`Err` for Lambda's
    /// timeout, `None` for a death). A death, and a timeout on classic
    /// Lambda, end the process and every invocation it has in flight. On
    /// Lambda Managed Instances a timeout fails only this invocation, whose
    /// code runs on in its slot (as a second run of its batch beside Lambda's
    /// retry), until it ends or its process dies
    /// (lambda/latest/dg/lambda-managed-instances-execution-environment.html).
    async fn in_process(
        self: &Rc<Self>,
        id: u64,
        payload: Bytes,
        timeout: Duration,
        crash_at: Option<u32>,
    ) -> Result<(Option<FunctionResult>, u32), tokio::time::error::Elapsed> {
        let (environment, process) = self.take_process();
        let run = {
            let (me, process) = (self.clone(), process.clone());
            async move {
                let deadline = Deadline::after(timeout);
                let run = me.function.run(&process.instance, &payload, deadline);
                INVOCATION.scope(id, run).await
            }
        };
        let mut run = Crashable::new(run, crash_at);
        let mut gone = process.gone.subscribe();
        // `biased`: the same seed, the same run.
        let outcome = tokio::select! {
            biased;
            outcome = tokio::time::timeout(timeout, &mut run) => outcome,
            // Another invocation of the process crashed: this one dies with
            // it, at the await point it was at.
            _ = gone.wait_for(|gone| *gone) => {
                self.world.lock().killed_with_process += 1;
                Ok((None, 0))
            }
        };
        let runs_on = outcome.is_err() && self.environments.borrow().per_environment() > 1;
        if runs_on {
            self.run_on(id, environment, process, run);
        } else {
            self.settle(environment, &process, matches!(outcome, Ok((Some(_), _))));
        }
        outcome
    }

    /// A timed-out invocation on Lambda Managed Instances, left to run on.
    fn run_on(
        self: &Rc<Self>,
        id: u64,
        environment: u64,
        process: Rc<Process>,
        mut run: Crashable<impl Future<Output = FunctionResult> + 'static>,
    ) {
        {
            let mut world = self.world.lock();
            world.ran_on_after_timeout += 1;
            // Lambda retries the batch while this one runs: a second run of
            // it, as a duplicate delivery is.
            if let Some(log) = world.invocations.get_mut(&id) {
                log.duplicate = true;
            }
        }
        self.tasks.set(self.tasks.get() + 1);
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let mut gone = process.gone.subscribe();
            let answered = tokio::select! {
                biased;
                (result, _) = &mut run => result.is_some(),
                _ = gone.wait_for(|gone| *gone) => false,
            };
            me.settle(environment, &process, answered);
            me.tasks.set(me.tasks.get() - 1);
        });
    }

    /// Gives an invocation's slot back: the process serves on when the
    /// invocation `answered`; otherwise it is gone, with every invocation it
    /// had in flight, and Lambda starts another.
    fn settle(&self, environment: u64, process: &Process, answered: bool) {
        if answered {
            self.environments.borrow_mut().answered(environment);
        } else {
            process.gone.send_replace(true);
            self.environments.borrow_mut().died(environment);
        }
    }

    /// A process with a free slot, or a new one (a cold start): its
    /// environment's id, and the process.
    fn take_process(&self) -> (u64, Rc<Process>) {
        let free = self.environments.borrow_mut().take_free();
        free.unwrap_or_else(|| {
            let process = Rc::new(Process {
                instance: (self.function.start)(),
                gone: tokio::sync::watch::channel(false).0,
            });
            let id = self.environments.borrow_mut().started(process.clone());
            (id, process)
        })
    }

    /// A process taken out of Lambda's hands for the operator's own command
    /// (a replay): an idle one, or a new one.
    pub fn take_instance(&self) -> Rc<Process> {
        let (environment, process) = self.take_process();
        self.environments.borrow_mut().died(environment);
        process
    }

    fn took(&self, polls: u32) {
        self.typical_polls
            .set(self.typical_polls.get() * 0.8 + f64::from(polls) * 0.2);
    }

    /// An invocation that answered: whether its answer is clean (no
    /// superseded commit, not a duplicate delivery), and what it asked Lambda
    /// to retry from.
    fn answered(&self, id: u64, clean: bool, body: &[u8]) {
        let mut world = self.world.lock();
        let Some(log) = world.invocations.get_mut(&id) else {
            return;
        };
        log.clean = clean;
        log.retry_from = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v["batchItemFailures"][0]["itemIdentifier"]
                    .as_str()
                    .map(str::to_owned)
            });
    }

    /// An invocation ended, however: the longest of its handler calls cut off
    /// met a fault (the engine counts an attempt against it when its commit
    /// lands, even if the answer is then lost).
    fn ended(&self, id: u64) {
        let mut world = self.world.lock();
        let Some(log) = world.invocations.get_mut(&id) else {
            return;
        };
        log.ended = Some(Instant::now());
        let longest = log
            .cut_off
            .iter()
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
            .map(|c| c.2);
        if let Some(longest) = longest {
            world.expose(longest);
        }
    }
}

/// A future that can die: after `polls` polls it ends with `None` and drops
/// what it runs, as a process killed at an await point. Counts its polls.
struct Crashable<F> {
    inner: Pin<Box<F>>,
    die_at: Option<u32>,
    polls: u32,
}

impl<F> Crashable<F> {
    fn new(inner: F, die_at: Option<u32>) -> Self {
        Crashable {
            inner: Box::pin(inner),
            die_at,
            polls: 0,
        }
    }
}

impl<F: Future> Future for Crashable<F> {
    type Output = (Option<F::Output>, u32);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.polls += 1;
        if self.die_at.is_some_and(|at| self.polls >= at) {
            return Poll::Ready((None, self.polls));
        }
        let polls = self.polls;
        self.inner.as_mut().poll(cx).map(|out| (Some(out), polls))
    }
}

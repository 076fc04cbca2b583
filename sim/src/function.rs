//! The function under test: Shardline's real engine (or its window runner)
//! with a handler whose effect is idempotent per record, as the ledger's is,
//! and that logs every call to the [`World`]: what it was meant to do, what
//! it did, what it met.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fastrand::Rng;
use serde::{Deserialize, Serialize};
use shardline::decode::decode_event;
use shardline::sink::FanOut;
use shardline::state::StateStore;
use shardline::time::Instant;
use shardline::window::{WindowHandler, WindowInfo, decode_window_event, process_window_event};
use shardline::{
    Batch, BatchReport, Deadline, EngineConfig, FlushError, Handler, HandlerError, Position,
    Record, process_event,
};

use crate::world::{Close, Kind, Payload, World};

tokio::task_local! {
    /// The invocation a handler call belongs to.
    pub static INVOCATION: u64;
}

fn invocation() -> u64 {
    INVOCATION.try_with(|i| *i).unwrap_or(0)
}

/// The fault dials the handler reads (the drain phase turns them to zero).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HandlerDials {
    /// Calls of healthy records that fail retryably.
    pub transient: f64,
    /// Calls that take a slow spell's time.
    pub slow: f64,
}

/// What a handler call draws: how long it takes, and whether it fails.
struct Draw {
    latency: Duration,
    transient: bool,
}

/// What both handlers share: the world, the dials and the dice.
#[derive(Debug, Clone)]
pub struct Calls {
    world: World,
    dials: Arc<Mutex<HandlerDials>>,
    rng: Arc<Mutex<Rng>>,
    /// The end of the slow spell under way, if one is: every call slow.
    spell_until: Arc<Mutex<Option<Instant>>>,
}

impl Calls {
    /// Calls logging to `world`, drawing from `seed`.
    pub fn new(world: World, dials: Arc<Mutex<HandlerDials>>, seed: u64) -> Self {
        Calls {
            world,
            dials,
            rng: Arc::new(Mutex::new(Rng::with_seed(seed))),
            spell_until: Arc::new(Mutex::new(None)),
        }
    }

    /// A call's draw. Slowness comes in spells, as a downstream's does: a
    /// call may start one (3 to 8 s), and every call started during it is
    /// slow, so many keys are in flight at once when the time runs out.
    fn draw(&self) -> Draw {
        let dials = *self.dials.lock().unwrap_or_else(|p| p.into_inner());
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let mut spell = self.spell_until.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if dials.slow > 0.0 && spell.is_none_or(|until| until < now) && rng.f64() < dials.slow {
            *spell = Some(now + Duration::from_millis(rng.u64(3_000..=8_000)));
        }
        let slow = dials.slow > 0.0 && spell.is_some_and(|until| until >= now);
        Draw {
            latency: if slow {
                Duration::from_millis(rng.u64(1_500..=4_000))
            } else {
                Duration::from_millis(rng.u64(0..=30))
            },
            transient: rng.f64() < dials.transient,
        }
    }

    /// The outcome of a call on `payload` once its time is spent: the
    /// failure it is meant to have, if any (an exposure when it may count an
    /// attempt against a healthy record).
    fn outcome(&self, payload: Payload, transient: bool) -> Result<(), HandlerError> {
        let mut world = self.world.lock();
        *world.calls.entry(payload.id).or_default() += 1;
        if let Some(log) = world.invocations.get_mut(&invocation()) {
            log.called.push(payload.id);
        }
        let mended = world.mended;
        match payload.kind {
            Kind::Permanent if !mended => {
                return Err(HandlerError::permanent(format!(
                    "record {} is poison",
                    payload.id
                )));
            }
            Kind::Retryable if !mended => {
                world.expose(payload.id);
                return Err(HandlerError::retryable(format!(
                    "record {} fails, always",
                    payload.id
                )));
            }
            _ => {}
        }
        if transient {
            world.expose(payload.id);
            return Err(HandlerError::retryable("an injected transient failure"));
        }
        Ok(())
    }

    /// Whether a call on `payload` never ends.
    fn hangs(&self, payload: Payload) -> bool {
        payload.kind == Kind::Hang && !self.world.lock().mended
    }

    fn handled(&self, id: u64) {
        let invocation = invocation();
        let mut world = self.world.lock();
        if let Some(log) = world.invocations.get_mut(&invocation) {
            log.handled.push(id);
        }
    }
}

/// Notes a handler call cut off (dropped before it ended) in its invocation.
struct CallGuard<'a> {
    calls: &'a Calls,
    invocation: u64,
    started: Instant,
    position: Position,
    id: u64,
    ended: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let mut world = self.calls.world.lock();
        if let Some(log) = world.invocations.get_mut(&self.invocation) {
            log.cut_off
                .push((self.started, self.position.clone(), self.id));
        }
    }
}

/// The plain function's handler: applies each record's effect once (more
/// calls only count), with a fan-out behind it when the scenario has one.
#[derive(Debug)]
pub struct SimHandler {
    calls: Calls,
    fan_out: Option<FanOut>,
}

impl SimHandler {
    /// A handler over `calls`, copying to `fan_out`.
    pub fn new(calls: Calls, fan_out: Option<FanOut>) -> Self {
        SimHandler { calls, fan_out }
    }
}

impl Handler for SimHandler {
    async fn begin(&self, batch: &Batch<'_>) {
        if let Some(fan_out) = &self.fan_out {
            fan_out.begin(batch).await;
        }
    }

    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let payload = Payload::decode(&record.data)
            .ok_or_else(|| HandlerError::permanent("not a payload of the simulation"))?;
        let draw = self.calls.draw();
        let mut guard = CallGuard {
            calls: &self.calls,
            invocation: invocation(),
            started: Instant::now(),
            position: record.position.clone(),
            id: payload.id,
            ended: false,
        };
        tokio::time::sleep(draw.latency).await;
        if self.calls.hangs(payload) {
            std::future::pending::<()>().await;
        }
        guard.ended = true;
        self.calls.outcome(payload, draw.transient)?;
        self.calls.world.lock().apply(payload.id, invocation());
        self.calls.handled(payload.id);
        match &self.fan_out {
            Some(fan_out) => fan_out.handle(record).await,
            None => Ok(()),
        }
    }

    fn flush_time(&self) -> Duration {
        self.fan_out
            .as_ref()
            .map_or(Duration::ZERO, Handler::flush_time)
    }

    async fn flush(&self, batch: &Batch<'_>) -> Result<(), FlushError> {
        match &self.fan_out {
            Some(fan_out) => fan_out.flush(batch).await,
            None => Ok(()),
        }
    }
}

/// A window's state: the records folded, in order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Folded {
    /// Record ids.
    pub ids: Vec<u64>,
}

/// The windowed function's handler: folds record ids, closes into the world.
#[derive(Debug)]
pub struct SimWindow {
    calls: Calls,
}

impl SimWindow {
    /// A window handler over `calls`.
    pub fn new(calls: Calls) -> Self {
        SimWindow { calls }
    }
}

impl WindowHandler for SimWindow {
    type State = Folded;

    fn add(&self, state: &mut Folded, record: &Record) -> Result<(), HandlerError> {
        let payload = Payload::decode(&record.data)
            .ok_or_else(|| HandlerError::permanent("not a payload of the simulation"))?;
        let draw = self.calls.draw();
        if self.calls.hangs(payload) {
            // A fold cannot hang (it is not async): it fails instead.
            self.calls.world.lock().expose(payload.id);
            return Err(HandlerError::retryable("a hanging record"));
        }
        self.calls.outcome(payload, draw.transient)?;
        state.ids.push(payload.id);
        self.calls.handled(payload.id);
        Ok(())
    }

    async fn close(&self, window: &WindowInfo, state: &Folded) -> Result<(), HandlerError> {
        self.calls.world.lock().closes.push(Close {
            shard: window.shard_id.clone(),
            window: window.start.clone(),
            ids: state.ids.clone(),
        });
        Ok(())
    }
}

/// One function process: its handlers (a fan-out's buffers and shard maps
/// live in the process, as they do in a Lambda execution environment).
#[derive(Debug)]
pub struct Instance {
    /// The plain handler.
    pub handler: Arc<SimHandler>,
    /// The window handler, when the function folds windows.
    pub window: Option<Arc<SimWindow>>,
}

/// The function: its configuration, store, and how a process of it starts.
pub struct Function {
    /// The engine's settings.
    pub config: EngineConfig,
    /// The state store (a remote service: shared by every process).
    pub store: Arc<dyn StateStore>,
    /// Starts a process (a cold start).
    pub start: Box<dyn Fn() -> Instance>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Function {
    /// Runs one event in `instance`: the response's JSON and what the engine
    /// counted, or the error that fails the invocation.
    pub async fn run(
        &self,
        instance: &Instance,
        payload: &[u8],
        deadline: Deadline,
    ) -> Result<(Bytes, BatchReport), String> {
        if let Some(window) = &instance.window {
            let event = decode_window_event(payload).map_err(|e| e.to_string())?;
            let outcome = process_window_event(event, window, &*self.store, &self.config, deadline)
                .await
                .map_err(|e| e.to_string())?;
            let body = serde_json::to_vec(&outcome.response).map_err(|e| e.to_string())?;
            return Ok((Bytes::from(body), outcome.report));
        }
        let event = decode_event(payload).map_err(|e| e.to_string())?;
        let handler = &*instance.handler;
        let outcome = process_event(event, handler, &*self.store, &self.config, deadline)
            .await
            .map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&outcome.response).map_err(|e| e.to_string())?;
        Ok((Bytes::from(body), outcome.report))
    }
}

//! Execution environments: which function process serves an invocation, and
//! what its death fails. On classic Lambda an environment serves one
//! invocation at a time; on Lambda Managed Instances up to the function's
//! `PerExecutionEnvironmentMaxConcurrency` at once
//! ([lambda-managed-instances-rust](https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances-rust.html)).
//! An environment whose process dies (a crash, a kill; a timeout on classic
//! Lambda) serves nothing more, and every invocation it had in flight fails
//! with it; the next invocation goes to another environment or starts a new
//! one (a cold start). On Lambda Managed Instances a timeout fails only its
//! invocation, which runs on in its slot until it answers
//! ([execution environment](https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances-execution-environment.html)).

/// The live environments of one function, each with the invocations it has in
/// flight. `T` is what the driver keeps of a process (a handle, a simulated
/// instance).
///
/// ```
/// use shardline_esm::Environments;
///
/// let mut environments = Environments::new(2);
/// assert!(environments.take_free().is_none());
/// let first = environments.started("process-1");
/// assert_eq!(environments.take_free(), Some((first, "process-1")));
/// // Two in flight: the next invocation needs a new environment.
/// assert!(environments.take_free().is_none());
/// // A death fails both.
/// assert_eq!(environments.died(first), 2);
/// assert!(environments.take_free().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Environments<T> {
    per_environment: u32,
    live: Vec<Environment<T>>,
    next_id: u64,
}

#[derive(Debug, Clone)]
struct Environment<T> {
    id: u64,
    process: T,
    in_flight: u32,
}

impl<T: Clone> Environments<T> {
    /// No environment yet; each will serve up to `per_environment`
    /// invocations at once (1: classic Lambda; 0 counts as 1).
    pub fn new(per_environment: u32) -> Self {
        Environments {
            per_environment: per_environment.max(1),
            live: Vec::new(),
            next_id: 1,
        }
    }

    /// Invocations one environment serves at once.
    pub fn per_environment(&self) -> u32 {
        self.per_environment
    }

    /// A live environment with a free slot, the slot taken: its id and
    /// process. The fullest such environment is chosen, so that invocations
    /// share processes before more start; among equals, the newest. `None` when every one is full:
    /// start one and hand it to [`Environments::started`].
    pub fn take_free(&mut self) -> Option<(u64, T)> {
        let per_environment = self.per_environment;
        let environment = self
            .live
            .iter_mut()
            .filter(|e| e.in_flight < per_environment)
            .max_by_key(|e| (e.in_flight, e.id))?;
        environment.in_flight += 1;
        Some((environment.id, environment.process.clone()))
    }

    /// A new environment (a cold start), serving one invocation now: its id.
    pub fn started(&mut self, process: T) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.live.push(Environment {
            id,
            process,
            in_flight: 1,
        });
        id
    }

    /// An invocation on environment `id` ended and the process lives on: its
    /// slot is free.
    pub fn answered(&mut self, id: u64) {
        if let Some(environment) = self.live.iter_mut().find(|e| e.id == id) {
            environment.in_flight = environment.in_flight.saturating_sub(1);
        }
    }

    /// Environment `id` died: it serves nothing more. Returns the invocations
    /// it had in flight, every one of which fails with it (0 when it was gone
    /// already).
    pub fn died(&mut self, id: u64) -> u32 {
        let Some(at) = self.live.iter().position(|e| e.id == id) else {
            return 0;
        };
        self.live.swap_remove(at).in_flight
    }

    /// Environments alive now.
    pub fn live(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_lambda_serves_one_invocation_per_environment() {
        let mut environments = Environments::new(1);
        let a = environments.started('a');
        assert_eq!(environments.take_free(), None);
        let b = environments.started('b');
        environments.answered(a);
        assert_eq!(environments.take_free(), Some((a, 'a')));
        assert_eq!(environments.died(b), 1);
        assert_eq!(environments.live(), 1);
    }

    #[test]
    fn invocations_fill_the_fullest_environment_first() {
        let mut environments = Environments::new(8);
        let a = environments.started('a');
        let b = environments.started('b');
        environments.answered(b);
        environments.answered(b);
        // `b` is idle, `a` has one in flight: `a` takes the next seven.
        for _ in 0..7 {
            assert_eq!(environments.take_free(), Some((a, 'a')));
        }
        assert_eq!(environments.take_free(), Some((b, 'b')));
        assert_eq!(environments.died(a), 8, "a death fails all eight in flight");
        assert_eq!(environments.died(a), 0, "once");
        assert_eq!(environments.take_free(), Some((b, 'b')));
    }
}

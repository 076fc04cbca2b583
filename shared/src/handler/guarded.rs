//! One guarded call into user code, for the engine and for replay alike: a
//! panic is caught and named, and the call is given up at its deadline.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;

use crate::time::Deadline;

/// How a guarded call ended.
#[derive(Debug)]
pub(crate) enum Guarded<T> {
    /// It returned this.
    Finished(T),
    /// It panicked, with this message.
    Panicked(String),
    /// It was still running at the deadline (and was dropped).
    OutOfTime,
}

/// Runs `call` until it ends or `deadline` passes; a panic in it becomes
/// [`Guarded::Panicked`] instead of unwinding into the caller.
pub(crate) async fn guarded<T>(call: impl Future<Output = T>, deadline: Deadline) -> Guarded<T> {
    let call = AssertUnwindSafe(call).catch_unwind();
    let ended = match deadline.remaining() {
        Some(left) => match tokio::time::timeout(left, call).await {
            Ok(ended) => ended,
            Err(_) => return Guarded::OutOfTime,
        },
        None => call.await,
    };
    match ended {
        Ok(value) => Guarded::Finished(value),
        Err(panic) => Guarded::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_call_finishes_panics_with_its_message_or_runs_out_of_time() {
        let finished = guarded(async { 7 }, Deadline::none()).await;
        assert!(matches!(finished, Guarded::Finished(7)));
        let panicked = guarded(
            async {
                panic!("bad record {}", 3);
            },
            Deadline::none(),
        )
        .await;
        assert!(matches!(panicked, Guarded::Panicked::<()>(ref m) if m == "bad record 3"));
        let slow = guarded(
            tokio::time::sleep(Duration::from_secs(5)),
            Deadline::after(Duration::from_millis(10)),
        )
        .await;
        assert!(matches!(slow, Guarded::OutOfTime));
    }
}

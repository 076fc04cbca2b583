//! `rendezvous`: a Shardline function whose invocations must overlap in one
//! process, for the Lambda Managed Instances tests. A record whose payload is
//! `wait` holds its batch until `RENDEZVOUS` invocations (2 by default) hold
//! one: under the one-at-a-time runtime loop the first never passes and times
//! out. Every record adds 1 to the count `RendezvousRecords` and logs one
//! line, so the test can read whose metrics and logs are whose.

use std::sync::OnceLock;

use shardline::{App, Handler, HandlerError, Record};
use tokio::sync::Barrier;

/// The invocations that must meet.
fn barrier() -> &'static Barrier {
    static BARRIER: OnceLock<Barrier> = OnceLock::new();
    BARRIER.get_or_init(|| {
        let parties = std::env::var("RENDEZVOUS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        Barrier::new(parties)
    })
}

struct Rendezvous;

impl Handler for Rendezvous {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        if record.data.as_ref() == b"wait" {
            barrier().wait().await;
        }
        shardline::metrics::add_count("RendezvousRecords", 1);
        tracing::info!(payload = %String::from_utf8_lossy(&record.data), "record seen");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), shardline::Error> {
    App::new("rendezvous", Rendezvous).run().await
}

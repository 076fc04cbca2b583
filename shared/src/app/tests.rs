//! Settings reach what the function builds from them.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::*;
use crate::record::ShardRef;
use crate::state::{ConsumerShard, KeyCommit, Progress, Settled};
use crate::{HandlerError, Position};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn state_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("shardline-app-{}-{nanos}", std::process::id()))
}

/// Settings with the embedded store in `dir` and `pairs`.
fn settings(dir: &Path, pairs: &[(&str, &str)]) -> Settings {
    let dir = dir.display().to_string();
    let lookup = |name: &str| {
        if name == "SHARDLINE_STATE_DIR" {
            return Some(dir.clone());
        }
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    Settings::from_lookup(&lookup, false).unwrap()
}

fn app() -> App<impl crate::Handler> {
    App::new(
        "ttl",
        crate::handler_fn(|_: Record| async { Ok::<(), HandlerError>(()) }),
    )
}

/// Commits one key's progress through the function's store and returns how
/// long after the commit the store will let it expire.
async fn stored_key_progress_ttl<H: InvocationHandler>(
    app: App<H>,
    dir: &Path,
    settings: Settings,
) -> Duration {
    let function = app.into_function(settings).await.unwrap();
    let store = function.open_store().await.unwrap();
    let key = ConsumerShard {
        consumer: "ttl".into(),
        shard: ShardRef {
            stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/s"),
            shard_id: Arc::from("shardId-0"),
        },
    };
    let commit = KeyCommit {
        partition_key: "k".into(),
        read_version: 0,
        progress: Progress {
            checkpoint: Some(Position::new("1".parse().unwrap(), 0)),
            ..Progress::default()
        },
        settled: Settled::default(),
    };
    let committed_at = crate::time::now();
    let moved = store.commit_key_progress(&key, &[commit]).await.unwrap();
    assert!(moved.is_empty());
    let db = rusqlite::Connection::open(dir.join("shardline.sqlite")).unwrap();
    let expires_ms: i64 = db
        .query_row("SELECT expires_at FROM key_progress", [], |r| r.get(0))
        .unwrap();
    let expires = UNIX_EPOCH + Duration::from_millis(u64::try_from(expires_ms).unwrap());
    expires.duration_since(committed_at).unwrap()
}

fn assert_about(ttl: Duration, want: Duration) {
    assert!(
        ttl >= want - Duration::from_secs(1) && ttl <= want + Duration::from_secs(60),
        "stored TTL {:.1} days, want {:.1}",
        ttl.as_secs_f64() / DAY.as_secs_f64(),
        want.as_secs_f64() / DAY.as_secs_f64()
    );
}

#[tokio::test]
async fn the_key_progress_ttl_setting_reaches_the_store() {
    let dir = state_dir();
    let settings = settings(&dir, &[("SHARDLINE_KEY_PROGRESS_TTL_HOURS", "720")]);
    let ttl = stored_key_progress_ttl(app(), &dir, settings).await;
    assert_about(ttl, 30 * DAY);
}

#[tokio::test]
async fn the_function_chooses_the_key_progress_ttl_and_the_setting_overrides_it() {
    let dir = state_dir();
    let chosen = app().key_progress_ttl(40 * DAY);
    let ttl = stored_key_progress_ttl(chosen, &dir, settings(&dir, &[])).await;
    assert_about(ttl, 40 * DAY);
    let dir = state_dir();
    let chosen = app().key_progress_ttl(40 * DAY);
    let overridden = settings(&dir, &[("SHARDLINE_KEY_PROGRESS_TTL_HOURS", "48")]);
    let ttl = stored_key_progress_ttl(chosen, &dir, overridden).await;
    assert_about(ttl, 2 * DAY);
    let dir = state_dir();
    let ttl = stored_key_progress_ttl(app(), &dir, settings(&dir, &[])).await;
    assert_about(ttl, crate::state::DEFAULT_KEY_PROGRESS_TTL);
}

#[tokio::test]
async fn a_key_progress_ttl_out_of_range_stops_the_function_at_start() {
    for ttl in [Duration::from_secs(3600), 367 * DAY] {
        let dir = state_dir();
        let refused = app()
            .key_progress_ttl(ttl)
            .into_function(settings(&dir, &[]))
            .await;
        let Err(Error::Usage(message)) = refused else {
            panic!("{ttl:?} taken");
        };
        assert!(
            message.contains("App::key_progress_ttl") && message.contains("24 hours to 366 days"),
            "{message}"
        );
    }
}

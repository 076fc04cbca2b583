//! `active-users`: the currently active users from a Kinesis stream of
//! heartbeats `{"user": "<guid>", "ts": <epoch ms>}`. Configuration only: the
//! handler and the stores are in the library (`src/lib.rs`).

use active_users::store::ActiveUsersStore;
use active_users::{ACTIVE_USERS_TABLE, ActiveUsers, active_command, event_command};
use shardline::App;

#[tokio::main]
async fn main() -> Result<(), shardline::Error> {
    let window = active_users::window_from(&shardline::config::process_env)?;
    App::build("active-users", move |settings| async move {
        Ok(ActiveUsers::new(
            ActiveUsersStore::open(&settings).await?,
            window,
        ))
    })
    // Records older than the window are acknowledged unhandled: no write.
    .max_record_age(window)
    // Order does not matter: last-seen only moves forward anyway.
    .parent_guard(false)
    .table(ACTIVE_USERS_TABLE)
    .command(
        "active",
        "print the active users as one JSON object {user: last_seen_ms}",
        active_command,
    )
    .command(
        "event",
        "print a Kinesis event of fresh heartbeats: event [--age SECONDS] USER...",
        event_command,
    )
    .run()
    .await
}

//! The rooms: each concept whole in its folder, the engine's phases as
//! files, and each role of the state called by its own caller.

use std::path::PathBuf;

use super::{rust_files, workspace};

/// What each room holds: its files, and the items that make its concept,
/// defined nowhere else in the framework.
const ROOM_PLANS: &[(&str, &[&str], &[&str])] = &[
    (
        "quarantine",
        &["entry", "filter", "store", "replay", "redrive", "command"],
        &[
            "pub struct QuarantinedRecord",
            "pub struct QuarantineFilter",
            "pub trait QuarantineStore",
            "pub async fn replay",
            "pub async fn redrive",
            "struct QuarantineCommand",
        ],
    ),
    (
        // The engine's phases, each a file with the typed result it hands on.
        "engine",
        &["shard", "open", "run", "flush", "fold", "commit", "outcome"],
        &[
            "struct ShardRun",
            "struct Opened",
            "struct Ran",
            "struct Flushed",
            "struct Folded",
            "enum Outcome",
        ],
    ),
    (
        // The state's roles, a trait each, and the unit progress is kept for.
        "state",
        &["progress_store", "lineage_store", "store", "layer", "unit"],
        &[
            "pub trait ProgressStore",
            "pub trait LineageStore",
            "pub trait StateStore",
            "pub trait StoreLayer",
            "pub enum Unit",
            "pub struct UnitCommit",
        ],
    ),
    (
        "progress",
        &["mode", "unit", "ranges", "delivered"],
        &[
            "pub enum ProgressMode",
            "pub struct Progress",
            "pub struct HeadAttempts",
            "pub struct PositionRanges",
            "pub struct Delivered",
            "pub struct Deliveries",
        ],
    ),
];

/// Whether `line` defines `item` (`pub struct Progress`, not `ProgressMode`).
fn defines(line: &str, item: &str) -> bool {
    let code = line.trim_start();
    // Any visibility: `pub`, `pub(crate)`, `pub(super)`.
    let code = match code.strip_prefix("pub(") {
        Some(rest) => rest.split_once(") ").map_or(code, |(_, after)| after),
        None => code.strip_prefix("pub ").unwrap_or(code),
    };
    let item = item.strip_prefix("pub ").unwrap_or(item);
    code.strip_prefix(item)
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
}

#[test]
fn one_shards_batch_is_run_from_one_file_and_its_phases_are_functions() {
    let engine = workspace().join("shared/src/engine");
    let with_impl: Vec<PathBuf> = rust_files(&engine)
        .into_iter()
        .filter(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .contains("impl<H: Handler> ShardRun")
        })
        .collect();
    assert_eq!(with_impl, [engine.join("shard.rs")]);
}

#[test]
fn each_room_holds_its_concept_whole() {
    let src = workspace().join("shared/src");
    for (room, files, items) in ROOM_PLANS {
        for file in *files {
            let path = src.join(room).join(format!("{file}.rs"));
            assert!(path.is_file(), "the {room} room has no {}", path.display());
        }
        for file in rust_files(&src) {
            let text = std::fs::read_to_string(&file).unwrap();
            let inside = file.starts_with(src.join(room));
            for item in *items {
                let defined = text.lines().any(|line| defines(line, item));
                assert!(
                    inside || !defined,
                    "{item} belongs in the {room} room, not {}",
                    file.display()
                );
            }
        }
    }
}

/// Calls each caller of the state must not make: the guard writes no
/// progress, the engine no lineage, and the framework uses the roles' calls,
/// not the names kept from before the split (`state/store.rs` maps those).
const NOT_CALLED: &[(&str, &[&str])] = &[
    ("guard", &[".commit_batch(", ".claim("]),
    (
        "engine",
        &[".write_lineage(", ".write_shard_end(", "KeyCommit"],
    ),
    (
        "",
        &[
            ".load_shard(",
            ".claim_dedup_keys(",
            ".save_lineage(",
            ".mark_shard_end(",
            ".load_key_progress(",
            ".commit_key_progress(",
            ".quarantined(",
        ],
    ),
];

#[test]
fn each_role_of_the_state_is_called_by_its_own_caller() {
    let src = workspace().join("shared/src");
    for (room, calls) in NOT_CALLED {
        for file in rust_files(&src.join(room)) {
            let in_tests = file.components().any(|c| c.as_os_str() == "tests")
                || file.ends_with("tests.rs")
                || file.ends_with("state/store.rs");
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for call in *calls {
                let called = code
                    .lines()
                    .any(|line| !line.trim_start().starts_with("//") && line.contains(call));
                assert!(in_tests || !called, "{} calls {call}", file.display());
            }
        }
    }
}

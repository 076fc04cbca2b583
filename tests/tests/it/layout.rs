//! The house rules, checked on every run: the framework's top-level modules
//! depend on each other without a cycle (lower layers never import higher
//! ones), no source file is over 500 lines, and no function outside tests is
//! over 80 lines (in the framework, the `kpl`, `shardline-esm`, CLI and
//! simulator crates and the functions).
//!
//! `cargo test -p shardline-tests --test it layout:: -- --nocapture` prints the
//! module graph. (`cargo modules dependencies -p shardline-lambda --lib` from the crate registry
//! draws the same graph from `use` declarations; this check also follows paths
//! written inline, such as `crate::metrics::add_count(..)`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 80;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The source folders of the workspace (what `cargo` builds, tests included).
fn source_dirs() -> Vec<PathBuf> {
    let root = workspace();
    let mut dirs = vec![
        root.join("kpl/src"),
        root.join("kpl/tests"),
        root.join("kpl/examples"),
        root.join("event/src"),
        root.join("shared/src"),
        root.join("shared/tests"),
        root.join("shared/benches"),
        root.join("tests/src"),
        root.join("tests/tests"),
        root.join("tests/benches"),
        root.join("esm/src"),
        root.join("cli/src"),
        root.join("sim/src"),
        root.join("sim/tests"),
    ];
    for function in std::fs::read_dir(root.join("functions")).unwrap().flatten() {
        dirs.push(function.path().join("src"));
        dirs.push(function.path().join("tests"));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// Rooms: modules that hold one concept whole, from what the state stores of
/// it up to the operations that run above the state. Each file of a room is
/// a node of its own in the module graph (`quarantine::replay`), so a room
/// may sit both below and above another module without a cycle.
const ROOMS: &[&str] = &["quarantine"];

/// The node a framework file belongs to: its top-level module (`engine` for
/// `shared/src/engine/run.rs`), or in a room its file (`quarantine::replay`);
/// `None` for `lib.rs`.
fn node_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let mut parts = relative
        .components()
        .map(|c| c.as_os_str().to_str().unwrap());
    let first = parts.next()?;
    if first == "lib.rs" {
        return None;
    }
    let top = first.trim_end_matches(".rs").to_owned();
    match parts.next().map(|f| f.trim_end_matches(".rs")) {
        Some(inner) if ROOMS.contains(&top.as_str()) && inner != "mod" => {
            Some(format!("{top}::{inner}"))
        }
        _ => Some(top),
    }
}

/// The nodes named by `crate::NAME` in `text`: a top-level module, or a
/// room's file when the path goes through it (`crate::quarantine::store::`);
/// a name a room re-exports (`crate::quarantine::replay(..)`) is the room's.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `shardline_tests::crate::` and the like
        }
        let segment = |from: usize| -> String {
            text[from..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        let name = segment(at + 7);
        // Modules only: `crate::Handler` in a doc link names a re-export.
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            continue;
        }
        let after = at + 7 + name.len();
        let inner = text[after..]
            .strip_prefix("::")
            .map(|_| segment(after + 2))
            .filter(|inner| text[after + 2 + inner.len()..].starts_with("::"))
            .filter(|inner| inner.starts_with(|c: char| c.is_ascii_lowercase()));
        match inner {
            Some(inner) if ROOMS.contains(&name.as_str()) => {
                found.insert(format!("{name}::{inner}"));
            }
            _ => {
                found.insert(name);
            }
        }
    }
    found
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("shared/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let Some(module) = node_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        for used in crate_paths(&text) {
            if used != module {
                uses.insert(used);
            }
        }
    }
    graph
}

/// A cycle of `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_framework_modules_depend_on_each_other_without_a_cycle() {
    let graph = module_graph();
    println!("module -> modules it uses");
    for (module, uses) in &graph {
        let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
        println!("{module:>20} -> {}", uses.join(", "));
    }
    assert!(graph.contains_key("engine") && graph.contains_key("state"));
    assert_eq!(find_cycle(&graph), None);
    // Settings and progress sit below the state, the sinks below the engine.
    assert!(!graph["config"].contains("state"), "{:?}", graph["config"]);
    assert_eq!(graph["progress"], ["record"].map(String::from).into());
    assert!(!graph["sink"].contains("engine") && !graph["sink"].contains("metrics"));
    // The data path points one way: the engine uses the stages, never the reverse.
    for lower in ["handler", "guard", "state", "error"] {
        assert!(
            !graph[lower].contains("engine") && !graph[lower].contains("app"),
            "{lower} must not import the engine or the app: {:?}",
            graph[lower]
        );
    }
}

mod rooms;

#[test]
fn the_cycle_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        crate_paths(
            "use crate::time::Deadline; x = crate::metrics::add(1); shardline_tests::crate::no"
        ),
        ["metrics", "time"].map(String::from).into()
    );
    assert_eq!(
        crate_paths(
            "use crate::quarantine::store::X; crate::quarantine::replay(a); crate::quarantine::Entry"
        ),
        ["quarantine", "quarantine::store"].map(String::from).into()
    );
}

#[test]
fn no_source_file_is_over_500_lines() {
    let mut long = Vec::new();
    for dir in source_dirs() {
        for file in rust_files(&dir) {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > MAX_FILE_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines: {long:#?}"
    );
}

/// The functions of `text` longer than [`MAX_FN_LINES`], as `name (lines)`,
/// up to its tests (rustfmt's layout: a body ends at `}` at the `fn`'s indent).
fn long_functions(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        if line.trim() == "#[cfg(test)]" {
            break;
        }
        let code = line.trim_start();
        let indent = line.len() - code.len();
        let Some(rest) = code
            .strip_prefix("pub ")
            .or_else(|| code.strip_prefix("pub(crate) "))
            .or_else(|| code.strip_prefix("pub(super) "))
            .or(Some(code))
            .map(|c| c.trim_start_matches("async ").trim_start_matches("const "))
        else {
            continue;
        };
        let Some(name) = rest.strip_prefix("fn ") else {
            continue;
        };
        let name: String = name
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if line.trim_end().ends_with(';') {
            continue; // a declaration in a trait
        }
        let close = format!("{}}}", " ".repeat(indent));
        let Some(length) = lines[at..].iter().position(|l| *l == close) else {
            continue;
        };
        if length + 1 > MAX_FN_LINES {
            long.push(format!("{name} ({} lines)", length + 1));
        }
    }
    long
}

#[test]
fn no_function_outside_tests_is_over_80_lines() {
    let root = workspace();
    let mut dirs = vec![
        root.join("kpl/src"),
        root.join("event/src"),
        root.join("shared/src"),
    ];
    for function in std::fs::read_dir(root.join("functions")).unwrap().flatten() {
        dirs.push(function.path().join("src"));
    }
    let mut long = Vec::new();
    for dir in dirs {
        for file in rust_files(&dir) {
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for function in long_functions(&text) {
                long.push(format!("{}: {function}", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:#?}"
    );
    let sample =
        "fn short() {\n    1\n}\n\nfn long() {\n".to_owned() + &"    x();\n".repeat(90) + "}\n";
    assert_eq!(long_functions(&sample), ["long (92 lines)"]);
}

/// The names under `[dependencies]` of the crate in `folder`.
fn dependencies(folder: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace().join(folder).join("Cargo.toml")).unwrap();
    let section = manifest
        .split("\n[")
        .find(|s| s.starts_with("dependencies]"))
        .unwrap();
    section
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['=', '.']).next().map(|n| n.trim().to_owned()))
        .collect()
}

#[test]
fn the_kpl_crate_stands_alone_without_aws_or_the_framework() {
    assert_eq!(dependencies("kpl"), ["bytes", "md5", "prost", "thiserror"]);
}

/// The event crate (records, decoding, samples, the response) builds without
/// the AWS SDK, SQLite or the Lambda runtime, so the fuzz targets and an
/// event reader compile none of them; the framework's old paths re-export it.
#[test]
fn the_event_crate_holds_the_event_and_needs_no_aws_sqlite_or_runtime() {
    assert_eq!(
        dependencies("event"),
        [
            "base64",
            "base64-simd",
            "bytes",
            "kpl",
            "serde",
            "serde_json",
            "thiserror",
            "tracing",
            "tokio"
        ]
    );
    let src = workspace().join("shared/src");
    for moved in ["record.rs", "decode", "sample.rs", "response.rs", "time.rs"] {
        assert!(!src.join(moved).exists(), "{moved} belongs in event/src");
    }
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    assert!(lib.contains("pub use shardline_event::{decode, record, response, sample, time};"));
}

/// `shardline-cli` (the local mapping, event files, `new`) and `shardline-esm`
/// build on the event crate and the Kinesis client, not on the framework: no
/// DynamoDB SDK, SQLite or Lambda runtime in `cargo install shardline-cli`.
/// The CLI writes its own version as the framework's into a new crate: the
/// two are released together.
#[test]
fn the_cli_and_the_mapping_model_need_only_the_event_crate_and_kinesis() {
    for folder in ["cli", "esm"] {
        let deps = dependencies(folder);
        assert!(
            deps.iter().any(|d| d == "shardline-event"),
            "{folder}: {deps:?}"
        );
        for heavy in [
            "shardline",
            "aws-sdk-dynamodb",
            "rusqlite",
            "lambda_runtime",
        ] {
            assert!(
                !deps.iter().any(|d| d == heavy),
                "{folder} depends on {heavy}"
            );
        }
    }
    let version = |folder: &str| {
        let manifest =
            std::fs::read_to_string(workspace().join(folder).join("Cargo.toml")).unwrap();
        manifest
            .lines()
            .find_map(|l| l.strip_prefix("version = ").map(str::to_owned))
            .unwrap()
    };
    assert_eq!(version("cli"), version("shared"));
    assert_eq!(format!("\"{}\"", shardline::VERSION), version("cli"));
}

/// The AWS clients use rustls on ring (`shardline::aws::https_client`): no
/// crate of the workspace brings the SDK's default TLS, whose C library
/// (aws-lc-sys) was the longest single step of every build. A dependency
/// that asks for `default-https-client` again puts it back in `Cargo.lock`.
#[test]
fn no_crate_builds_the_sdks_default_tls_library() {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap();
    for c_tls in ["aws-lc-sys", "aws-lc-rs"] {
        assert!(
            !lock.contains(&format!("name = \"{c_tls}\"")),
            "Cargo.lock has {c_tls}: `cargo tree -i {c_tls}` shows who asks for it"
        );
    }
    assert!(lock.contains("name = \"ring\""));
}

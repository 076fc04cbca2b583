//! The README's "Your own function" is what `shardline-cli new` writes: the
//! same `Cargo.toml`, the same `src/main.rs` (the README's block is compiled
//! as a doctest in `tests/src/lib.rs`; `scripts/user-build.sh` builds, tests,
//! invokes and lints the written crate against a fresh lock file).

use std::path::Path;

use shardline_tests::source::{binaries, clean_command};

/// The first block of `lang` after `heading` in `text`.
fn block<'a>(text: &'a str, heading: &str, lang: &str) -> &'a str {
    let section = &text[text.find(heading).expect("the heading")..];
    let fence = format!("```{lang}");
    let start = section.find(&fence).expect("the block") + fence.len();
    let body = &section[start..];
    let body = &body[body.find('\n').expect("a line") + 1..];
    &body[..body.find("```").expect("the block's end")]
}

/// Runs `shardline-cli new` with `args` in a fresh folder; returns the crate's folder.
fn new_crate(args: &[&str], name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("own-function-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = clean_command(&binaries().shardline)
        .arg("new")
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(name)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

#[test]
fn the_readme_shows_what_new_writes() {
    let readme = include_str!("../../../README.md");
    let orders = new_crate(&["orders"], "orders");
    assert_eq!(
        block(readme, "## Your own function", "toml"),
        read(&orders, "Cargo.toml")
    );
    let main = read(&orders, "src/main.rs");
    let main = main
        .strip_suffix("\n#[cfg(test)]\nmod tests;\n")
        .expect("main.rs ends with its test module");
    assert_eq!(block(readme, "## Your own function", "rust no_run"), main);
    // Without --local, the registry release, and the README says when it works.
    assert!(read(&orders, "Cargo.toml").contains(r#"package = "shardline-lambda", version = "#));
    assert!(read(&orders, "README.md").contains("this works once that crate is published"));
}

#[test]
fn local_points_at_the_checkout_and_a_taken_folder_is_refused() {
    let checkout = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let audit = new_crate(&["order-audit", "--local", checkout], "order-audit");
    let manifest = read(&audit, "Cargo.toml");
    let shared = std::fs::canonicalize(Path::new(checkout).join("shared")).unwrap();
    assert!(
        manifest.contains(&format!("path = \"{}\"", shared.display())),
        "{manifest}"
    );
    assert!(read(&audit, "src/main.rs").contains("pub struct OrderAudit;"));
    assert!(read(&audit, "template.yaml").contains("Binary: order-audit"));
    let again = clean_command(&binaries().shardline)
        .args(["new", "order-audit"])
        .current_dir(audit.parent().unwrap())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let not_a_checkout = clean_command(&binaries().shardline)
        .args(["new", "other", "--local", "/"])
        .current_dir(audit.parent().unwrap())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&not_a_checkout.stderr).contains("no Shardline checkout"));
}

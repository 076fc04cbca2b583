//! The README and `docs/` link where they say: every relative link names a
//! file that exists, and every `#anchor` a heading of that file (GitHub's
//! anchors: lower case, punctuation dropped, spaces to hyphens, `-1` for a
//! repeated heading). And the README's "On Lambda Managed Instances" says
//! what a team moving to it needs: the template's parameters, the local flag
//! and the measured numbers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A markdown file's lines outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut in_code = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            return false;
        }
        !in_code
    })
}

/// The anchors of a markdown file's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(text).filter(|line| line.starts_with('#')) {
        let base = slug(line.trim_start_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// The targets of a markdown file's `[text](target)` links.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for mut rest in prose(text) {
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn relative_links_and_anchors_in_the_readme_and_docs_resolve() {
    let root = workspace();
    let mut files = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            checked += 1;
            if !linked.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
                continue;
            }
            if anchor.is_empty() || linked.is_dir() {
                continue;
            }
            let headings = anchors(&std::fs::read_to_string(&linked).unwrap());
            if !headings.contains(anchor) {
                broken.push(format!("{}: {target} (no such heading)", file.display()));
            }
        }
    }
    assert!(checked > 40, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_tells_a_team_moving_to_lambda_managed_instances_what_it_needs() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let start = readme
        .find("\n## On Lambda Managed Instances\n")
        .expect("the section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    for needed in [
        "CapacityProviderArn",
        "PerExecutionEnvironmentMaxConcurrency",
        "ExecutionEnvironmentMemoryGiBPerVCpu",
        "--per-execution-environment-max-concurrency",
        "Send + Sync",
        "ShardBuffers",
        "requestId",
        "AWS_LAMBDA_MAX_CONCURRENCY",
        "invocations/s",
        "Peak RSS",
    ] {
        assert!(section.contains(needed), "the section names {needed}");
    }
}

#[test]
fn slugs_follow_githubs_rule() {
    assert_eq!(
        slug(" Develop against a live stream: `shardline-cli source`"),
        "develop-against-a-live-stream-shardline-cli-source"
    );
    assert_eq!(
        slug(" Aggregated fan-out (`FANOUT_AGGREGATE=on`)"),
        "aggregated-fan-out-fanout_aggregateon"
    );
    assert_eq!(
        slug(" 6. Lambda Managed Instances"),
        "6-lambda-managed-instances"
    );
    let twice = anchors("# A\n## A\n```\n# not a heading\n```\n");
    assert_eq!(twice, BTreeSet::from(["a".to_owned(), "a-1".to_owned()]));
}

//! `shardline-cli new NAME`: a function crate of its own, outside any
//! workspace, that builds, tests, runs locally and deploys as it is written.
//!
//! What it writes, in `./NAME`: `Cargo.toml` (the framework, the release
//! profile that keeps the binary small), `.cargo/config.toml`, `.gitignore`,
//! `README.md` (the next three commands), `src/main.rs` (a handler),
//! `src/tests.rs` (the handler on the embedded store), `events/batch.json` and
//! `events/poison.json`, and `template.yaml` (state table, role, mapping,
//! alarms). The templates are in `cli/templates/new/`.

use std::path::{Path, PathBuf};

use shardline_event::sample::{SampleRecord, event_json, sequence_number};

/// `shardline-cli new`'s options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NewArgs {
    /// The function's name: its folder, package, binary and Lambda name
    /// (a-z, 0-9, - and _, starting with a letter).
    pub name: String,
    /// Depend on the Shardline checkout at PATH (its `shared/` folder) instead
    /// of the registry release.
    #[arg(long, value_name = "PATH")]
    pub local: Option<PathBuf>,
}

/// Why a function crate was not written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NewError {
    /// A name Cargo, Lambda or CloudFormation would not take.
    #[error("{name:?} is not a usable function name: {why}")]
    Name {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The folder exists already: nothing is overwritten.
    #[error("{0} exists already: nothing written")]
    Exists(PathBuf),
    /// `--local` does not point at a Shardline checkout.
    #[error(
        "--local {path}: no Shardline checkout there (expected {path}/shared/Cargo.toml of shardline-lambda)"
    )]
    NotACheckout {
        /// The path given.
        path: PathBuf,
    },
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The framework's version requirement in a generated crate: this release's
/// major and minor (`0.1`), which Cargo reads as `^0.1`.
fn version_requirement() -> String {
    // Released together with the framework, at the same version.
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => version.to_owned(),
    }
}

/// What a generated crate's templates are filled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// The package, binary, folder and function name (`order-audit`).
    pub name: String,
    /// The crate's Rust name, as log targets show it (`order_audit`).
    pub crate_name: String,
    /// The handler type (`OrderAudit`).
    pub handler: String,
}

/// Names that the generated `main.rs` uses for other things.
const TAKEN_TYPES: [&str; 5] = ["App", "Handler", "HandlerError", "Record", "Item"];
/// Crate names that would shadow the ones a function uses.
const TAKEN_CRATES: [&str; 11] = [
    "shardline",
    "std",
    "core",
    "alloc",
    "test",
    "proc_macro",
    "serde",
    "tokio",
    "tracing",
    "self",
    "crate",
];

impl Names {
    /// Checks `name` and derives the others from it.
    ///
    /// # Errors
    /// [`NewError::Name`] for a name that is empty, too long, does not start
    /// with a lower-case letter, holds anything but `a-z`, `0-9`, `-` and `_`,
    /// or is a crate name the function itself uses.
    pub(crate) fn new(name: &str) -> Result<Self, NewError> {
        let bad = |why| NewError::Name {
            name: name.to_owned(),
            why,
        };
        if name.is_empty() || name.len() > 48 {
            // The alarm names add the stack name and a suffix to it; 48 keeps
            // them within CloudWatch's and IAM's limits.
            return Err(bad("expected 1 to 48 characters"));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(bad("expected a lower-case letter first"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(bad("expected only a-z, 0-9, - and _"));
        }
        let crate_name = name.replace('-', "_");
        if TAKEN_CRATES.contains(&crate_name.as_str()) {
            return Err(bad("a crate the function uses has that name"));
        }
        let mut handler: String = crate_name
            .split('_')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        if TAKEN_TYPES.contains(&handler.as_str()) {
            handler.push_str("Consumer");
        }
        Ok(Names {
            name: name.to_owned(),
            crate_name,
            handler,
        })
    }
}

/// Where the framework comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Framework {
    /// The crate registry's `shardline-lambda` (once it is published).
    Registry,
    /// A checkout's `shared/` folder (absolute).
    Checkout(PathBuf),
}

impl Framework {
    /// From `--local`: checks that the path is a Shardline checkout.
    ///
    /// # Errors
    /// [`NewError::NotACheckout`] when `PATH/shared/Cargo.toml` is missing or
    /// is not the framework's.
    pub(crate) fn from_local(path: Option<&Path>) -> Result<Self, NewError> {
        let Some(path) = path else {
            return Ok(Framework::Registry);
        };
        let not = || NewError::NotACheckout {
            path: path.to_owned(),
        };
        let manifest =
            std::fs::read_to_string(path.join("shared/Cargo.toml")).map_err(|_| not())?;
        if !manifest.contains("name = \"shardline-lambda\"") {
            return Err(not());
        }
        let shared = std::fs::canonicalize(path.join("shared")).map_err(|_| not())?;
        Ok(Framework::Checkout(shared))
    }

    /// The dependency line of the generated `Cargo.toml`.
    pub(crate) fn dependency(&self) -> String {
        match self {
            Framework::Registry => format!(
                "shardline = {{ package = \"shardline-lambda\", version = \"{}\" }}",
                version_requirement()
            ),
            Framework::Checkout(shared) => format!(
                "shardline = {{ package = \"shardline-lambda\", path = {} }}",
                toml_string(&shared.to_string_lossy())
            ),
        }
    }

    /// What the generated README says about that dependency.
    fn note(&self) -> String {
        match self {
            Framework::Registry => "The framework comes from the crate registry as `shardline-lambda` \
                (its Rust path is `shardline`): this works once that crate is published. Until \
                then, depend on a checkout of Shardline instead, in `Cargo.toml`:\n\n\
                ```toml\nshardline = { package = \"shardline-lambda\", path = \"/path/to/shardline/shared\" }\n```\n\n\
                (`shardline-cli new NAME --local /path/to/shardline` writes that line.)"
                .to_owned(),
            Framework::Checkout(shared) => format!(
                "The framework is the Shardline checkout at `{}` (a path dependency). Once \
                 `shardline-lambda` is published, `{}` in `Cargo.toml` takes it from the crate \
                 registry instead.",
                shared.display(),
                Framework::Registry.dependency()
            ),
        }
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The templates, by the file each becomes.
const TEMPLATES: [(&str, &str); 7] = [
    ("Cargo.toml", include_str!("../templates/new/Cargo.toml.in")),
    (
        ".cargo/config.toml",
        include_str!("../templates/new/cargo-config.toml"),
    ),
    (".gitignore", include_str!("../templates/new/gitignore")),
    ("README.md", include_str!("../templates/new/README.md.in")),
    ("src/main.rs", include_str!("../templates/new/main.rs.in")),
    ("src/tests.rs", include_str!("../templates/new/tests.rs.in")),
    (
        "template.yaml",
        include_str!("../templates/new/template.yaml.in"),
    ),
];

/// The sample events: items the handler takes, then a batch with a poison
/// record between two good ones.
fn events() -> [(&'static str, String); 2] {
    let item = |id: &str, amount: i64| format!(r#"{{"id":"{id}","amount":{amount}}}"#);
    let batch = [
        SampleRecord::new(sequence_number(1), item("a-1", 250)).key("a"),
        SampleRecord::new(sequence_number(2), item("b-1", 40)).key("b"),
        SampleRecord::new(sequence_number(3), item("a-2", -100)).key("a"),
    ];
    let poison = [
        SampleRecord::new(sequence_number(11), item("c-1", 7)).key("c"),
        SampleRecord::new(sequence_number(12), "not json").key("c"),
        SampleRecord::new(sequence_number(13), item("c-2", 8)).key("c"),
    ];
    let pretty = |records: &[SampleRecord]| {
        let mut text = serde_json::to_string_pretty(&event_json(records)).unwrap_or_default();
        text.push('\n');
        text
    };
    [
        ("events/batch.json", pretty(&batch)),
        ("events/poison.json", pretty(&poison)),
    ]
}

/// Every file of the crate, path and contents, filled in.
pub(crate) fn files(names: &Names, framework: &Framework) -> Vec<(String, String)> {
    let fill = |text: &str| {
        text.replace("{{name}}", &names.name)
            .replace("{{crate}}", &names.crate_name)
            .replace("{{Handler}}", &names.handler)
            .replace("{{shardline}}", &framework.dependency())
            .replace("{{dependency_note}}", &framework.note())
    };
    let mut files: Vec<(String, String)> = TEMPLATES
        .iter()
        .map(|(path, text)| ((*path).to_owned(), fill(text)))
        .collect();
    files.extend(
        events()
            .into_iter()
            .map(|(path, text)| (path.to_owned(), text)),
    );
    files
}

/// Writes the crate into `dir`, which must not exist.
///
/// # Errors
/// [`NewError::Exists`] when `dir` exists, [`NewError::Io`] when a file
/// cannot be written.
pub(crate) fn write(dir: &Path, files: &[(String, String)]) -> Result<(), NewError> {
    if dir.exists() {
        return Err(NewError::Exists(dir.to_owned()));
    }
    for (path, text) in files {
        let path = dir.join(path);
        let io = |source| NewError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
    }
    Ok(())
}

/// Runs `shardline-cli new`.
///
/// # Errors
/// See [`NewError`].
pub(crate) fn run(args: &NewArgs) -> Result<PathBuf, NewError> {
    let names = Names::new(&args.name)?;
    let framework = Framework::from_local(args.local.as_deref())?;
    let dir = PathBuf::from(&names.name);
    write(&dir, &files(&names, &framework))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_from_the_crate_name() {
        let names = Names::new("order-audit").unwrap();
        assert_eq!(names.crate_name, "order_audit");
        assert_eq!(names.handler, "OrderAudit");
        assert_eq!(Names::new("item").unwrap().handler, "ItemConsumer");
        assert_eq!(Names::new("orders2").unwrap().handler, "Orders2");
        for bad in [
            "",
            "Orders",
            "1orders",
            "or ders",
            "shardline",
            "tokio",
            "ör",
            &"a".repeat(49),
        ] {
            assert!(Names::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let names = Names::new("orders").unwrap();
        for framework in [
            Framework::Registry,
            Framework::Checkout("/x/\"y\"/shared".into()),
        ] {
            for (path, text) in files(&names, &framework) {
                assert!(!text.contains("{{"), "{path} keeps a placeholder");
            }
        }
    }

    /// The mapping publishes its own counts, and the function alarms on what
    /// it dropped and on failed invocations, both on that mapping.
    #[test]
    fn the_template_turns_on_the_mappings_metrics_and_alarms_on_them() {
        let names = Names::new("orders").unwrap();
        let files = files(&names, &Framework::Registry);
        let (_, template) = files
            .iter()
            .find(|(path, _)| *path == "template.yaml")
            .unwrap();
        assert!(template.contains("MetricsConfig:\n              Metrics: [EventCount]"));
        for metric in ["DroppedEventCount", "FailedInvokeEventCount"] {
            let alarm = template
                .split("\n\n")
                .find(|block| block.contains(&format!("MetricName: {metric}")))
                .unwrap_or_else(|| panic!("no alarm on {metric}"));
            assert!(alarm.contains("Name: EventSourceMappingUUID"), "{alarm}");
            // The mapping, or its twin's on Lambda Managed Instances.
            assert!(
                alarm.contains(
                    "Value: !If [Managed, !Ref ManagedFunctionStream, !Ref FunctionStream]"
                ),
                "{alarm}"
            );
        }
    }

    /// Lambda Managed Instances, optional: three parameters (classic Lambda by
    /// default), the function's twin with SAM's `CapacityProviderConfig` under
    /// the condition, and alarms and output on whichever function exists
    /// (tests/tests/it/template/managed_instances.rs checks the parsed template).
    #[test]
    fn the_template_offers_lambda_managed_instances_off_by_default() {
        let files = files(&Names::new("orders").unwrap(), &Framework::Registry);
        let (_, template) = files.iter().find(|(p, _)| p == "template.yaml").unwrap();
        for wanted in [
            "  CapacityProviderArn:\n    Type: String\n    Default: \"\"\n",
            "  PerExecutionEnvironmentMaxConcurrency:\n    Type: Number\n    Default: 8\n    MinValue: 1\n    MaxValue: 1600\n",
            "  ExecutionEnvironmentMemoryGiBPerVCpu:\n    Type: Number\n    Default: \"2\"\n    MinValue: 2\n    MaxValue: 8\n    AllowedValues: [\"2\", \"4\", \"8\"]\n",
            "  Managed: !Not [!Equals [!Ref CapacityProviderArn, \"\"]]\n",
            "  Classic: !Equals [!Ref CapacityProviderArn, \"\"]\n",
            "  Function:\n    Type: AWS::Serverless::Function\n    Condition: Classic\n",
            "  ManagedFunction:\n    Type: AWS::Serverless::Function\n    Condition: Managed\n",
            "      CapacityProviderConfig:\n        Arn: !Ref CapacityProviderArn\n        PerExecutionEnvironmentMaxConcurrency: !Ref PerExecutionEnvironmentMaxConcurrency\n        ExecutionEnvironmentMemoryGiBPerVCpu: !Ref ExecutionEnvironmentMemoryGiBPerVCpu\n      PublishToLatestPublished: true\n",
            "lambda:PassCapacityProvider",
        ] {
            assert!(template.contains(wanted), "no {wanted:?}");
        }
        assert_eq!(template.matches("CapacityProviderConfig:\n").count(), 1);
        // The function and its mapping are named only as the one that exists.
        let mut picks = 0;
        for line in template.lines() {
            for named in line.split("!Ref ").skip(1) {
                let name: String = named
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                if name.ends_with("Function") || name.ends_with("FunctionStream") {
                    let twin = name.strip_prefix("Managed").unwrap_or(&name);
                    let pick = format!("!If [Managed, !Ref Managed{twin}, !Ref {twin}]");
                    assert!(line.contains(&pick), "{line}");
                    picks += 1;
                }
            }
        }
        // The errors alarm, the two alarms on the mapping, the output; each
        // pick names both.
        assert_eq!(picks, 8);
    }

    #[test]
    fn the_dependency_line_is_the_registry_release_or_the_checkout() {
        assert_eq!(
            Framework::Registry.dependency(),
            format!(
                "shardline = {{ package = \"shardline-lambda\", version = \"{}\" }}",
                version_requirement()
            )
        );
        assert!(version_requirement().starts_with("0."));
        let local = Framework::Checkout("/src/shard\"line/shared".into()).dependency();
        assert_eq!(
            local,
            r#"shardline = { package = "shardline-lambda", path = "/src/shard\"line/shared" }"#
        );
    }

    #[test]
    fn the_sample_events_decode_and_hold_one_poison_record() {
        let [(_, batch), (_, poison)] = events();
        let batch = shardline_event::decode::decode_event(batch.as_bytes()).unwrap();
        assert_eq!(batch.items.len(), 3);
        let poison = shardline_event::decode::decode_event(poison.as_bytes()).unwrap();
        let not_json = poison
            .items
            .iter()
            .filter(|item| {
                serde_json::from_slice::<serde_json::Value>(&item.record().data).is_err()
            })
            .count();
        assert_eq!(not_json, 1);
    }

    #[test]
    fn an_existing_folder_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("shardline-new-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = write(&dir, &[("a".into(), "b".into())]).unwrap_err();
        assert!(matches!(err, NewError::Exists(_)), "{err}");
        assert!(!dir.join("a").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

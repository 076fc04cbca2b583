//! Lambda Managed Instances (issue 22, item 6), optional, in `template.yaml`
//! and in the template `shardline-cli new` writes:
//!
//! - `CapacityProviderArn` (empty, the default: classic Lambda),
//!   `PerExecutionEnvironmentMaxConcurrency` (1 to 1600) and
//!   `ExecutionEnvironmentMemoryGiBPerVCpu` (2, 4 or 8), the ranges of
//!   `AWS::Lambda::Function` `LambdaManagedInstancesCapacityProviderConfig`;
//! - SAM's transform refuses `CapacityProviderConfig: !If [...]`, so every
//!   function has a twin, `<Name>ManagedFunction` (condition `Managed`, a
//!   non-empty ARN) beside `<Name>Function` (condition `Classic`), equal but for
//!   SAM's `CapacityProviderConfig` (`Arn` and the two parameters),
//!   `PublishToLatestPublished` (the mapping invokes the unqualified function,
//!   which on LMI is `$LATEST.PUBLISHED`) and a `MemorySize` of one vCPU at the
//!   ratio (at least 2 GB);
//! - whatever names a function or its mapping (alarms, dashboards, outputs)
//!   takes `!If [Managed, <twin>, <function>]`: the one that exists;
//! - the one permission the docs ask, `lambda:PassCapacityProvider`, is the
//!   deployer's: the parameter says so, and no execution role changes.
//!
//! Checked on both templates and on copies with every parameter at a
//! non-default value (`scripts/lint-template.sh --non-default` lints the same).

use std::collections::BTreeMap;

use shardline_tests::yaml::{Yaml, parse};

use super::options::{FUNCTIONS, if_parts, is_ref, non_default_copy, non_default_variant, seq};
use super::workspace;

/// The pattern of `LambdaManagedInstancesCapacityProviderConfig`'s
/// `CapacityProviderArn` (CloudFormation reference), or empty.
const ARN_PATTERN: &str = "^$|^arn:aws[a-zA-Z-]*:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-[0-9]:[0-9]{12}:capacity-provider:[a-zA-Z0-9_-]+$";

/// The properties only a twin has (`MemorySize` differs between the two).
const LMI_PROPERTIES: [&str; 3] = [
    "CapacityProviderConfig",
    "PublishToLatestPublished",
    "MemorySize",
];

/// A function, its twin on Lambda Managed Instances, and its Kinesis event.
struct Pair {
    classic: String,
    twin: String,
    event: String,
}

fn repo_pairs() -> Vec<Pair> {
    FUNCTIONS
        .iter()
        .map(|(logical, _, _, event)| Pair {
            classic: format!("{logical}Function"),
            twin: format!("{logical}ManagedFunction"),
            event: (*event).to_owned(),
        })
        .collect()
}

fn new_pairs() -> Vec<Pair> {
    vec![Pair {
        classic: "Function".into(),
        twin: "ManagedFunction".into(),
        event: "Stream".into(),
    }]
}

fn repo_text() -> String {
    std::fs::read_to_string(workspace().join("template.yaml")).unwrap()
}

/// The template `shardline-cli new orders` writes.
fn new_text() -> String {
    let text = std::fs::read_to_string(workspace().join("cli/templates/new/template.yaml.in"))
        .unwrap()
        .replace("{{name}}", "orders")
        .replace("{{crate}}", "orders");
    assert!(!text.contains("{{"), "a placeholder left");
    text
}

fn scalar(node: Option<&Yaml>) -> Option<&str> {
    node.and_then(Yaml::as_str)
}

/// What is wrong with the parameters, conditions and memory mapping.
fn parameter_problems(template: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let parameter = |name: &str, key: &str| scalar(template.path(&["Parameters", name, key]));
    let expected = [
        ("CapacityProviderArn", "Type", "String"),
        ("CapacityProviderArn", "Default", ""),
        ("CapacityProviderArn", "MaxLength", "140"),
        ("CapacityProviderArn", "AllowedPattern", ARN_PATTERN),
        ("PerExecutionEnvironmentMaxConcurrency", "Type", "Number"),
        ("PerExecutionEnvironmentMaxConcurrency", "Default", "8"),
        ("PerExecutionEnvironmentMaxConcurrency", "MinValue", "1"),
        ("PerExecutionEnvironmentMaxConcurrency", "MaxValue", "1600"),
        ("ExecutionEnvironmentMemoryGiBPerVCpu", "Type", "Number"),
        ("ExecutionEnvironmentMemoryGiBPerVCpu", "Default", "2"),
        ("ExecutionEnvironmentMemoryGiBPerVCpu", "MinValue", "2"),
        ("ExecutionEnvironmentMemoryGiBPerVCpu", "MaxValue", "8"),
    ];
    for (name, key, value) in expected {
        if parameter(name, key) != Some(value) {
            problems.push(format!(
                "{name}.{key} is {:?}, not {value:?}",
                parameter(name, key)
            ));
        }
    }
    if !parameter("CapacityProviderArn", "Description")
        .is_some_and(|d| d.contains("lambda:PassCapacityProvider"))
    {
        problems.push(
            "CapacityProviderArn does not say the deployer needs lambda:PassCapacityProvider"
                .into(),
        );
    }
    let ratios = template.path(&[
        "Parameters",
        "ExecutionEnvironmentMemoryGiBPerVCpu",
        "AllowedValues",
    ]);
    let ratios: Vec<&str> = seq(ratios).iter().filter_map(Yaml::as_str).collect();
    if ratios != ["2", "4", "8"] {
        problems.push(format!("the memory ratios are {ratios:?}, not 2, 4, 8"));
    }
    for ratio in &ratios {
        let memory =
            scalar(template.path(&["Mappings", "ManagedInstanceMemory", ratio, "MemorySize"]));
        let gib: u32 = ratio.parse().unwrap();
        // One vCPU at the ratio; a function is at least 2 GB and 1 vCPU.
        if memory != Some(&(gib * 1024).to_string()) || gib * 1024 < 2048 {
            problems.push(format!(
                "ManagedInstanceMemory {ratio}: MemorySize {memory:?}"
            ));
        }
    }
    problems.extend(condition_problems(template));
    problems
}

/// What is wrong with the conditions `Managed` and `Classic`.
fn condition_problems(template: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let not_empty = |node: Option<&Yaml>| match node {
        Some(Yaml::Tagged(tag, args)) if tag == "!Equals" => matches!(
            seq(Some(args)),
            [arn, empty] if is_ref(Some(arn), "CapacityProviderArn") && empty.as_str() == Some("")
        ),
        _ => false,
    };
    let managed = template.path(&["Conditions", "Managed"]);
    if !matches!(managed, Some(Yaml::Tagged(tag, inner))
        if tag == "!Not" && matches!(seq(Some(inner)), [equals] if not_empty(Some(equals))))
    {
        problems.push(format!(
            "Managed is {managed:?}, not a non-empty CapacityProviderArn"
        ));
    }
    if !not_empty(template.path(&["Conditions", "Classic"])) {
        problems.push("Classic is not an empty CapacityProviderArn".into());
    }
    problems
}

/// `props` without the properties only a twin has.
fn without_lmi(props: &Yaml) -> Yaml {
    let kept = props
        .entries()
        .iter()
        .filter(|(k, _)| !LMI_PROPERTIES.contains(&k.as_str()))
        .cloned()
        .collect();
    Yaml::Map(kept)
}

/// What is wrong with the LMI properties of the twin `twin` (`props`).
fn lmi_property_problems(twin: &str, props: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    // SAM's shape: Arn, PerExecutionEnvironmentMaxConcurrency,
    // ExecutionEnvironmentMemoryGiBPerVCpu, each from its parameter.
    let config = props
        .get("CapacityProviderConfig")
        .map(Yaml::entries)
        .unwrap_or_default();
    let shape: Vec<(&str, bool)> = config
        .iter()
        .map(|(k, v)| {
            let parameter = if k == "Arn" { "CapacityProviderArn" } else { k };
            (k.as_str(), is_ref(Some(v), parameter))
        })
        .collect();
    let want = [
        ("Arn", true),
        ("PerExecutionEnvironmentMaxConcurrency", true),
        ("ExecutionEnvironmentMemoryGiBPerVCpu", true),
    ];
    if shape != want {
        problems.push(format!("{twin}: CapacityProviderConfig {shape:?}"));
    }
    if scalar(props.get("PublishToLatestPublished")) != Some("true") {
        problems.push(format!(
            "{twin}: $LATEST.PUBLISHED is not republished on update"
        ));
    }
    let memory = match props.get("MemorySize") {
        Some(Yaml::Tagged(tag, args)) if tag == "!FindInMap" => seq(Some(args)).to_vec(),
        _ => Vec::new(),
    };
    let by_ratio = matches!(memory.as_slice(), [map, ratio, key]
        if map.as_str() == Some("ManagedInstanceMemory")
            && is_ref(Some(ratio), "ExecutionEnvironmentMemoryGiBPerVCpu")
            && key.as_str() == Some("MemorySize"));
    if !by_ratio {
        problems.push(format!("{twin}: MemorySize is not one vCPU at the ratio"));
    }
    // The mapping invokes the unqualified function ($LATEST.PUBLISHED);
    // SAM refuses a capacity provider with a VPC or provisioned concurrency.
    for refused in [
        "AutoPublishAlias",
        "VpcConfig",
        "ProvisionedConcurrencyConfig",
    ] {
        if props.get(refused).is_some() {
            problems.push(format!("{twin}: {refused}"));
        }
    }
    problems
}

/// What is wrong with the functions and their twins.
fn twin_problems(template: &Yaml, pairs: &[Pair]) -> Vec<String> {
    let resources = template.get("Resources").unwrap();
    let mut problems = Vec::new();
    for Pair { classic, twin, .. } in pairs {
        let (Some(c), Some(t)) = (resources.get(classic), resources.get(twin)) else {
            problems.push(format!("no {classic} or no {twin}"));
            continue;
        };
        for (name, node, condition) in [(classic, c, "Classic"), (twin, t, "Managed")] {
            if scalar(node.get("Condition")) != Some(condition) {
                problems.push(format!("{name}: not under the condition {condition}"));
            }
        }
        let (cp, tp) = (c.get("Properties").unwrap(), t.get("Properties").unwrap());
        if LMI_PROPERTIES[..2].iter().any(|p| cp.get(p).is_some()) {
            problems.push(format!(
                "{classic}: a classic function with an LMI property"
            ));
        }
        problems.extend(lmi_property_problems(twin, tp));
        if without_lmi(cp) != without_lmi(tp) || c.get("Metadata") != t.get("Metadata") {
            problems.push(format!(
                "{twin} differs from {classic} beyond the LMI properties"
            ));
        }
    }
    problems
}

/// Whatever names a function or its mapping outside the two functions must be
/// `!If [Managed, <twin's>, <classic's>]`; counts the picks by classic name.
fn walk(
    node: &Yaml,
    at: &str,
    names: &[(String, String)],
    found: &mut Vec<String>,
    picks: &mut BTreeMap<String, usize>,
) {
    let named = |text: &str| {
        names
            .iter()
            .flat_map(|(c, t)| [c, t])
            .find(|n| text == n.as_str() || text.starts_with(&format!("{n}.")))
            .cloned()
    };
    match node {
        Yaml::Tagged(tag, value) if tag == "!If" => {
            let picked = if_parts(Some(node)).and_then(|(condition, then, otherwise)| {
                let (classic, twin) = names.iter().find(|(c, _)| is_ref(Some(otherwise), c))?;
                Some((condition == "Managed" && is_ref(Some(then), twin), classic))
            });
            match picked {
                Some((true, classic)) => *picks.entry(classic.clone()).or_default() += 1,
                Some((false, classic)) => found.push(format!("{at}: a wrong !If for {classic}")),
                None => walk(value, at, names, found, picks),
            }
        }
        Yaml::Tagged(tag, value) if tag == "!Ref" || tag == "!GetAtt" => {
            if let Some(name) = value.as_str().and_then(named) {
                found.push(format!("{at}: {tag} {name} whether or not it exists"));
            }
        }
        Yaml::Tagged(tag, value) if tag == "!Sub" => {
            let text = match &**value {
                Yaml::Seq(parts) => parts.first().and_then(Yaml::as_str),
                other => other.as_str(),
            };
            for variable in text.unwrap_or_default().split("${").skip(1) {
                if let Some(name) = named(variable.split('}').next().unwrap_or_default()) {
                    found.push(format!("{at}: ${{{name}}} whether or not it exists"));
                }
            }
            walk(value, at, names, found, picks);
        }
        Yaml::Tagged(_, value) => walk(value, at, names, found, picks),
        Yaml::Seq(items) => items.iter().for_each(|i| walk(i, at, names, found, picks)),
        Yaml::Map(entries) => {
            for (key, value) in entries {
                walk(value, &format!("{at}.{key}"), names, found, picks);
            }
        }
        Yaml::Scalar(_) | Yaml::Null => {}
    }
}

/// What names a function or a mapping that may not exist; how often each
/// classic name (function, mapping) is picked against its twin's.
fn reference_problems(template: &Yaml, pairs: &[Pair]) -> (Vec<String>, BTreeMap<String, usize>) {
    let mut names = Vec::new();
    for Pair {
        classic,
        twin,
        event,
    } in pairs
    {
        names.push((classic.clone(), twin.clone()));
        names.push((format!("{classic}{event}"), format!("{twin}{event}")));
    }
    let (mut found, mut picks) = (Vec::new(), BTreeMap::new());
    let functions: Vec<&str> = pairs
        .iter()
        .flat_map(|p| [p.classic.as_str(), p.twin.as_str()])
        .collect();
    for section in ["Resources", "Outputs"] {
        for (name, node) in template.get(section).map(Yaml::entries).unwrap_or_default() {
            if !functions.contains(&name.as_str()) {
                walk(node, name, &names, &mut found, &mut picks);
            }
        }
    }
    for (classic, _) in &names {
        if !picks.contains_key(classic) {
            found.push(format!("nothing picks {classic} or its twin"));
        }
    }
    (found, picks)
}

#[test]
fn the_capacity_provider_options_are_parameters_in_lambdas_ranges_classic_by_default() {
    for text in [repo_text(), new_text()] {
        let problems = parameter_problems(&parse(&text));
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn every_function_has_a_twin_on_managed_instances_equal_but_for_the_capacity_provider() {
    let (repo_variant, _) = non_default_variant();
    let (new_variant, values) =
        non_default_copy(&new_text(), "tests/new-template-non-default.params");
    for (text, pairs) in [
        (repo_text(), repo_pairs()),
        (repo_variant, repo_pairs()),
        (new_text(), new_pairs()),
        (new_variant.clone(), new_pairs()),
    ] {
        let problems = twin_problems(&parse(&text), &pairs);
        assert!(problems.is_empty(), "{problems:#?}");
    }
    // The generated template's copy takes every value, LMI on.
    let variant = parse(&new_variant);
    for (name, value) in &values {
        assert_eq!(
            scalar(variant.path(&["Parameters", name, "Default"])),
            Some(value.as_str()),
            "{name}"
        );
    }
    let arn = values
        .iter()
        .find(|(k, _)| k == "CapacityProviderArn")
        .map(|(_, v)| v.as_str());
    assert!(
        arn.is_some_and(|a| a.starts_with("arn:aws:lambda:") && a.contains(":capacity-provider:"))
    );
}

#[test]
fn alarms_dashboards_and_outputs_name_the_function_and_mapping_that_exist() {
    for (text, pairs, least) in [(repo_text(), repo_pairs(), 2), (new_text(), new_pairs(), 2)] {
        let (problems, picks) = reference_problems(&parse(&text), &pairs);
        assert!(problems.is_empty(), "{problems:#?}");
        // Each function: its errors alarm (and the new template's output);
        // each mapping: its two alarms (and the repo's dashboard).
        assert!(picks.values().all(|n| *n >= 1), "{picks:?}");
        let mappings = pairs
            .iter()
            .map(|p| picks[&format!("{}{}", p.classic, p.event)]);
        assert!(mappings.into_iter().all(|n| n >= least), "{picks:?}");
    }
}

#[test]
fn the_checks_find_a_missing_twin_a_wrong_config_and_a_reference_that_may_not_exist() {
    let text = repo_text()
        .replace("  LedgerManagedFunction:", "  LedgerManagedFunctionGone:")
        .replacen("        PerExecutionEnvironmentMaxConcurrency: !Ref PerExecutionEnvironmentMaxConcurrency\n", "", 1)
        .replace(
            "Value: !If [Managed, !Ref KeyCountsManagedFunctionKeyCounts, !Ref KeyCountsFunctionKeyCounts]",
            "Value: !Ref KeyCountsFunctionKeyCounts",
        )
        .replace("    Default: 8\n", "    Default: 2000\n");
    let template = parse(&text);
    let twins = twin_problems(&template, &repo_pairs());
    assert_eq!(twins.len(), 2, "{twins:#?}");
    assert!(
        twins[0].starts_with("FanoutManagedFunction: CapacityProviderConfig"),
        "{twins:#?}"
    );
    assert_eq!(twins[1], "no LedgerFunction or no LedgerManagedFunction");
    let (references, _) = reference_problems(&template, &repo_pairs());
    assert_eq!(references.len(), 2, "{references:#?}");
    assert!(
        references
            .iter()
            .all(|r| r.contains("!Ref KeyCountsFunctionKeyCounts whether or not"))
    );
    let parameters = parameter_problems(&template);
    assert_eq!(
        parameters,
        ["PerExecutionEnvironmentMaxConcurrency.Default is Some(\"2000\"), not \"8\""]
    );
}

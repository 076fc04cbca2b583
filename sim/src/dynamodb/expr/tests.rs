//! Parser and evaluator tests: every expression Shardline's stores write,
//! DynamoDB's validations, and the semantics of each operator.

use serde_json::{Value, json};

use super::*;
use crate::dynamodb::value::{Item, item_from_json};

fn context(names: Value, values: Value) -> Context {
    let mut request = serde_json::Map::new();
    if names.as_object().is_some_and(|n| !n.is_empty()) {
        request.insert("ExpressionAttributeNames".into(), names);
    }
    if values.as_object().is_some_and(|v| !v.is_empty()) {
        request.insert("ExpressionAttributeValues".into(), values);
    }
    Context::from_request(&Value::Object(request)).unwrap()
}

fn item(wire: Value) -> Item {
    item_from_json(&wire).unwrap()
}

/// Whether `text` holds for `target`, with `values` (and `names`).
fn holds(text: &str, names: Value, values: Value, target: &Item) -> bool {
    let mut ctx = context(names, values);
    let condition = parse_condition(text, ExprKind::Condition, &mut ctx).unwrap();
    ctx.check_all_used().unwrap();
    condition.eval(target)
}

fn error(text: &str, names: Value, values: Value) -> String {
    let mut ctx = context(names, values);
    let result =
        parse_condition(text, ExprKind::Condition, &mut ctx).and_then(|_| ctx.check_all_used());
    result.unwrap_err().message
}

fn update(text: &str, values: Value, old: &Item) -> Result<Item, String> {
    let mut ctx = context(json!({}), values);
    let parsed = parse_update(text, &mut ctx, &["pk", "sk"]).map_err(|e| e.message)?;
    ctx.check_all_used().map_err(|e| e.message)?;
    parsed.apply(old)
}

#[test]
fn the_progress_fence_orders_positions_as_strings() {
    let text = "version = :read AND (attribute_not_exists(checkpoint) OR checkpoint <= :cp)";
    let values = |read: u64, cp: &str| json!({":read": {"N": read.to_string()}, ":cp": {"S": cp}});
    let stored =
        item(json!({"pk": {"S": "p"}, "version": {"N": "3"}, "checkpoint": {"S": "0005.1"}}));
    assert!(holds(text, json!({}), values(3, "0005.1"), &stored));
    assert!(holds(text, json!({}), values(3, "0009.0"), &stored));
    assert!(
        !holds(text, json!({}), values(3, "0004.9"), &stored),
        "a checkpoint never moves back"
    );
    assert!(
        !holds(text, json!({}), values(2, "0009.0"), &stored),
        "a stale version loses"
    );
    let fresh = item(json!({"pk": {"S": "p"}, "version": {"N": "3"}}));
    assert!(holds(text, json!({}), values(3, "0001.0"), &fresh));
    let first = "attribute_not_exists(version)";
    assert!(holds(first, json!({}), json!({}), &Item::new()));
    assert!(!holds(first, json!({}), json!({}), &fresh));
}

#[test]
fn the_dedup_claim_condition() {
    let text = "attribute_not_exists(pk) OR #owner = :owner OR expires_ms < :now";
    let names = json!({"#owner": "owner"});
    let values =
        |owner: &str, now: u64| json!({":owner": {"S": owner}, ":now": {"N": now.to_string()}});
    let held = item(json!({"pk": {"S": "k"}, "owner": {"S": "a"}, "expires_ms": {"N": "1000"}}));
    assert!(
        holds(text, names.clone(), values("b", 5), &Item::new()),
        "a new key is won"
    );
    assert!(
        holds(text, names.clone(), values("a", 5), &held),
        "the owner keeps it"
    );
    assert!(
        !holds(text, names.clone(), values("b", 999), &held),
        "another owner loses"
    );
    assert!(
        holds(text, names.clone(), values("b", 1001), &held),
        "an expired claim is taken"
    );
    assert!(
        !holds(text, names, values("b", 1000), &held),
        "numbers compare as numbers"
    );
}

#[test]
fn the_quarantine_and_lineage_conditions() {
    let entry = item(json!({"pk": {"S": "q"}, "replay_started_at": {"N": "7"}}));
    let claim = "attribute_exists(pk) AND attribute_not_exists(replay_started_at)";
    assert!(!holds(claim, json!({}), json!({}), &entry));
    assert!(!holds(claim, json!({}), json!({}), &Item::new()));
    assert!(holds("attribute_exists(pk)", json!({}), json!({}), &entry));
    let lineage = "attribute_not_exists(lineage_rank) OR lineage_rank <= :rank";
    let shard = item(json!({"lineage_rank": {"N": "2"}}));
    assert!(!holds(
        lineage,
        json!({}),
        json!({":rank": {"N": "1"}}),
        &shard
    ));
    assert!(holds(
        lineage,
        json!({}),
        json!({":rank": {"N": "2"}}),
        &shard
    ));
}

#[test]
fn operators_and_functions() {
    let target = item(json!({
        "s": {"S": "hello"}, "n": {"N": "10"}, "b": {"B": "AQID"}, "ss": {"SS": ["x", "y"]},
        "l": {"L": [{"S": "e"}, {"M": {"deep": {"N": "1"}}}]}, "m": {"M": {"nested": {"S": "v"}}}
    }));
    let v = |wire: Value| json!({":v": wire});
    let check = |text: &str, values: Value| holds(text, json!({}), values, &target);
    assert!(check("s <> :v", v(json!({"S": "bye"}))));
    assert!(
        check("absent <> :v", v(json!({"S": "x"}))),
        "an absent attribute is unequal"
    );
    assert!(!check("absent = :v", v(json!({"S": "x"}))));
    assert!(
        !check("s < :v", v(json!({"N": "1"}))),
        "no order across types"
    );
    assert!(check(
        "n BETWEEN :v AND :w",
        json!({":v": {"N": "9.5"}, ":w": {"N": "1e1"}})
    ));
    assert!(check(
        "n IN (:v, :w)",
        json!({":v": {"N": "3"}, ":w": {"N": "10.0"}})
    ));
    assert!(check("begins_with(s, :v)", v(json!({"S": "he"}))));
    assert!(check("begins_with(b, :v)", v(json!({"B": "AQI="}))));
    assert!(check("contains(s, :v)", v(json!({"S": "ell"}))));
    assert!(check("contains(ss, :v)", v(json!({"S": "y"}))));
    assert!(check("contains(l, :v)", v(json!({"S": "e"}))));
    assert!(check("size(s) = :v", v(json!({"N": "5"}))));
    assert!(check("size(l) > :v", v(json!({"N": "1"}))));
    assert!(check("attribute_type(ss, :v)", v(json!({"S": "SS"}))));
    assert!(check("m.nested = :v", v(json!({"S": "v"}))));
    assert!(check("l[1].deep = :v", v(json!({"N": "1"}))));
    assert!(check(
        "NOT (n > :v) AND NOT absent = :v",
        v(json!({"N": "10"}))
    ));
    assert!(
        check("n = :v OR n = :v AND s = :v", v(json!({"N": "10"}))),
        "AND binds tighter"
    );
    assert!(
        check(
            "s = :v or n = :w",
            json!({":v": {"S": "x"}, ":w": {"N": "10"}})
        ),
        "keywords ignore case"
    );
}

#[test]
fn refuses_what_dynamodb_refuses() {
    let v = json!({":v": {"S": "x"}});
    let message = error("status = :v", json!({}), v.clone());
    assert!(
        message.contains("reserved keyword; reserved keyword: status"),
        "{message}"
    );
    let message = error("a = :v AND", json!({}), v.clone());
    assert!(
        message.starts_with("Invalid ConditionExpression: Syntax error; token: \"<EOF>\""),
        "{message}"
    );
    let message = error("a == :v", json!({}), v.clone());
    assert!(message.contains("Syntax error; token: \"=\""), "{message}");
    let message = error("a = :w", json!({}), v.clone());
    assert!(message.contains("attribute value: :w"), "{message}");
    let message = error("#a = :v", json!({}), v.clone());
    assert!(message.contains("attribute name: #a"), "{message}");
    let message = error("a = :v", json!({"#unused": "x"}), v.clone());
    assert!(
        message.contains("ExpressionAttributeNames unused in expressions: keys: {#unused}"),
        "{message}"
    );
    let message = error("attribute_exists(a)", json!({}), v.clone());
    assert!(
        message.contains("ExpressionAttributeValues unused"),
        "{message}"
    );
    let message = error("exists(a)", json!({}), json!({}));
    assert!(
        message.contains("Invalid function name; function: exists"),
        "{message}"
    );
    let message = error("a = begins_with(b, :v)", json!({}), v.clone());
    assert!(
        message.contains("not allowed to be used this way"),
        "{message}"
    );
    let message = error("attribute_type(a, :v)", json!({}), v.clone());
    assert!(message.contains("Invalid attribute type name"), "{message}");
    let message = error("  ", json!({}), json!({}));
    assert!(message.contains("can not be empty"), "{message}");
    let message = error("a = :v $", json!({}), v);
    assert!(message.contains("token: \"$\""), "{message}");
}

#[test]
fn shardline_updates_apply() {
    let old = item(
        json!({"pk": {"S": "p"}, "sk": {"S": "state"}, "head": {"S": "h"},
        "head_attempts": {"N": "2"}, "version": {"N": "1"}}),
    );
    let text = "SET version = :new, checkpoint = :cp, delivered = :delivered REMOVE head, head_attempts, failing_heads";
    let values = json!({":new": {"N": "2"}, ":cp": {"S": "0001.0"},
        ":delivered": {"M": {"d": {"S": "1-2"}}}});
    let new = update(text, values, &old).unwrap();
    assert_eq!(
        new,
        item(
            json!({"pk": {"S": "p"}, "sk": {"S": "state"}, "version": {"N": "2"},
        "checkpoint": {"S": "0001.0"}, "delivered": {"M": {"d": {"S": "1-2"}}}})
        )
    );
    let requeue =
        "SET reason = :reason, detail = :detail, attempts = :attempts REMOVE replay_started_at";
    let values =
        json!({":reason": {"S": "permanent"}, ":detail": {"S": "bad"}, ":attempts": {"N": "2"}});
    let entry =
        item(json!({"pk": {"S": "q"}, "replay_started_at": {"N": "5"}, "attempts": {"N": "1"}}));
    let new = update(requeue, values, &entry).unwrap();
    assert!(!new.contains_key("replay_started_at"));
    assert_eq!(new["attempts"].as_n::<u32>(), Some(2));
    let mut ctx = context(
        json!({"#status": "status"}),
        json!({":ended": {"S": "e"}, ":children": {"L": []}}),
    );
    let parsed = parse_update(
        "SET #status = :ended, children = :children",
        &mut ctx,
        &["pk"],
    )
    .unwrap();
    ctx.check_all_used().unwrap();
    assert_eq!(parsed.apply(&Item::new()).unwrap()["status"], Attr::s("e"));
}

#[test]
fn update_arithmetic_and_functions() {
    let old = item(
        json!({"n": {"N": "5"}, "l": {"L": [{"N": "1"}]}, "ss": {"SS": ["a", "b"]},
        "m": {"M": {"x": {"N": "1"}}}}),
    );
    let one = json!({":one": {"N": "1"}});
    assert_eq!(
        update("SET n = n + :one", one.clone(), &old).unwrap()["n"],
        Attr::n(6)
    );
    assert_eq!(
        update("SET n = n - :one", one.clone(), &old).unwrap()["n"],
        Attr::n(4)
    );
    assert_eq!(
        update("SET c = if_not_exists(c, :one)", one.clone(), &old).unwrap()["c"],
        Attr::n(1)
    );
    assert_eq!(
        update("SET n = if_not_exists(n, :one)", one.clone(), &old).unwrap()["n"],
        Attr::n(5)
    );
    assert_eq!(
        update("ADD n :one, fresh :one", one.clone(), &old).unwrap()["fresh"],
        Attr::n(1)
    );
    assert_eq!(
        update("REMOVE l[0] SET m.y = :one", one.clone(), &old).unwrap()["l"],
        Attr::L(vec![])
    );
    let appended = update(
        "SET l = list_append(l, :l)",
        json!({":l": {"L": [{"N": "2"}]}}),
        &old,
    )
    .unwrap();
    assert_eq!(appended["l"], Attr::L(vec![Attr::n(1), Attr::n(2)]));
    let shrunk = update("DELETE ss :s", json!({":s": {"SS": ["a"]}}), &old).unwrap();
    assert_eq!(shrunk["ss"], Attr::Ss(vec!["b".into()]));
    let gone = update("DELETE ss :s", json!({":s": {"SS": ["a", "b"]}}), &old).unwrap();
    assert!(!gone.contains_key("ss"), "an emptied set is removed");
    let added = update("ADD ss :s", json!({":s": {"SS": ["c"]}}), &old).unwrap();
    assert_eq!(
        added["ss"],
        Attr::Ss(vec!["a".into(), "b".into(), "c".into()])
    );
    let err = update("SET n = absent + :one", one.clone(), &old).unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
    let err = update("SET l = l + :one", one.clone(), &old).unwrap_err();
    assert!(err.contains("incorrect data type"), "{err}");
    let err = update("SET nope.x = :one", one, &old).unwrap_err();
    assert!(
        err.contains("document path provided in the update expression is invalid"),
        "{err}"
    );
}

#[test]
fn update_validations() {
    let one = json!({":one": {"N": "1"}});
    let err = |text: &str| update(text, one.clone(), &Item::new()).unwrap_err();
    assert!(err("SET pk = :one").contains("Cannot update attribute pk"));
    assert!(err("SET a = :one, a = :one").contains("Two document paths overlap"));
    assert!(err("SET a = :one REMOVE a.b").contains("Two document paths overlap"));
    assert!(err("SET a = :one SET b = :one").contains("can only be used once"));
    assert!(err("SET a :one").contains("Syntax error"));
    assert!(err("PUT a = :one").contains("Syntax error"));
    assert!(err("SET a = size(b)").contains("Invalid function name"));
    let wrong = update("ADD a :s", json!({":s": {"S": "x"}}), &Item::new()).unwrap_err();
    assert!(wrong.contains("operator: ADD"), "{wrong}");
}

#[test]
fn projections_keep_what_they_name() {
    let mut ctx = context(json!({"#d": "data"}), json!({}));
    let paths = parse_projection("pk, #d, m.x, l[1]", &mut ctx).unwrap();
    ctx.check_all_used().unwrap();
    let whole = item(
        json!({"pk": {"S": "p"}, "data": {"B": "AA=="}, "other": {"S": "o"},
        "m": {"M": {"x": {"N": "1"}, "y": {"N": "2"}}}, "l": {"L": [{"N": "0"}, {"N": "9"}]}}),
    );
    let projected = project(&whole, &paths);
    assert_eq!(
        projected,
        item(json!({"pk": {"S": "p"}, "data": {"B": "AA=="},
        "m": {"M": {"x": {"N": "1"}}}, "l": {"L": [{"N": "9"}]}}))
    );
}

#[test]
fn lexes_comparators_and_refuses_stray_characters() {
    let target = item(json!({"a": {"N": "1"}, "b": {"N": "2"}}));
    let values = json!({":one": {"N": "1"}, ":two": {"N": "2"}});
    let text = "a<=:one AND a>=:one AND a<>:two AND a<:two AND b>:one AND b=:two";
    assert!(holds(text, json!({}), values, &target));
    let message = error("é = :v", json!({}), json!({":v": {"S": "x"}}));
    assert!(message.contains("token: \"é\""), "{message}");
    let message = error("a = : v", json!({}), json!({":v": {"S": "x"}}));
    assert!(message.contains("Syntax error"), "{message}");
    let message = error("1a = :v", json!({}), json!({":v": {"S": "x"}}));
    assert!(message.contains("Syntax error"), "{message}");
}

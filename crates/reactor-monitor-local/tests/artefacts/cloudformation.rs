//! CloudFormation templates in YAML, read as their long-form JSON, for the artefact tests.

use std::path::PathBuf;

use serde_json::Value;

pub fn root() -> PathBuf {
    reactor_monitor_local::project_root().to_path_buf()
}

/// A YAML file as JSON, CloudFormation's `!Tag value` turned into `{"Fn::Tag": value}`
/// (`{"Ref": value}` for `!Ref`, `!GetAtt A.B` into `["A", "B"]`).
pub fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
    to_json(yaml)
}

pub fn to_json(yaml: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or(Value::Null),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_norway::to_string(&other)
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let key = if name == "Ref" {
                "Ref".to_owned()
            } else {
                format!("Fn::{name}")
            };
            let value = match (name, to_json(tagged.value)) {
                ("GetAtt", Value::String(s)) => match s.split_once('.') {
                    Some((resource, attribute)) => serde_json::json!([resource, attribute]),
                    None => Value::String(s),
                },
                (_, v) => v,
            };
            serde_json::json!({ key: value })
        }
    }
}

/// Fails with every problem found, one per line.
pub fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s)\n  - {}\n",
        problems.len(),
        problems.join("\n  - ")
    );
}

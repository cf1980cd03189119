//! The template's collector choices against the files they select: every CollectorConfigFile the
//! template allows is a file of otel-collector/ (and every file there is allowed), each
//! CollectorLayer's rule admits exactly the configurations whose `# layer:` line names that
//! layer, so every combination the template deploys is consistent; the layer versions are the
//! releases the Collector Builder manifests mirror; OTEL_PROPAGATORS follows the backend.

use crate::cloudformation::{assert_no_problems, load, root};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

fn layer_line(file: &str) -> Option<String> {
    let text = std::fs::read_to_string(root().join("otel-collector").join(file)).ok()?;
    text.lines()
        .next()?
        .strip_prefix("# layer: ")
        .map(|l| l.trim().to_string())
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_allowed_layer_and_configuration_pair_is_consistent() {
    let template = load("template.yaml");
    let mut problems = Vec::new();
    let allowed_files: BTreeSet<String> =
        strings(&template["Parameters"]["CollectorConfigFile"]["AllowedValues"])
            .into_iter()
            .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(root().join("otel-collector"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    if allowed_files != on_disk {
        problems.push(format!(
            "CollectorConfigFile allows {allowed_files:?}, otel-collector/ holds {on_disk:?}"
        ));
    }

    // layer -> the configurations its rule admits.
    let mut admitted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, rule) in template["Rules"].as_object().into_iter().flatten() {
        let condition = &rule["RuleCondition"]["Fn::Equals"];
        if condition[0] != json!({"Ref": "CollectorLayer"}) {
            continue;
        }
        let layer = condition[1].as_str().unwrap_or_default().to_string();
        for assertion in rule["Assertions"].as_array().into_iter().flatten() {
            let contains = &assertion["Assert"]["Fn::Contains"];
            if contains[1] != json!({"Ref": "CollectorConfigFile"}) {
                problems.push(format!(
                    "rule {name}: not a Contains over CollectorConfigFile"
                ));
                continue;
            }
            admitted
                .entry(layer.clone())
                .or_default()
                .extend(strings(&contains[0]));
        }
    }
    let layers: BTreeSet<String> =
        strings(&template["Parameters"]["CollectorLayer"]["AllowedValues"])
            .into_iter()
            .collect();
    if layers != admitted.keys().cloned().collect() {
        problems.push(format!(
            "CollectorLayer allows {layers:?}, rules exist for {:?}",
            admitted.keys().collect::<Vec<_>>()
        ));
    }
    for layer in &layers {
        for file in &allowed_files {
            let declared = layer_line(file);
            let rule_admits = admitted.get(layer).is_some_and(|f| f.contains(file));
            let consistent = declared.as_deref() == Some(layer.as_str());
            if rule_admits != consistent {
                problems.push(format!(
                    "CollectorLayer={layer} with CollectorConfigFile={file}: the rules {} it, the \
                     file's first line says `# layer: {}`",
                    if rule_admits { "admit" } else { "refuse" },
                    declared.unwrap_or_default()
                ));
            }
        }
    }
    let default_layer = template["Parameters"]["CollectorLayer"]["Default"]
        .as_str()
        .unwrap_or_default();
    let default_file = template["Parameters"]["CollectorConfigFile"]["Default"]
        .as_str()
        .unwrap_or_default();
    if layer_line(default_file).as_deref() != Some(default_layer) {
        problems.push(format!(
            "the defaults pair CollectorLayer={default_layer} with {default_file}"
        ));
    }
    assert_no_problems("collector layers and configurations", problems);
}

/// The release in a manifest's header: `...-ver-0-156-0` (ADOT) or `...-0_23_0` (community).
fn manifest_mentions(manifest: &str, needle: &str) -> bool {
    std::fs::read_to_string(root().join("otel-collector/builder").join(manifest))
        .unwrap()
        .contains(needle)
}

#[test]
fn the_layer_versions_are_the_releases_the_builder_manifests_mirror() {
    let template = load("template.yaml");
    let mut problems = Vec::new();
    for (parameter, manifest, prefix) in [
        (
            "AdotCollectorLayerVersion",
            "adot.yaml",
            "aws-otel-collector-<amd64|arm64>-",
        ),
        (
            "CommunityCollectorLayerVersion",
            "community.yaml",
            "opentelemetry-collector-<amd64|arm64>-",
        ),
    ] {
        let default = template["Parameters"][parameter]["Default"]
            .as_str()
            .unwrap_or_default();
        let release = default.split(':').next().unwrap_or_default();
        if release.is_empty() || !manifest_mentions(manifest, &format!("{prefix}{release}")) {
            problems.push(format!(
                "{parameter} defaults to {default}; otel-collector/builder/{manifest} mirrors \
                 another release (its header names {prefix}<release>)"
            ));
        }
    }
    assert_no_problems("collector layer versions", problems);
}

#[test]
fn the_function_joins_the_xray_trace_only_when_its_spans_go_to_xray() {
    let template = load("template.yaml");
    let function = &template["Resources"]["ReactorMonitorFunction"]["Properties"];
    let propagators = &function["Environment"]["Variables"]["OTEL_PROPAGATORS"];
    // !If [HasOtelPropagators, !Ref OtelPropagators, !If [IsJaegerCollectorConfig, a, b]]
    let by_config = &propagators["Fn::If"][2]["Fn::If"];
    assert_eq!(propagators["Fn::If"][1], json!({"Ref": "OtelPropagators"}));
    assert_eq!(by_config[0], "IsJaegerCollectorConfig");
    assert_eq!(by_config[1], "tracecontext");
    assert_eq!(by_config[2], "tracecontext,xray-lambda");
    assert_eq!(
        template["Conditions"]["IsJaegerCollectorConfig"],
        json!({"Fn::Equals": [{"Ref": "CollectorConfigFile"}, "collector-jaeger.yaml"]})
    );
    // The only configuration not exporting to X-Ray is the Jaeger one.
    for file in strings(&template["Parameters"]["CollectorConfigFile"]["AllowedValues"]) {
        let text = std::fs::read_to_string(root().join("otel-collector").join(&file)).unwrap();
        let to_xray =
            text.contains("xray.${env:AWS_REGION}.amazonaws.com") || text.contains("awsxray:");
        assert_eq!(to_xray, file != "collector-jaeger.yaml", "{file}");
    }
}

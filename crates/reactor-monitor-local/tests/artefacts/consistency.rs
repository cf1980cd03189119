//! The deployment artefacts name only what the code emits and indexes: every metric a dashboard
//! or alarm names is in `names::metrics::CATALOGUE` (or a real AWS metric), every X-Ray group
//! and the collector index the annotations of `names::spans::INDEXED`, every Logs Insights query
//! reads messages and fields the function logs, and every alarm reaches on-call.
//!
//! Each test collects every problem it finds and fails once, listing them with where they are.

use crate::cloudformation;
use cloudformation::{assert_no_problems, load, root};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use reactor_monitor::domain::{FlowType, Severity, Thresholds};
use reactor_monitor::telemetry::names::{metrics, spans};
use serde_json::{Map, Value};

const TEMPLATE: &str = "template.yaml";
const DASHBOARD: &str = "dashboards/template.yaml";
const ALARMS: &str = "alarms/template.yaml";
const COLLECTOR_DIR: &str = "otel-collector";

/// AWS service metrics the artefacts may name, with their dimension set and where they come
/// from (the service's CloudWatch metrics reference). A name outside this list is a typo or a
/// metric nobody checked exists.
const AWS_METRICS: &[(&str, &str, &[&str], &str)] = &[
    (
        "AWS/Kinesis",
        "GetRecords.IteratorAgeMilliseconds",
        &["StreamName"],
        KINESIS_DOC,
    ),
    (
        "AWS/Kinesis",
        "IncomingRecords",
        &["StreamName"],
        KINESIS_DOC,
    ),
    ("AWS/Lambda", "Invocations", &["FunctionName"], LAMBDA_DOC),
    ("AWS/Lambda", "Errors", &["FunctionName"], LAMBDA_DOC),
    ("AWS/Lambda", "Throttles", &["FunctionName"], LAMBDA_DOC),
    ("AWS/Lambda", "Duration", &["FunctionName"], LAMBDA_DOC),
    (
        "AWS/Lambda",
        "ConcurrentExecutions",
        &["FunctionName"],
        LAMBDA_DOC,
    ),
    ("AWS/Lambda", "IteratorAge", &["FunctionName"], LAMBDA_DOC),
    (
        "AWS/DynamoDB",
        "ThrottledRequests",
        &["TableName", "Operation"],
        DYNAMODB_DOC,
    ),
    (
        "AWS/DynamoDB",
        "SuccessfulRequestLatency",
        &["TableName", "Operation"],
        DYNAMODB_DOC,
    ),
    (
        "AWS/DynamoDB",
        "WriteThrottleEvents",
        &["TableName"],
        DYNAMODB_DOC,
    ),
    (
        "AWS/DynamoDB",
        "ReadThrottleEvents",
        &["TableName"],
        DYNAMODB_DOC,
    ),
    (
        "AWS/SNS",
        "NumberOfMessagesPublished",
        &["TopicName"],
        SNS_DOC,
    ),
    (
        "AWS/SNS",
        "NumberOfNotificationsFailed",
        &["TopicName"],
        SNS_DOC,
    ),
    (
        "AWS/Lambda",
        "OnFailureDestinationDeliveredEventCount",
        &["EventSourceMappingUUID"],
        LAMBDA_ESM_DOC,
    ),
    (
        "AWS/Lambda",
        "DroppedEventCount",
        &["EventSourceMappingUUID"],
        LAMBDA_ESM_DOC,
    ),
];
const KINESIS_DOC: &str = "Kinesis Data Streams developer guide: stream-level metrics";
const LAMBDA_DOC: &str =
    "Lambda developer guide: function metrics (invocation, performance, concurrency)";
const DYNAMODB_DOC: &str = "DynamoDB developer guide: DynamoDB metrics and dimensions";
const SNS_DOC: &str = "SNS developer guide: Amazon SNS metrics";
const LAMBDA_ESM_DOC: &str = "Lambda developer guide: event source mapping metrics (MetricsConfig \
     EventCount), viewed by event source mapping UUID";

/// Which nested-template parameter an AWS dimension must take its value from: the resource the
/// artefacts watch, not a literal name.
const DIMENSION_SOURCES: &[(&str, &str)] = &[
    ("StreamName", "StreamName"),
    ("FunctionName", "FunctionName"),
    ("TableName", "TableName"),
    ("TopicName", "AlertTopicName"),
    ("EventSourceMappingUUID", "EventSourceMappingUuid"),
];

/// Which resource of template.yaml a parameter passed to a nested application must refer to.
const PASSED_RESOURCES: &[(&str, &str)] = &[
    ("StreamName", "IndicationsStream"),
    ("FunctionName", "ReactorMonitorFunction"),
    ("TableName", "IndicationsTable"),
    ("AlertTopicName", "AlertTopic"),
    ("OnFailureBucketName", "OnFailureBucket"),
    // SAM names the mapping of a function's event <function><event>.
    (
        "EventSourceMappingUuid",
        "ReactorMonitorFunctionIndications",
    ),
    ("DeadLetterBucketName", "DeadLetterBucket"),
    ("FunctionLogGroupName", "FunctionLogGroup"),
    ("OnCallTopicArn", "OnCallTopic"),
];

/// CloudWatch's limit on an alarm description.
const MAX_ALARM_DESCRIPTION_CHARS: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_custom_metric_a_dashboard_or_alarm_names_is_emitted_with_that_dimension_set() {
    let mut problems = Vec::new();
    for m in all_metric_references()
        .iter()
        .filter(|m| !m.namespace.starts_with("AWS/"))
    {
        if m.namespace != metrics::NAMESPACE {
            problems.push(format!(
                "{}: namespace {:?}, but the function emits every metric in {:?} (names::metrics::NAMESPACE)",
                m.at,
                m.namespace,
                metrics::NAMESPACE
            ));
            continue;
        }
        let Some((_, dims)) = metrics::CATALOGUE.iter().find(|(name, _)| *name == m.name) else {
            let known: Vec<_> = metrics::CATALOGUE.iter().map(|(n, _)| *n).collect();
            problems.push(format!(
                "{}: {}/{} is not in names::metrics::CATALOGUE (the function emits {known:?})",
                m.at, m.namespace, m.name
            ));
            continue;
        };
        let emitted: BTreeSet<&str> = dims.iter().copied().collect();
        let named: BTreeSet<&str> = m.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        if emitted != named {
            problems.push(format!(
                "{}: {} with dimensions {named:?}, but the function emits it with exactly {emitted:?} \
                 (CloudWatch matches the whole dimension set: any other set has no data)",
                m.at, m.name
            ));
        }
        for (key, value) in &m.dimensions {
            if m.is_search {
                continue;
            }
            let allowed: Vec<&str> = match key.as_str() {
                metrics::DIM_FLOW_TYPE => FlowType::ALL.iter().map(|f| f.as_str()).collect(),
                // OpenEpisodes also counts silent reactors (`emf::silence_lines`).
                metrics::DIM_SEVERITY if m.name == metrics::OPEN_EPISODES => {
                    vec!["warning", "emergency", "silent"]
                }
                metrics::DIM_SEVERITY => [Severity::Warning, Severity::Emergency]
                    .iter()
                    .map(|s| s.as_str())
                    .collect(),
                _ => continue,
            };
            if !allowed.contains(&value.as_str()) {
                problems.push(format!(
                    "{}: {} {key}={value:?} is never emitted (values: {allowed:?})",
                    m.at, m.name
                ));
            }
        }
    }
    assert_no_problems("custom metrics", problems);
}

#[test]
fn every_aws_metric_a_dashboard_or_alarm_names_is_a_real_metric_of_its_namespace() {
    let role_actions = function_role_actions();
    let mut problems = Vec::new();
    for m in all_metric_references()
        .iter()
        .filter(|m| m.namespace.starts_with("AWS/"))
    {
        let Some((_, _, dims, _)) = AWS_METRICS
            .iter()
            .find(|(ns, name, _, _)| *ns == m.namespace && *name == m.name)
        else {
            let known: Vec<_> = AWS_METRICS
                .iter()
                .filter(|(ns, ..)| *ns == m.namespace)
                .map(|(_, n, ..)| *n)
                .collect();
            problems.push(format!(
                "{}: {}/{} is not in this test's AWS_METRICS (known in {}: {known:?}); check the \
                 service's metrics reference and add it with its source",
                m.at, m.namespace, m.name, m.namespace
            ));
            continue;
        };
        let expected: BTreeSet<&str> = dims.iter().copied().collect();
        let named: BTreeSet<&str> = m.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        if expected != named {
            problems.push(format!(
                "{}: {}/{} with dimensions {named:?}; AWS publishes it with {expected:?}",
                m.at, m.namespace, m.name
            ));
        }
        for (key, value) in &m.dimensions {
            if let Some((_, param)) = DIMENSION_SOURCES.iter().find(|(d, _)| d == key) {
                if *value != placeholder(param) {
                    problems.push(format!(
                        "{}: {}/{} {key}={value:?}: must be the watched resource, parameter {param}",
                        m.at, m.namespace, m.name
                    ));
                }
            } else if key == "Operation" {
                let action = format!("dynamodb:{value}");
                if !role_actions.contains(&action) {
                    problems.push(format!(
                        "{}: {}/{} Operation={value:?}: the function may not call it \
                         (FunctionRole allows {role_actions:?})",
                        m.at, m.namespace, m.name
                    ));
                }
            }
        }
    }
    assert_no_problems("AWS metrics", problems);
}

#[test]
fn every_x_ray_group_filters_on_an_indexed_annotation_and_each_flow_type_has_one() {
    let template = load(TEMPLATE);
    let mut problems = Vec::new();
    let mut flows_with_group = BTreeSet::new();
    for (name, group) in resources_of_type(&template, "AWS::XRay::Group") {
        let filter = group["Properties"]["FilterExpression"]
            .as_str()
            .unwrap_or_default();
        let annotations = annotation_comparisons(filter);
        if annotations.is_empty() {
            problems.push(format!(
                "{TEMPLATE} {name}: filter {filter:?} names no annotation"
            ));
        }
        for (key, value) in annotations {
            if !spans::INDEXED.contains(&key.as_str()) {
                problems.push(format!(
                    "{TEMPLATE} {name}: filter on annotation.{key}, which X-Ray does not index \
                     (names::spans::INDEXED: {:?}): the group would stay empty",
                    spans::INDEXED
                ));
            }
            if key == spans::FLOW_TYPE {
                match FlowType::ALL
                    .iter()
                    .find(|f| Some(f.as_str()) == value.as_deref())
                {
                    Some(flow) => {
                        flows_with_group.insert(flow.as_str());
                    }
                    None => problems.push(format!(
                        "{TEMPLATE} {name}: flow_type {value:?} is not a flow type ({:?})",
                        FlowType::ALL.map(|f| f.as_str())
                    )),
                }
            }
        }
    }
    for flow in FlowType::ALL {
        if !flows_with_group.contains(flow.as_str()) {
            problems.push(format!("{TEMPLATE}: no X-Ray group for flow type {flow}"));
        }
    }
    // Annotation keys the dashboard's text tells people to filter on.
    for key in annotation_keys(&dashboard_body().to_string()) {
        if !spans::INDEXED.contains(&key.as_str()) {
            problems.push(format!(
                "{DASHBOARD}: suggests filtering on annotation.{key}, which X-Ray does not index"
            ));
        }
    }
    assert_no_problems("X-Ray groups", problems);
}

#[test]
fn the_collector_indexes_exactly_the_annotations_the_code_marks_as_indexed() {
    let mut indexed = BTreeSet::from(spans::INDEXED);
    assert_eq!(
        indexed.len(),
        spans::INDEXED.len(),
        "spans::INDEXED repeats a key"
    );
    indexed.retain(|k| !k.contains('.'));
    assert_eq!(
        indexed.len(),
        spans::INDEXED.len(),
        "X-Ray annotation keys cannot contain '.': {:?}",
        spans::INDEXED
    );

    let mut problems = Vec::new();
    let mut exporters = 0;
    for path in collector_configs() {
        let config = load(&path);
        let Some(exporter_map) = config["exporters"].as_object() else {
            continue;
        };
        for (name, exporter) in exporter_map {
            if name.split('/').next() != Some("awsxray") {
                continue;
            }
            exporters += 1;
            let listed: Vec<&str> = exporter["indexed_attributes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut sorted = listed.clone();
            sorted.sort_unstable();
            let mut expected = spans::INDEXED.to_vec();
            expected.sort_unstable();
            if sorted != expected {
                problems.push(format!(
                    "{path} exporters.{name}.indexed_attributes = {listed:?}, \
                     names::spans::INDEXED = {:?}",
                    spans::INDEXED
                ));
            }
            if exporter["index_all_attributes"] == Value::Bool(true) {
                problems.push(format!(
                    "{path} exporters.{name}: index_all_attributes makes every attribute an \
                     annotation (X-Ray allows 50 per trace)"
                ));
            }
        }
    }
    if exporters == 0 {
        problems.push(format!("{COLLECTOR_DIR}/: no awsxray exporter at all"));
    }
    assert_no_problems("collector", problems);
}

#[test]
fn every_alarm_action_targets_the_on_call_topic_and_every_alarm_reaches_it() {
    let alarms = load(ALARMS);
    let on_call = placeholder("OnCallTopicArn");
    let mut problems = Vec::new();
    let mut paging = BTreeSet::new();
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let all = all_alarms(&alarms);
    for (name, alarm) in &all {
        let props = &alarm["Properties"];
        let mut has_actions = false;
        for key in ["AlarmActions", "OKActions", "InsufficientDataActions"] {
            for action in props[key].as_array().into_iter().flatten() {
                has_actions = true;
                if text_of(action) != on_call {
                    problems.push(format!(
                        "{ALARMS} {name}.{key}: {action} is not the on-call topic (Ref OnCallTopicArn)"
                    ));
                }
            }
        }
        if !props["AlarmActions"]
            .as_array()
            .is_none_or(|a| a.is_empty())
        {
            paging.insert(name.clone());
        }
        if props["ActionsEnabled"] == Value::Bool(false) && has_actions {
            problems.push(format!("{ALARMS} {name}: actions disabled"));
        }
        if alarm["Type"] == "AWS::CloudWatch::CompositeAlarm" {
            let rule = sub_template(&props["AlarmRule"]);
            for child in sub_references(&rule) {
                if all.iter().any(|(n, _)| *n == child) {
                    members.entry(child).or_default().push(name.clone());
                } else {
                    problems.push(format!(
                        "{ALARMS} {name}.AlarmRule: ${{{child}}} is not an alarm of this template"
                    ));
                }
            }
        }
    }
    for (name, _) in &all {
        let via_composite = members
            .get(name)
            .is_some_and(|parents| parents.iter().any(|p| paging.contains(p)));
        if !paging.contains(name) && !via_composite {
            problems.push(format!(
                "{ALARMS} {name}: reaches nobody (no AlarmActions, and no paging composite alarm names it)"
            ));
        }
    }

    let template = load(TEMPLATE);
    let passed =
        &nested_application(&template, ALARMS)["Properties"]["Parameters"]["OnCallTopicArn"];
    if passed != &serde_json::json!({"Ref": "OnCallTopic"}) {
        problems.push(format!(
            "{TEMPLATE}: the alarms application's OnCallTopicArn is {passed}, not Ref OnCallTopic"
        ));
    }
    assert_no_problems("alarm actions", problems);
}

#[test]
fn every_alarm_tells_on_call_what_it_means_and_what_to_do_first() {
    let alarms = load(ALARMS);
    let body = dashboard_body();
    let headings = dashboard_headings(&body);
    let sources = rust_sources();
    let mut problems = Vec::new();
    for (name, alarm) in all_alarms(&alarms) {
        let description = &alarm["Properties"]["AlarmDescription"];
        let text = resolve_sub(&alarms, description, &BTreeMap::new(), |_| {
            "x".repeat(48) // a long resource name
        });
        if text.trim().is_empty() {
            problems.push(format!("{ALARMS} {name}: no AlarmDescription"));
            continue;
        }
        if !text.contains("First:") {
            problems.push(format!(
                "{ALARMS} {name}: the description must say what to do first (\"First: ...\")"
            ));
        }
        let chars = text.chars().count();
        if chars > MAX_ALARM_DESCRIPTION_CHARS {
            problems.push(format!(
                "{ALARMS} {name}: description of {chars} characters with long names filled in; \
                 CloudWatch takes at most {MAX_ALARM_DESCRIPTION_CHARS}"
            ));
        }
        // Quoted phrases point on-call at a dashboard widget or a log message: both must exist.
        for quoted in quoted_phrases(&text) {
            let on_dashboard = headings.iter().any(|h| h.starts_with(&quoted));
            let in_code = sources.contains(&format!("\"{quoted}")); // a literal, or its start
            if !on_dashboard && !in_code {
                problems.push(format!(
                    "{ALARMS} {name}: description quotes {quoted:?}, which is neither a dashboard \
                     widget title or heading nor a string the code logs"
                ));
            }
        }
    }
    assert_no_problems("alarm descriptions", problems);
}

#[test]
fn the_logs_insights_queries_read_messages_and_fields_the_function_writes() {
    let sources = rust_sources();
    let catalogue: BTreeSet<&str> = metrics::CATALOGUE
        .iter()
        .flat_map(|(name, dims)| std::iter::once(*name).chain(dims.iter().copied()))
        .collect();
    let flattened = sources.contains("flatten_event(true)");
    let logged_fields = tracing_fields(&sources);
    let mut problems = Vec::new();
    let mut queries = 0;
    for widget in widgets(&dashboard_body()) {
        if widget["type"] != "log" {
            continue;
        }
        queries += 1;
        let title = widget["properties"]["title"].as_str().unwrap_or("?");
        let at = format!("{DASHBOARD} log widget {title:?}");
        let query = widget["properties"]["query"].as_str().unwrap_or_default();
        let source = format!("SOURCE '{}'", placeholder("FunctionLogGroupName"));
        if !query.starts_with(&source) {
            problems.push(format!(
                "{at}: must start with {source} (the function's log group)"
            ));
        }
        for message in compared_strings(query, "fields.message") {
            if !sources.contains(&format!("\"{message}\"")) {
                problems.push(format!(
                    "{at}: filters on the message {message:?}, which no code logs"
                ));
            }
        }
        for field in dotted_names(query, "fields.") {
            if flattened {
                problems.push(format!(
                    "{at}: reads fields.{field}, but the logs flatten events (flatten_event(true)): \
                     fields are top-level"
                ));
            } else if field != "message" && !logged_fields.contains(&field) {
                problems.push(format!("{at}: reads fields.{field}, which no log line has"));
            }
        }
        // Bare capitalised names are fields of the embedded-metric-format lines.
        for word in bare_words(query) {
            let capitalised = word.starts_with(|c: char| c.is_ascii_uppercase());
            let keyword = word.chars().all(|c| c.is_ascii_uppercase());
            if capitalised && !keyword && !catalogue.contains(word.as_str()) {
                problems.push(format!(
                    "{at}: reads {word}, which is no metric or dimension of the EMF lines"
                ));
            }
        }
    }
    if queries == 0 {
        problems.push(format!("{DASHBOARD}: no Logs Insights widget"));
    }
    assert_no_problems("Logs Insights queries", problems);
}

#[test]
fn the_dashboard_has_the_design_views_and_draws_the_alert_thresholds() {
    let body = dashboard_body();
    let headings = dashboard_headings(&body);
    let mut problems = Vec::new();
    for view in [
        "Flows",
        "Reactors",
        "Pipeline health",
        "Sinks",
        "Recent parse errors",
    ] {
        if !headings.iter().any(|h| h.starts_with(view)) {
            problems.push(format!("{DASHBOARD}: no widget or heading {view:?}"));
        }
    }
    let reactors = widgets(&body).into_iter().find(|w| {
        w["properties"]["metrics"]
            .to_string()
            .contains(metrics::MAX_TEMPERATURE)
    });
    match reactors {
        None => problems.push(format!(
            "{DASHBOARD}: no widget shows {} per reactor",
            metrics::MAX_TEMPERATURE
        )),
        Some(widget) => {
            let drawn: Vec<f64> = widget["properties"]["annotations"]["horizontal"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["value"].as_f64())
                .collect();
            for threshold in [
                Thresholds::DEFAULT_WARNING_C,
                Thresholds::DEFAULT_EMERGENCY_C,
            ] {
                if !drawn.contains(&threshold) {
                    problems.push(format!(
                        "{DASHBOARD}: the {} widget draws lines at {drawn:?}, not at the {threshold} °C threshold",
                        metrics::MAX_TEMPERATURE
                    ));
                }
            }
        }
    }
    let template = load(TEMPLATE);
    for (param, value) in [
        ("WarningThresholdC", Thresholds::DEFAULT_WARNING_C),
        ("EmergencyThresholdC", Thresholds::DEFAULT_EMERGENCY_C),
    ] {
        if number(&template["Parameters"][param]["Default"]) != Some(value) {
            problems.push(format!(
                "{TEMPLATE}: parameter {param} defaults to {}, the function to {value}",
                template["Parameters"][param]["Default"]
            ));
        }
    }
    // Every X-Ray group is linked by name.
    let text = body.to_string();
    for (name, group) in resources_of_type(&template, "AWS::XRay::Group") {
        let group_name = group["Properties"]["GroupName"]
            .as_str()
            .unwrap_or_default();
        if !text.contains(group_name) {
            problems.push(format!(
                "{DASHBOARD}: no link to the X-Ray group {group_name} ({TEMPLATE} {name})"
            ));
        }
    }
    assert_no_problems("dashboard", problems);
}

#[test]
fn every_nested_application_gets_the_parameters_it_declares_from_the_resources_it_watches() {
    let template = load(TEMPLATE);
    let mut problems = Vec::new();
    for path in [DASHBOARD, ALARMS] {
        let nested = load(path);
        let app = nested_application(&template, path);
        let passed = app["Properties"]["Parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let declared = nested["Parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, param) in &declared {
            if param.get("Default").is_none() && !passed.contains_key(name) {
                problems.push(format!(
                    "{TEMPLATE}: the application of {path} is not passed {name} (no default)"
                ));
            }
        }
        for (name, value) in &passed {
            if !declared.contains_key(name) {
                problems.push(format!(
                    "{TEMPLATE}: passes {name} to {path}, which declares no such parameter"
                ));
            }
            if let Some((_, resource)) = PASSED_RESOURCES.iter().find(|(p, _)| p == name)
                && referenced_resource(value).as_deref() != Some(*resource)
            {
                problems.push(format!(
                    "{TEMPLATE}: {path} parameter {name} = {value}, expected a Ref or GetAtt of {resource}"
                ));
            }
        }
        // Literal trace-group names must be the groups' own names.
        let groups: Vec<String> = resources_of_type(&template, "AWS::XRay::Group")
            .into_iter()
            .filter_map(|(_, g)| g["Properties"]["GroupName"].as_str().map(String::from))
            .collect();
        for (name, value) in passed.iter().filter(|(n, _)| n.ends_with("TraceGroup")) {
            if !value
                .as_str()
                .is_some_and(|v| groups.iter().any(|g| g == v))
            {
                problems.push(format!(
                    "{TEMPLATE}: {path} parameter {name} = {value} names no X-Ray group ({groups:?})"
                ));
            }
        }
    }
    assert_no_problems("nested applications", problems);
}

// ---------------------------------------------------------------------------------------------
// Metric references in the dashboard and the alarms
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct MetricRef {
    at: String,
    namespace: String,
    name: String,
    dimensions: Vec<(String, String)>,
    /// A SEARCH expression: dimensions are a schema, without values.
    is_search: bool,
}

fn all_metric_references() -> Vec<MetricRef> {
    let mut refs = dashboard_metrics(&dashboard_body());
    refs.extend(alarm_metrics(&load(ALARMS)));
    assert!(
        refs.len() > 10,
        "found only {} metric references: is the parsing still right?",
        refs.len()
    );
    refs
}

fn dashboard_metrics(body: &Value) -> Vec<MetricRef> {
    let mut refs = Vec::new();
    for widget in widgets(body) {
        let title = widget["properties"]["title"].as_str().unwrap_or("?");
        let at = format!("{DASHBOARD} widget {title:?}");
        for row in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let items = row.as_array().cloned().unwrap_or_default();
            let strings: Vec<String> = items
                .iter()
                .take_while(|v| v.is_string())
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect();
            if strings.iter().any(|s| s == ".") {
                refs.push(MetricRef {
                    at: format!("{at} (write each metric out in full, no \".\" shorthand)"),
                    namespace: "?".into(),
                    name: ".".into(),
                    dimensions: vec![],
                    is_search: false,
                });
                continue;
            }
            if strings.len() >= 2 {
                refs.push(MetricRef {
                    at: at.clone(),
                    namespace: strings[0].clone(),
                    name: strings[1].clone(),
                    dimensions: strings[2..]
                        .chunks(2)
                        .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
                        .collect(),
                    is_search: false,
                });
            }
            if let Some(options) = items.last().and_then(Value::as_object)
                && let Some(expression) = options.get("expression").and_then(Value::as_str)
            {
                refs.extend(search_metrics(expression, &at));
            }
        }
    }
    refs
}

/// `SEARCH('{Namespace,Dim} MetricName="Name"', 'Stat', period)`: the schema and the name.
fn search_metrics(expression: &str, at: &str) -> Vec<MetricRef> {
    let mut refs = Vec::new();
    for search in expression.split("SEARCH(").skip(1) {
        let schema = search
            .split_once('{')
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(schema, _)| schema)
            .unwrap_or_default();
        let mut parts = schema
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned());
        let namespace = parts.next().unwrap_or_default();
        let dimensions = parts.map(|d| (d, String::new())).collect();
        let name = compared_strings(search, "MetricName").into_iter().next();
        refs.push(MetricRef {
            at: format!("{at} SEARCH"),
            namespace,
            name: name.unwrap_or_else(|| "<SEARCH names no MetricName=\"...\">".into()),
            dimensions,
            is_search: true,
        });
    }
    refs
}

fn alarm_metrics(alarms: &Value) -> Vec<MetricRef> {
    let mut refs = Vec::new();
    for (name, alarm) in resources_of_type(alarms, "AWS::CloudWatch::Alarm") {
        let props = &alarm["Properties"];
        let mut metric_defs = Vec::new();
        if props.get("MetricName").is_some() {
            metric_defs.push((format!("{ALARMS} {name}"), props.clone()));
        }
        for query in props["Metrics"].as_array().into_iter().flatten() {
            let metric = &query["MetricStat"]["Metric"];
            if !metric.is_null() {
                let id = query["Id"].as_str().unwrap_or("?");
                metric_defs.push((format!("{ALARMS} {name} metric {id}"), metric.clone()));
            }
        }
        for (at, metric) in metric_defs {
            refs.push(MetricRef {
                at,
                namespace: text_of(&metric["Namespace"]),
                name: text_of(&metric["MetricName"]),
                dimensions: metric["Dimensions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| (text_of(&d["Name"]), text_of(&d["Value"])))
                    .collect(),
                is_search: false,
            });
        }
    }
    refs
}

fn all_alarms(alarms: &Value) -> Vec<(String, Value)> {
    let mut all = resources_of_type(alarms, "AWS::CloudWatch::Alarm");
    all.extend(resources_of_type(alarms, "AWS::CloudWatch::CompositeAlarm"));
    assert!(!all.is_empty(), "{ALARMS} defines no alarm");
    all
}

fn function_role_actions() -> BTreeSet<String> {
    let template = load(TEMPLATE);
    let mut actions = BTreeSet::new();
    for policy in template["Resources"]["FunctionRole"]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for statement in policy["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
        {
            match &statement["Action"] {
                Value::String(a) => {
                    actions.insert(a.clone());
                }
                Value::Array(list) => {
                    actions.extend(list.iter().filter_map(Value::as_str).map(String::from))
                }
                _ => {}
            }
        }
    }
    actions
}

// ---------------------------------------------------------------------------------------------
// The dashboard body: Fn::Sub over a JSON document
// ---------------------------------------------------------------------------------------------

/// The dashboard body as CloudFormation would send it: Fn::Sub resolved with the parameters the
/// parent passes as literals, the defaults of Number parameters, and `<Name>` for the rest.
fn dashboard_body() -> Value {
    let dashboard = load(DASHBOARD);
    let template = load(TEMPLATE);
    let passed = nested_application(&template, DASHBOARD)["Properties"]["Parameters"].clone();
    let (_, resource) = resources_of_type(&dashboard, "AWS::CloudWatch::Dashboard")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{DASHBOARD}: no AWS::CloudWatch::Dashboard"));
    let literals: BTreeMap<String, String> = passed
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .collect();
    let text = resolve_sub(
        &dashboard,
        &resource["Properties"]["DashboardBody"],
        &literals,
        placeholder,
    );
    serde_json::from_str(&text).unwrap_or_else(|e| {
        let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
        panic!("{DASHBOARD}: the dashboard body is not JSON once substituted: {e}\n  {line}")
    })
}

fn widgets(body: &Value) -> Vec<Value> {
    body["widgets"].as_array().cloned().unwrap_or_default()
}

/// Widget titles and the headings of text widgets.
fn dashboard_headings(body: &Value) -> Vec<String> {
    let mut headings = Vec::new();
    for widget in widgets(body) {
        if let Some(title) = widget["properties"]["title"].as_str() {
            headings.push(title.to_owned());
        }
        let markdown = widget["properties"]["markdown"]
            .as_str()
            .unwrap_or_default();
        for line in markdown.lines() {
            if let Some(heading) = line.strip_prefix('#') {
                headings.push(heading.trim_start_matches('#').trim().to_owned());
            }
        }
    }
    headings
}

/// Resolves `Fn::Sub` (string or [string, variables]): `${AWS::...}` pseudo parameters,
/// variables, parameters (literal values the parent passes, Number defaults, else `fallback`).
fn resolve_sub(
    template: &Value,
    sub: &Value,
    literals: &BTreeMap<String, String>,
    fallback: impl Fn(&str) -> String,
) -> String {
    let (text, variables) = match &sub["Fn::Sub"] {
        Value::String(s) => (s.clone(), Map::new()),
        Value::Array(parts) => (
            parts[0].as_str().unwrap_or_default().to_owned(),
            parts
                .get(1)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        ),
        _ => return text_of(sub),
    };
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("unclosed ${{ in Fn::Sub: {after:.40}"));
        let name = &after[..end];
        let value = if let Some(literal) = name.strip_prefix('!') {
            format!("${{{literal}}}")
        } else if let Some(pseudo) = name.strip_prefix("AWS::") {
            match pseudo {
                "Region" => "us-east-1".into(),
                "AccountId" => "123456789012".into(),
                "Partition" => "aws".into(),
                _ => format!("<AWS::{pseudo}>"),
            }
        } else if variables.contains_key(name) {
            placeholder(name)
        } else if let Some(literal) = literals.get(name) {
            literal.clone()
        } else if let Some(param) = template["Parameters"].get(name) {
            match (&param["Type"], number(&param["Default"])) {
                (Value::String(t), Some(default)) if t == "Number" => default.to_string(),
                _ => fallback(name),
            }
        } else if template["Resources"]
            .get(name.split('.').next().unwrap_or(name))
            .is_some()
        {
            placeholder(name)
        } else {
            panic!("Fn::Sub names ${{{name}}}, which is no parameter, resource or variable")
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `${Name}` references of an Fn::Sub template string (not `${!Literal}` nor `${AWS::...}`).
fn sub_references(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_owned()))
        .filter(|n| !n.starts_with('!') && !n.starts_with("AWS::"))
        .collect()
}

fn sub_template(value: &Value) -> String {
    match &value["Fn::Sub"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts[0].as_str().unwrap_or_default().to_owned(),
        _ => text_of(value),
    }
}

// ---------------------------------------------------------------------------------------------
// Small text scanners (filter expressions, Logs Insights queries, descriptions)
// ---------------------------------------------------------------------------------------------

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `annotation.key = "value"` pairs of an X-Ray filter expression (value None when not compared
/// to a string).
fn annotation_comparisons(filter: &str) -> Vec<(String, Option<String>)> {
    annotation_keys(filter)
        .into_iter()
        .map(|key| {
            let value = compared_strings(filter, &format!("annotation.{key}"))
                .into_iter()
                .next();
            (key, value)
        })
        .collect()
}

fn annotation_keys(text: &str) -> Vec<String> {
    dotted_names(text, "annotation.")
}

/// Names following `prefix` (e.g. `fields.` → `flow_type`).
fn dotted_names(text: &str, prefix: &str) -> Vec<String> {
    text.match_indices(prefix)
        .filter(|(i, _)| !text[..*i].ends_with(is_name_char))
        .map(|(i, _)| {
            text[i + prefix.len()..]
                .chars()
                .take_while(|c| is_name_char(*c))
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The string literals `lhs` is compared with: `lhs = "x"`, `lhs="x"`.
fn compared_strings(text: &str, lhs: &str) -> Vec<String> {
    text.match_indices(lhs)
        .filter_map(|(i, _)| {
            let rest = text[i + lhs.len()..].trim_start();
            let rest = rest.strip_prefix('=')?.trim_start();
            let rest = rest.strip_prefix('"')?;
            rest.split_once('"').map(|(value, _)| value.to_owned())
        })
        .collect()
}

/// Words of a query outside string literals and not after `@` or `.`.
fn bare_words(query: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut in_string: Option<char> = None;
    let mut word = String::new();
    let mut previous = ' ';
    let mut word_start_previous = ' ';
    for c in query.chars().chain(std::iter::once(' ')) {
        if let Some(quote) = in_string {
            if c == quote {
                in_string = None;
            }
        } else if c == '"' || c == '\'' {
            in_string = Some(c);
        } else if is_name_char(c) {
            if word.is_empty() {
                word_start_previous = previous;
            }
            word.push(c);
        } else if !word.is_empty() {
            if word_start_previous != '@' && word_start_previous != '.' {
                words.push(std::mem::take(&mut word));
            }
            word.clear();
        }
        previous = c;
    }
    words
}

/// The field names of the `tracing` events in `sources`: `name = value` inside `info!(...)`,
/// `warn!(...)` and their kin.
fn tracing_fields(sources: &str) -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    for level in [
        "trace!(", "debug!(", "info!(", "warn!(", "error!(", "event!(",
    ] {
        for (start, _) in sources.match_indices(level) {
            let mut depth = 0;
            let mut end = start;
            for (i, c) in sources[start..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 && c == ')' {
                    end = start + i;
                    break;
                }
            }
            let call = &sources[start + level.len()..end];
            for (i, _) in call.match_indices('=') {
                let (before, after) = (&call[..i], &call[i + 1..]);
                if after.starts_with(['=', '>']) || before.ends_with(['=', '!', '<', '>']) {
                    continue;
                }
                let name: String = before
                    .trim_end()
                    .chars()
                    .rev()
                    .take_while(|c| is_name_char(*c) || *c == '.')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                if !name.is_empty() {
                    fields.insert(name);
                }
            }
        }
    }
    fields
}

fn quoted_phrases(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Loading: YAML with CloudFormation's short-form tags, as the long-form JSON
// ---------------------------------------------------------------------------------------------

fn resources_of_type(template: &Value, kind: &str) -> Vec<(String, Value)> {
    template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(name, r)| (name.clone(), r.clone()))
        .collect()
}

/// The AWS::Serverless::Application of template.yaml whose Location is `path`.
fn nested_application(template: &Value, path: &str) -> Value {
    resources_of_type(template, "AWS::Serverless::Application")
        .into_iter()
        .find(|(_, app)| {
            app["Properties"]["Location"]
                .as_str()
                .is_some_and(|l| Path::new(l) == Path::new(path))
        })
        .map(|(_, app)| app)
        .unwrap_or_else(|| panic!("{TEMPLATE} deploys no AWS::Serverless::Application of {path}"))
}

/// The logical id a `Ref` or `Fn::GetAtt` points at.
fn referenced_resource(value: &Value) -> Option<String> {
    if let Some(name) = value["Ref"].as_str() {
        return Some(name.to_owned());
    }
    value["Fn::GetAtt"][0].as_str().map(String::from)
}

/// A scalar as text; `Ref X` as `<X>`, the placeholder a parameter resolves to here.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => match value["Ref"].as_str() {
            Some(name) => placeholder(name),
            None => value.to_string(),
        },
    }
}

fn placeholder(name: &str) -> String {
    format!("<{name}>")
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn collector_configs() -> Vec<String> {
    let mut paths: Vec<String> = std::fs::read_dir(root().join(COLLECTOR_DIR))
        .unwrap_or_else(|e| panic!("cannot list {COLLECTOR_DIR}/: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .map(|n| format!("{COLLECTOR_DIR}/{n}"))
        .collect();
    paths.sort();
    paths
}

/// All Rust sources of the function (the product crate), concatenated: where log messages and fields are written.
fn rust_sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    walk(&root().join("crates/reactor-monitor/src"), &mut out);
    out
}

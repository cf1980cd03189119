//! Exhausted retries lose nothing: the Kinesis event source mapping sends the batches it gives
//! up on, whole, to an S3 bucket of the stack (Lambda developer guide, "Retain discarded batch
//! records for a Kinesis Data Streams event source": S3 destinations get the whole invocation
//! record), the function role has exactly what Lambda documents for it (s3:PutObject and
//! s3:ListBucket) on that bucket only, the mapping's own metrics are on, and on-call is paged on
//! `DroppedEventCount` and `OnFailureDestinationDeliveredEventCount`.

use crate::cloudformation::{assert_no_problems, load};
use serde_json::Value;

const TEMPLATE: &str = "template.yaml";
const ALARMS: &str = "alarms/template.yaml";

/// (function logical id, event name, event properties) of every Kinesis event in the template.
fn kinesis_events(template: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (name, resource) in template["Resources"].as_object().into_iter().flatten() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        for (event, spec) in resource["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if spec["Type"] == "Kinesis" {
                found.push((name.clone(), event.clone(), spec["Properties"].clone()));
            }
        }
    }
    found
}

fn statements_of(role: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    for policy in role["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match &policy["PolicyDocument"]["Statement"] {
            Value::Array(items) => all.extend(items.iter().cloned()),
            Value::Null => {}
            one => all.push(one.clone()),
        }
    }
    all
}

fn list(value: &Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

#[test]
fn exhausted_batches_go_whole_to_an_s3_bucket_of_the_stack_with_the_mapping_metrics_on() {
    let template = load(TEMPLATE);
    let resources = template["Resources"].as_object().expect("resources");
    let events = kinesis_events(&template);
    let mut problems = Vec::new();
    if events.is_empty() {
        problems.push(format!("{TEMPLATE}: no Kinesis event source mapping"));
    }
    for (function, event, props) in &events {
        let at = format!("{TEMPLATE}: {function} event {event}");
        let on_failure = &props["DestinationConfig"]["OnFailure"];
        if on_failure["Type"] != "S3" {
            problems.push(format!(
                "{at}: on-failure destination type {}, expected S3 (an SQS or SNS destination \
                 gets only the batch's coordinates: the records are lost once the stream's \
                 retention passes)",
                on_failure["Type"]
            ));
        }
        let bucket = on_failure["Destination"]["Fn::GetAtt"][0]
            .as_str()
            .filter(|_| on_failure["Destination"]["Fn::GetAtt"][1] == "Arn")
            .filter(|b| {
                resources
                    .get(*b)
                    .is_some_and(|r| r["Type"] == "AWS::S3::Bucket")
            });
        let Some(bucket) = bucket else {
            problems.push(format!(
                "{at}: on-failure destination {} is not the Arn of a bucket of this stack",
                on_failure["Destination"]
            ));
            continue;
        };
        if !list(&props["MetricsConfig"]["Metrics"]).contains(&Value::from("EventCount")) {
            problems.push(format!(
                "{at}: MetricsConfig lacks EventCount: no DroppedEventCount nor \
                 OnFailureDestinationDeliveredEventCount to page on"
            ));
        }
        // What Lambda needs for an S3 destination, on that bucket only, in the function's role.
        let role = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .and_then(|r| resources.get(r));
        let Some(role) = role else {
            problems.push(format!(
                "{at}: the function's role is not a role of this stack"
            ));
            continue;
        };
        let objects = format!("${{{bucket}.Arn}}/");
        let mut put = false;
        let mut listed = false;
        for statement in statements_of(role) {
            let sid = statement["Sid"].as_str().unwrap_or_default().to_owned();
            let actions = list(&statement["Action"]);
            let targets = list(&statement["Resource"]);
            let on_bucket = targets.iter().any(|r| {
                r["Fn::GetAtt"][0] == bucket
                    || r["Fn::Sub"]
                        .as_str()
                        .is_some_and(|s| s.starts_with(&objects))
            });
            if !on_bucket {
                continue;
            }
            for action in &actions {
                match action.as_str() {
                    Some("s3:PutObject") => {
                        put = targets.iter().all(|r| {
                            r["Fn::Sub"]
                                .as_str()
                                .is_some_and(|s| s.starts_with(&objects))
                        })
                    }
                    Some("s3:ListBucket") => {
                        listed = targets.iter().all(|r| r["Fn::GetAtt"][0] == bucket)
                    }
                    other => problems.push(format!(
                        "{at}: role statement {sid:?} grants {other:?} on {bucket}: Lambda needs \
                         only s3:PutObject and s3:ListBucket there"
                    )),
                }
            }
        }
        if !put {
            problems.push(format!(
                "{at}: the role cannot s3:PutObject on the objects of {bucket} (and only there)"
            ));
        }
        if !listed {
            problems.push(format!(
                "{at}: the role cannot s3:ListBucket on {bucket} (and only there): Lambda needs it"
            ));
        }
    }
    for (name, resource) in resources {
        if resource["Type"] == "AWS::SQS::Queue" {
            problems.push(format!(
                "{TEMPLATE}: {name}: an SQS queue nothing needs any more"
            ));
        }
    }
    assert_no_problems("on-failure destination", problems);
}

#[test]
fn on_call_is_paged_on_dropped_and_on_failure_delivered_records_of_the_mapping() {
    let template = load(TEMPLATE);
    let alarms = load(ALARMS);
    let mut problems = Vec::new();
    // The parent passes the mapping SAM generates (<function><event>), whose Ref is its UUID.
    let mappings: Vec<String> = kinesis_events(&template)
        .into_iter()
        .map(|(f, e, _)| format!("{f}{e}"))
        .collect();
    let passed = template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, r)| r["Properties"]["Location"] == ALARMS)
        .map(|(_, r)| r["Properties"]["Parameters"]["EventSourceMappingUuid"]["Ref"].clone());
    match passed.as_ref().and_then(Value::as_str) {
        Some(m) if mappings.iter().any(|x| x == m) => {}
        other => problems.push(format!(
            "{TEMPLATE}: the alarms application gets EventSourceMappingUuid = {other:?}, expected \
             a Ref of the mapping SAM generates ({mappings:?})"
        )),
    }
    for metric in [
        "DroppedEventCount",
        "OnFailureDestinationDeliveredEventCount",
    ] {
        let alarm = alarms["Resources"]
            .as_object()
            .into_iter()
            .flatten()
            .find(|(_, a)| {
                a["Type"] == "AWS::CloudWatch::Alarm"
                    && a["Properties"]["Namespace"] == "AWS/Lambda"
                    && a["Properties"]["MetricName"] == metric
            });
        let Some((name, alarm)) = alarm else {
            problems.push(format!("{ALARMS}: no alarm on AWS/Lambda {metric}"));
            continue;
        };
        let p = &alarm["Properties"];
        let dims = list(&p["Dimensions"]);
        if dims.len() != 1
            || dims[0]["Name"] != "EventSourceMappingUUID"
            || dims[0]["Value"]["Ref"] != "EventSourceMappingUuid"
        {
            problems.push(format!(
                "{ALARMS}: {name}: dimensions {dims:?}, expected exactly EventSourceMappingUUID = \
                 Ref EventSourceMappingUuid (Lambda publishes the mapping's metrics per UUID)"
            ));
        }
        if p["Statistic"] != "Sum"
            || p["Threshold"].as_f64() != Some(1.0)
            || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold"
        {
            problems.push(format!(
                "{ALARMS}: {name}: must fire on the first record (Sum >= 1)"
            ));
        }
        if !list(&p["AlarmActions"]).contains(&serde_json::json!({"Ref": "OnCallTopicArn"})) {
            problems.push(format!("{ALARMS}: {name}: does not page on-call itself"));
        }
        let description = p["AlarmDescription"]["Fn::Sub"]
            .as_str()
            .or(p["AlarmDescription"].as_str())
            .unwrap_or_default();
        if !description.contains("First:") {
            problems.push(format!(
                "{ALARMS}: {name}: the description does not say what to do first (\"First:\")"
            ));
        }
    }
    assert_no_problems("mapping alarms", problems);
}

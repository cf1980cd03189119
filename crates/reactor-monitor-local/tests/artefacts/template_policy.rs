//! Least privilege and protection of data in template.yaml and the templates it nests: no
//! wildcard action, no broad managed policy, every permission on a resource of the stack,
//! encryption at rest on every store, TLS-only access to the bucket, queues and topics.
//!
//! Each test collects every problem it finds and fails once, listing them with where they are.

use crate::cloudformation;
use cloudformation::{assert_no_problems, load};

use serde_json::{Map, Value};

const TEMPLATE: &str = "template.yaml";

/// Actions that accept no resource but `*` (no resource-level permissions), with the reason.
const RESOURCELESS_ACTIONS: &[(&str, &str)] = &[
    (
        "xray:PutTraceSegments",
        "X-Ray defines no resource type for it: active tracing and the ADOT collector send segments",
    ),
    (
        "xray:PutTelemetryRecords",
        "X-Ray defines no resource type for it: the collector reports its own telemetry",
    ),
];

/// Statements allowed a wildcard action, by (resource, Sid), with the reason.
const WILDCARD_EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "OnCallTopicKey",
    "AccountAdministersKeyThroughIam",
    "the default key policy statement: it gives the key to the account, so that IAM policies \
     decide who administers it; without it the key can become unmanageable",
)];

/// Managed policies no role of this stack may have: they grant far more than one resource.
const BROAD_MANAGED_POLICIES: &[&str] = &["FullAccess", "AdministratorAccess", "PowerUserAccess"];

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn no_statement_allows_a_wildcard_action() {
    let mut problems = Vec::new();
    for doc in policy_documents() {
        for (i, statement) in allow_statements(&doc.document) {
            let sid = statement["Sid"].as_str().unwrap_or_default();
            if statement.get("NotAction").is_some() {
                problems.push(format!(
                    "{} statement {i} {sid:?}: Allow with NotAction allows everything else",
                    doc.at
                ));
            }
            for action in strings(&statement["Action"]) {
                let wildcard = action == "*" || action.ends_with(":*");
                let excepted = WILDCARD_EXCEPTIONS
                    .iter()
                    .any(|(resource, s, _)| *resource == doc.resource && *s == sid);
                if wildcard && !excepted {
                    problems.push(format!(
                        "{} statement {i} {sid:?}: allows {action:?}; name the actions it needs",
                        doc.at
                    ));
                }
            }
        }
    }
    assert_no_problems("wildcard actions", problems);
}

#[test]
fn no_role_has_a_full_access_managed_policy_and_every_function_has_its_own_role() {
    let mut problems = Vec::new();
    for (path, template) in templates() {
        for (name, resource) in resources(&template) {
            let props = &resource["Properties"];
            let mut managed = strings(&props["ManagedPolicyArns"]);
            if resource["Type"] == "AWS::Serverless::Function" {
                // SAM's Policies: managed policy names (strings) or policy templates.
                managed.extend(strings(&props["Policies"]));
                if props.get("Role").is_none() {
                    problems.push(format!(
                        "{path} {name}: no Role, so SAM generates one and attaches managed \
                         policies for its events and tracing (AWSLambdaKinesisExecutionRole \
                         reads every stream of the account)"
                    ));
                }
            }
            for policy in managed {
                if BROAD_MANAGED_POLICIES.iter().any(|b| policy.contains(b)) {
                    problems.push(format!(
                        "{path} {name}: managed policy {policy:?} grants far more than this stack's resources"
                    ));
                }
            }
        }
    }
    assert_no_problems("managed policies", problems);
}

#[test]
fn every_permission_names_a_resource_of_the_stack_unless_the_action_takes_none() {
    let mut problems = Vec::new();
    for doc in policy_documents() {
        for (i, statement) in allow_statements(&doc.document) {
            let sid = statement["Sid"].as_str().unwrap_or_default();
            let at = format!("{} statement {i} {sid:?}", doc.at);
            if statement.get("NotResource").is_some() {
                problems.push(format!("{at}: Allow with NotResource"));
            }
            if doc.kind == PolicyKind::Resource && statement["Principal"] == "*" {
                problems.push(format!("{at}: allows anyone (Principal \"*\")"));
            }
            let actions = strings(&statement["Action"]);
            let resourceless = !actions.is_empty()
                && actions
                    .iter()
                    .all(|a| RESOURCELESS_ACTIONS.iter().any(|(r, _)| r == a));
            for resource in values(&statement["Resource"]) {
                if resource == "*" && doc.kind == PolicyKind::KeyPolicy {
                    continue; // In a key policy, "*" is the key itself.
                }
                if resource == "*" && resourceless {
                    continue;
                }
                if named_resource(&resource, &doc.resources).is_none() {
                    problems.push(format!(
                        "{at}: {actions:?} on {resource}, not on a resource of the stack \
                         (Ref, GetAtt or Sub of it); \"*\" only for {:?}",
                        RESOURCELESS_ACTIONS
                            .iter()
                            .map(|(a, _)| *a)
                            .collect::<Vec<_>>()
                    ));
                }
            }
            if values(&statement["Resource"]).is_empty() && doc.kind != PolicyKind::Trust {
                problems.push(format!("{at}: no Resource"));
            }
        }
    }
    assert_no_problems("resources of permissions", problems);
}

#[test]
fn every_store_is_encrypted_at_rest() {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (path, template) in templates() {
        for (name, resource) in resources(&template) {
            let kind = resource["Type"].as_str().unwrap_or_default().to_owned();
            let props = &resource["Properties"];
            let encrypted = match kind.as_str() {
                "AWS::Kinesis::Stream" => {
                    props["StreamEncryption"]["EncryptionType"] == "KMS"
                        && !props["StreamEncryption"]["KeyId"].is_null()
                }
                "AWS::DynamoDB::Table" => props["SSESpecification"]["SSEEnabled"] == true,
                "AWS::SNS::Topic" => !props["KmsMasterKeyId"].is_null(),
                "AWS::S3::Bucket" => {
                    let rules =
                        values(&props["BucketEncryption"]["ServerSideEncryptionConfiguration"]);
                    !rules.is_empty()
                        && rules.iter().all(|r| {
                            let algorithm = &r["ServerSideEncryptionByDefault"]["SSEAlgorithm"];
                            ["aws:kms", "aws:kms:dsse", "AES256"]
                                .iter()
                                .any(|a| algorithm == a)
                        })
                }
                "AWS::SQS::Queue" => {
                    props["SqsManagedSseEnabled"] == true || !props["KmsMasterKeyId"].is_null()
                }
                _ => continue,
            };
            seen.insert(kind.clone());
            if !encrypted {
                problems.push(format!("{path} {name}: {kind} without encryption at rest"));
            }
        }
    }
    for kind in [
        "AWS::Kinesis::Stream",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::S3::Bucket",
        "AWS::SQS::Queue",
    ] {
        if !seen.contains(kind) {
            problems.push(format!(
                "no {kind} found: the stream, table, topics, bucket and queue this test guards have moved"
            ));
        }
    }
    assert_no_problems("encryption at rest", problems);
}

#[test]
fn the_bucket_queues_and_topics_refuse_requests_without_tls() {
    let template = load(TEMPLATE);
    let mut problems = Vec::new();
    let guarded = [
        ("AWS::S3::Bucket", "AWS::S3::BucketPolicy", "Bucket", "s3"),
        ("AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "Queues", "sqs"),
        ("AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "Topics", "sns"),
    ];
    for (kind, policy_kind, target_key, service) in guarded {
        for (name, _) in resources(&template).filter(|(_, r)| r["Type"] == kind) {
            let policies: Vec<Value> = resources(&template)
                .filter(|(_, p)| p["Type"] == policy_kind)
                .filter(|(_, p)| {
                    values(&p["Properties"][target_key]).iter().any(|t| {
                        named_resource(t, &resource_map(&template)).as_deref() == Some(name)
                    })
                })
                .map(|(_, p)| p["Properties"]["PolicyDocument"].clone())
                .collect();
            let denies_plain_http = policies.iter().any(|doc| {
                values(&doc["Statement"]).iter().any(|s| {
                    s["Effect"] == "Deny"
                        && s["Principal"] == "*"
                        && strings(&s["Action"]).iter().any(|a| {
                            a == "*"
                                || *a == format!("{service}:*")
                                || (service == "sns" && a == "sns:Publish")
                        })
                        && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
                        && covers(&values(&s["Resource"]), name, kind)
                })
            });
            if !denies_plain_http {
                problems.push(format!(
                    "{TEMPLATE} {name}: no {policy_kind} denying {service} requests without TLS \
                     (Deny, Principal \"*\", Condition Bool aws:SecureTransport \"false\", on the \
                     resource{})",
                    if kind == "AWS::S3::Bucket" {
                        " and its objects"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    assert_no_problems("TLS-only policies", problems);
}

// ---------------------------------------------------------------------------------------------
// Policy documents of the templates
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyKind {
    /// Attached to a role: what the role may do.
    Identity,
    /// Who may assume a role.
    Trust,
    /// On a topic, bucket or queue: who may use it.
    Resource,
    /// On a KMS key: "*" as a resource means this key.
    KeyPolicy,
}

struct PolicyDocument {
    at: String,
    /// The logical id of the resource that holds the document.
    resource: String,
    kind: PolicyKind,
    document: Value,
    /// The resources of the template the document is in.
    resources: Map<String, Value>,
}

fn policy_documents() -> Vec<PolicyDocument> {
    let mut docs = Vec::new();
    for (path, template) in templates() {
        let map = resource_map(&template);
        for (name, resource) in resources(&template) {
            let props = &resource["Properties"];
            let mut push = |label: String, kind: PolicyKind, document: &Value| {
                if !document.is_null() {
                    docs.push(PolicyDocument {
                        at: format!("{path} {name}{label}"),
                        resource: name.to_owned(),
                        kind,
                        document: document.clone(),
                        resources: map.clone(),
                    });
                }
            };
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::IAM::Role" => {
                    push(
                        ".AssumeRolePolicyDocument".into(),
                        PolicyKind::Trust,
                        &props["AssumeRolePolicyDocument"],
                    );
                    for (i, policy) in values(&props["Policies"]).iter().enumerate() {
                        push(
                            format!(".Policies[{i}]"),
                            PolicyKind::Identity,
                            &policy["PolicyDocument"],
                        );
                    }
                }
                "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::RolePolicy" => push(
                    ".PolicyDocument".into(),
                    PolicyKind::Identity,
                    &props["PolicyDocument"],
                ),
                "AWS::Serverless::Function" => {
                    for (i, policy) in values(&props["Policies"]).iter().enumerate() {
                        if policy.get("Statement").is_some() {
                            push(format!(".Policies[{i}]"), PolicyKind::Identity, policy);
                        }
                    }
                }
                "AWS::SNS::TopicPolicy" | "AWS::S3::BucketPolicy" | "AWS::SQS::QueuePolicy" => {
                    push(
                        ".PolicyDocument".into(),
                        PolicyKind::Resource,
                        &props["PolicyDocument"],
                    )
                }
                "AWS::KMS::Key" => push(
                    ".KeyPolicy".into(),
                    PolicyKind::KeyPolicy,
                    &props["KeyPolicy"],
                ),
                _ => {}
            }
        }
    }
    assert!(
        docs.iter().any(|d| d.kind == PolicyKind::Identity),
        "found no identity policy: is the parsing still right?"
    );
    docs
}

fn allow_statements(document: &Value) -> Vec<(usize, Value)> {
    values(&document["Statement"])
        .into_iter()
        .enumerate()
        .filter(|(_, s)| s["Effect"] == "Allow")
        .collect()
}

/// The logical id of the stack resource `value` names: `Ref X`, `GetAtt X.Attr`, or a Sub that
/// starts from `${X}` / `${X.Attr}` (e.g. `${Bucket.Arn}/prefix/*`).
fn named_resource(value: &Value, resources: &Map<String, Value>) -> Option<String> {
    let name = if let Some(name) = value["Ref"].as_str() {
        name.to_owned()
    } else if let Some(name) = value["Fn::GetAtt"][0].as_str() {
        name.to_owned()
    } else {
        let text = match &value["Fn::Sub"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts[0].as_str()?.to_owned(),
            _ => return None,
        };
        let reference = text.strip_prefix("${")?.split_once('}')?.0;
        reference.split('.').next()?.to_owned()
    };
    resources.contains_key(&name).then_some(name)
}

/// Whether `resources` covers the resource `name` (and, for a bucket, its objects).
fn covers(resources: &[Value], name: &str, kind: &str) -> bool {
    let names_it = |v: &Value| match (&v["Fn::GetAtt"], &v["Ref"]) {
        (Value::Array(ga), _) => ga[0] == name,
        (_, Value::String(r)) => r == name,
        _ => false,
    };
    let objects = |v: &Value| v["Fn::Sub"].as_str() == Some(&format!("${{{name}.Arn}}/*"));
    resources.iter().any(names_it) && (kind != "AWS::S3::Bucket" || resources.iter().any(objects))
}

// ---------------------------------------------------------------------------------------------
// Loading: YAML with CloudFormation's short-form tags, as the long-form JSON
// ---------------------------------------------------------------------------------------------

/// template.yaml and the local templates its nested applications and stacks deploy.
fn templates() -> Vec<(String, Value)> {
    let template = load(TEMPLATE);
    let mut all = Vec::new();
    for (_, resource) in resources(&template) {
        let location = match resource["Type"].as_str() {
            Some("AWS::Serverless::Application") => &resource["Properties"]["Location"],
            Some("AWS::CloudFormation::Stack") => &resource["Properties"]["TemplateURL"],
            _ => continue,
        };
        if let Some(path) = location.as_str().filter(|l| !l.contains("://")) {
            all.push((path.to_owned(), load(path)));
        }
    }
    all.insert(0, (TEMPLATE.to_owned(), template));
    all
}

fn resource_map(template: &Value) -> Map<String, Value> {
    template["Resources"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn resources(template: &Value) -> impl Iterator<Item = (&str, &Value)> {
    template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, r)| (name.as_str(), r))
}

/// A value or list of values as a list.
fn values(value: &Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// The plain strings of a value or list (intrinsics left out).
fn strings(value: &Value) -> Vec<String> {
    values(value)
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

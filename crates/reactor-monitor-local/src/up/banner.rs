//! What `up` prints when it starts: the resources and ready-to-paste AWS CLI commands.

use std::fmt::Write as _;

use base64::Engine;

use super::StartingPosition;
use crate::resources::Resources;
use reactor_monitor::adapters::dynamodb::attr;

/// The reading of the tutorial, as the AWS CLI examples put it.
pub const TUTORIAL_READING: &str =
    r#"{"temp":750,"reactor":"reactor-1","date":"2020-03-07T16:29:50+02:00"}"#;

pub(super) fn banner(
    endpoint: &str,
    owns_emulator: bool,
    region: &str,
    resources: &Resources,
    otlp_endpoint: &str,
    starting_position: &StartingPosition,
    shards: usize,
) -> String {
    let names = &resources.names;
    let aws = format!("aws --endpoint-url {endpoint} --region {region}");
    let put = format!(
        "{aws} kinesis put-record --stream-name {} --partition-key 1",
        names.stream
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(TUTORIAL_READING);
    let query = format!(
        r#"{aws} dynamodb query --table-name {} --key-condition-expression '{} = :r AND {} BETWEEN :t1 AND :t2' --expression-attribute-values '{{":r":{{"S":"reactor-1"}},":t1":{{"S":"2020-03-07T14:00:00"}},":t2":{{"S":"2020-03-07T15:00:00~"}}}}'"#,
        names.table,
        attr::REACTOR,
        attr::READING_ID
    );
    let alerted_only = format!(
        "--filter-expression 'attribute_exists({})'",
        attr::MESSAGE_ID
    );
    let mut out = String::new();
    let _ = write!(
        out,
        "reactor-monitor up: the pipeline runs on 127.0.0.1 until Ctrl-C\n\n\
         endpoint            {endpoint}  ({})\n\
         stream              {}  ({shards} shard{}, from {starting_position})\n\
         table               {}\n\
         alert topic         {}\n\
         alerts queue        {}  (subscribed to the alert topic: one message per hot reading)\n\
         on-call topic       {}\n\
         on-call queue       {}  (subscribed to the on-call topic: one message per episode transition)\n\
         dead-letter bucket  {}\n\
         spans (OTLP/HTTP)   {otlp_endpoint}/v1/traces\n\n\
         Try it from another terminal with the AWS CLI (the emulator takes any credentials):\n\n\
         export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local\n\n\
         # put the tutorial's reading (AWS CLI v2)\n\
         {put} --cli-binary-format raw-in-base64-out --data '{TUTORIAL_READING}'\n\
         # the same reading base64-encoded, the AWS CLI v2 default\n\
         {put} --data {encoded}\n\
         # AWS CLI v1 (pip install awscli) sends --data as it is: raw JSON, no --cli-binary-format\n\
         {put} --data '{TUTORIAL_READING}'\n\
         # every reading in the table\n\
         {aws} dynamodb scan --table-name {}\n\
         # the readings whose alert went out (the alert ledger: its SNS message id on the reading)\n\
         {aws} dynamodb scan --table-name {} {alerted_only}\n\
         # reactor-1's readings between two instants (UTC)\n\
         {query}\n\
         # alerts, one per hot reading (the alert topic, for machines)\n\
         {aws} sqs receive-message --queue-url {} --message-attribute-names All --max-number-of-messages 10\n\
         # pages, one per episode transition (the on-call topic, for people)\n\
         {aws} sqs receive-message --queue-url {} --message-attribute-names All --max-number-of-messages 10\n\
         # payloads the function could not read: one object per batch, a JSON line per record (reason, place, payload in base64 `data`)\n\
         {aws} s3 ls s3://{}/ --recursive\n\
         # one record's payload, byte for byte: {aws} s3 cp s3://{}/<key> - | jq -r 'select(.sequence_number == \"<n>\") | .data' | base64 -d\n\
         # a steady flow of generated readings, like the Kinesis Data Generator\n\
         reactor-monitor generate --endpoint {endpoint} --stream {} --rate 20 --duration 60\n",
        if owns_emulator {
            "started by up, stops with it"
        } else {
            "attached"
        },
        names.stream,
        if shards == 1 { "" } else { "s" },
        names.table,
        resources.alert_topic_arn,
        resources.alerts_queue_url,
        resources.on_call_topic_arn,
        resources.on_call_queue_url,
        names.dead_letter_bucket,
        names.table,
        names.table,
        resources.alerts_queue_url,
        resources.on_call_queue_url,
        names.dead_letter_bucket,
        names.dead_letter_bucket,
        names.stream,
    );
    out.push_str("\nwaiting for records (Ctrl-C stops)\n");
    out
}

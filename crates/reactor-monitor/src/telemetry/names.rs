//! The one place that names flows, spans, attributes and metrics. `dashboards/`, `alarms/`,
//! `otel-collector/` and the tests use these same strings.

/// `service.name` of every span, and the function's name in the template.
pub const SERVICE_NAME: &str = "reactor-monitor";

/// Metrics (CloudWatch embedded metric format).
pub mod metrics {
    /// The one namespace of every custom metric.
    pub const NAMESPACE: &str = "ReactorMonitor";

    /// Dimension names.
    pub const DIM_FLOW_TYPE: &str = "FlowType";
    pub const DIM_SEVERITY: &str = "Severity";
    pub const DIM_REACTOR: &str = "Reactor";
    /// `opened`, `escalated`, `repeated`, `resolved`, `silent`, `suppressed`.
    pub const DIM_EPISODE_ACTION: &str = "EpisodeAction";

    /// Per flow type (dimension set `[FlowType]`): one count per record, errors, and one
    /// duration value per record (CloudWatch computes avg, p50 and p99 from them).
    pub const RECORDS: &str = "Records";
    pub const RECORD_ERRORS: &str = "RecordErrors";
    pub const RECORD_DURATION: &str = "RecordDuration";
    /// Per severity (dimension set `[Severity]`): alerts published.
    pub const ALERTS: &str = "Alerts";
    /// Per reactor (dimension set `[Reactor]`): the hottest reading of the batch, °C.
    pub const MAX_TEMPERATURE: &str = "MaxTemperature";
    /// Without dimensions: the pipeline as a whole.
    pub const READINGS: &str = "Readings";
    pub const DEAD_LETTERED: &str = "DeadLettered";
    pub const RETRIED_RECORDS: &str = "RetriedRecords";
    pub const ALERT_PUBLISH_FAILURES: &str = "AlertPublishFailures";
    /// Records retried because their episode notification could not be published to on-call.
    pub const ON_CALL_PUBLISH_FAILURES: &str = "OnCallPublishFailures";
    pub const BATCH_SIZE: &str = "BatchSize";
    pub const COLD_START: &str = "ColdStart";
    /// Per episode action (dimension set [EpisodeAction]): readings by what they did to their
    /// reactor's alert episode; the silence check counts its `silent` pages the same way.
    pub const EPISODE_ACTIONS: &str = "EpisodeActions";
    /// Per severity (dimension set [Severity]): hot episodes open, from the silence check's
    /// scan of every reactor (one value a minute); `Severity = silent` counts silent reactors.
    pub const OPEN_EPISODES: &str = "OpenEpisodes";

    /// Every metric with its dimension set, for the consistency test of dashboards and alarms.
    pub const CATALOGUE: &[(&str, &[&str])] = &[
        (RECORDS, &[DIM_FLOW_TYPE]),
        (RECORD_ERRORS, &[DIM_FLOW_TYPE]),
        (RECORD_DURATION, &[DIM_FLOW_TYPE]),
        (ALERTS, &[DIM_SEVERITY]),
        (MAX_TEMPERATURE, &[DIM_REACTOR]),
        (READINGS, &[]),
        (DEAD_LETTERED, &[]),
        (RETRIED_RECORDS, &[]),
        (ALERT_PUBLISH_FAILURES, &[]),
        (ON_CALL_PUBLISH_FAILURES, &[]),
        (BATCH_SIZE, &[]),
        (COLD_START, &[]),
        (EPISODE_ACTIONS, &[DIM_EPISODE_ACTION]),
        (OPEN_EPISODES, &[DIM_SEVERITY]),
    ];
}

/// Span names and our own span attribute keys. Semantic-convention keys come from
/// `opentelemetry-semantic-conventions`.
pub mod spans {
    /// `messaging.operation.name` of the consumer span of each record; with the stream it
    /// names the span ([`messaging_span_name`]): `process indications-stream`.
    pub const PROCESS: &str = "process";
    /// `messaging.operation.name` of the PRODUCER span of an alert's publication:
    /// `publish reactor-notifications`.
    pub const PUBLISH: &str = "publish";
    pub const DECODE: &str = "decode";
    /// `db.system.name` of the DynamoDB call spans.
    pub const DB_SYSTEM_DYNAMODB: &str = "aws.dynamodb";
    /// `messaging.system` of the record spans and of the alert's publication.
    pub const MESSAGING_SYSTEM_KINESIS: &str = "aws_kinesis";
    pub const MESSAGING_SYSTEM_SNS: &str = "aws_sns";

    /// A messaging span's name as semantic conventions 1.44 give it: `{operation}
    /// {destination}`, or the operation alone when the destination is not known.
    pub fn messaging_span_name(operation: &str, destination: &str) -> String {
        if destination.is_empty() {
            operation.to_string()
        } else {
            format!("{operation} {destination}")
        }
    }

    pub const FLOW_TYPE: &str = "flow_type";
    pub const REACTOR: &str = "reactor";
    pub const SEVERITY: &str = "severity";
    pub const TEMPERATURE_C: &str = "temperature_c";
    pub const REJECT_REASON: &str = "reject_reason";
    pub const OUTCOME: &str = "outcome";
    /// What the reading did to its reactor's alert episode (`domain::episode::EpisodeAction`).
    pub const EPISODE_ACTION: &str = "episode_action";
    /// A user record's position in its KPL aggregated record (the KCL's subsequence number);
    /// absent on a record that was not aggregated.
    pub const SUBSEQUENCE_NUMBER: &str = "subsequence_number";
    /// The attribute the ADOT awsxray exporter reads to index attributes as annotations.
    pub const XRAY_ANNOTATIONS: &str = "aws.xray.annotations";
    /// Keys X-Ray indexes as annotations (`_`, never `.`, in annotation keys).
    pub const INDEXED: [&str; 4] = [FLOW_TYPE, REACTOR, SEVERITY, REJECT_REASON];
}

//! SNS: one message per alert, published in batches.

use crate::operation::AwsOperation;
use aws_sdk_sns::Client;
use aws_sdk_sns::operation::RequestId;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::sdk_failure;
use crate::ports::{Alert, AlertPublisher, FailureKind, TransientError, note_request_id};
use crate::sinks;
use crate::telemetry::propagation::alert_trace_headers;

/// PublishBatch takes at most 10 entries.
pub const MAX_PUBLISH_BATCH_ENTRIES: usize = 10;

/// Message attribute names, for subscription filter policies.
pub mod attr {
    pub const SEVERITY: &str = "severity";
    pub const REACTOR: &str = "reactor";
    /// Where the reading sits in the stream: lets on-call tooling de-duplicate.
    pub const SHARD_ID: &str = "shard_id";
    pub const SEQUENCE_NUMBER: &str = "sequence_number";
    /// The W3C trace context of the alert's publish span (`traceparent`, and `tracestate`
    /// when there is one): the consumer of an alert continues the reading's trace. With the
    /// four above, six of the ten attributes SNS allows a message.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
}

#[derive(Clone)]
pub struct SnsAlerts {
    pub(super) client: Client,
    topic_arn: String,
    /// The on-call topic of episode notifications (`super::on_call`), when episodes are on.
    pub(super) on_call_topic_arn: Option<String>,
}

impl SnsAlerts {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
            on_call_topic_arn: None,
        }
    }

    /// The same publisher, also sending episode notifications to `topic_arn`.
    pub fn with_on_call_topic(mut self, topic_arn: impl Into<String>) -> Self {
        self.on_call_topic_arn = Some(topic_arn.into());
        self
    }

    /// The text on-call reads. Reactor ids cannot hold control characters (they are
    /// rejected at decode), so the text cannot be forged into extra lines.
    pub fn message(alert: &Alert<'_>) -> String {
        let r = alert.located.reading;
        format!(
            "{severity}: reactor {reactor} coolant at {temp} °C, at or above the {severity} threshold of {threshold} °C (reading of {date}, shard {shard}, sequence number {seq}).",
            severity = alert.severity.as_str().to_uppercase(),
            reactor = r.reactor,
            temp = sinks::decimal(r.temp_c),
            threshold = sinks::decimal(alert.threshold_c),
            date = r.date.to_rfc3339(),
            shard = alert.located.origin.shard_id,
            seq = alert.located.origin.sequence_number,
        )
    }

    fn entry(id: usize, alert: &Alert<'_>) -> Result<PublishBatchRequestEntry, TransientError> {
        let string = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
        };
        let invalid = |e| {
            TransientError::new(OPERATION, FailureKind::Service, "invalid alert entry")
                .with_source(e)
        };
        let mut entry = PublishBatchRequestEntry::builder();
        let trace = alert_trace_headers(alert.located.origin);
        for name in [attr::TRACEPARENT, attr::TRACESTATE] {
            if let Some(value) = trace.get(name) {
                entry = entry.message_attributes(name, string(value).map_err(invalid)?);
            }
        }
        entry
            .id(id.to_string())
            .subject(alert.severity.as_str())
            .message(Self::message(alert))
            .message_attributes(
                attr::SEVERITY,
                string(alert.severity.as_str()).map_err(invalid)?,
            )
            .message_attributes(
                attr::REACTOR,
                string(&alert.located.reading.reactor).map_err(invalid)?,
            )
            .message_attributes(
                attr::SHARD_ID,
                string(&alert.located.origin.shard_id).map_err(invalid)?,
            )
            .message_attributes(
                attr::SEQUENCE_NUMBER,
                string(&alert.located.origin.sequence_number.to_string()).map_err(invalid)?,
            )
            .build()
            .map_err(invalid)
    }
}

const OPERATION: AwsOperation = AwsOperation::SnsPublishBatch;

/// One result per alert: the message id when published.
type Published = Vec<Result<String, TransientError>>;

impl AlertPublisher for SnsAlerts {
    const OPERATION: AwsOperation = OPERATION;
    const MAX_BATCH: usize = MAX_PUBLISH_BATCH_ENTRIES;

    /// Publishes in one call; when SNS refuses the whole call as invalid
    /// ([`FailureKind::Rejected`]), splits it in halves until each refused alert stands alone.
    async fn publish(&self, alerts: &[Alert<'_>]) -> Vec<Result<String, TransientError>> {
        let results = self.publish_once(alerts).await;
        let rejected = |r: &Result<String, TransientError>| matches!(r, Err(e) if e.kind == FailureKind::Rejected);
        if alerts.len() > 1 && results.iter().all(rejected) {
            return self.bisect(alerts).await;
        }
        results
    }
}

impl SnsAlerts {
    fn bisect<'a>(
        &'a self,
        alerts: &'a [Alert<'a>],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Published> + Send + 'a>> {
        Box::pin(async move {
            let (left, right) = alerts.split_at(alerts.len() / 2);
            let mut results = self.publish(left).await;
            results.extend(self.publish(right).await);
            results
        })
    }

    async fn publish_once(&self, alerts: &[Alert<'_>]) -> Vec<Result<String, TransientError>> {
        let entries: Result<Vec<_>, _> = alerts
            .iter()
            .enumerate()
            .map(|(i, a)| Self::entry(i, a))
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => return vec![Err(e); alerts.len()],
        };
        publish_batch(
            &self.client,
            &self.topic_arn,
            entries,
            OPERATION,
            |kind, failed| match kind {
                FailureKind::Service if !failed.sender_fault => FailureKind::Unprocessed,
                kind => kind,
            },
        )
        .await
    }
}

/// Sends `entries` to `topic` in one PublishBatch (noting the response's request id) and reads
/// the answer per entry ([`batch_results`]); a call that fails fails every entry.
pub(super) async fn publish_batch(
    client: &Client,
    topic: &str,
    entries: Vec<PublishBatchRequestEntry>,
    operation: AwsOperation,
    classify: impl Fn(FailureKind, &aws_sdk_sns::types::BatchResultErrorEntry) -> FailureKind,
) -> Vec<Result<String, TransientError>> {
    let count = entries.len();
    let response = client
        .publish_batch()
        .topic_arn(topic)
        .set_publish_batch_request_entries(Some(entries))
        .send()
        .await;
    note_request_id(response.request_id());
    match response {
        Ok(out) => batch_results(out, count, operation, classify),
        Err(e) => vec![Err(sdk_failure(operation, e)); count],
    }
}

/// The message id or the failure of each entry of a PublishBatch response, by position: entry
/// ids are the positions of the `entries` sent. `classify` turns the failure kind an entry's
/// error code maps to into the one the caller acts on. An entry the response does not name is
/// unprocessed.
pub(super) fn batch_results(
    out: aws_sdk_sns::operation::publish_batch::PublishBatchOutput,
    entries: usize,
    operation: AwsOperation,
    classify: impl Fn(FailureKind, &aws_sdk_sns::types::BatchResultErrorEntry) -> FailureKind,
) -> Vec<Result<String, TransientError>> {
    let mut results: Vec<Result<String, TransientError>> = vec![
        Err(TransientError::new(
            operation,
            FailureKind::Unprocessed,
            "entry missing from the response"
        ));
        entries
    ];
    for ok in out.successful.unwrap_or_default() {
        if let Some(slot) = ok
            .id
            .as_deref()
            .and_then(|id| id.parse::<usize>().ok())
            .and_then(|i| results.get_mut(i))
        {
            *slot = Ok(ok.message_id.unwrap_or_default());
        }
    }
    for failed in out.failed.unwrap_or_default() {
        if let Ok(i) = failed.id.parse::<usize>()
            && let Some(slot) = results.get_mut(i)
        {
            let kind = classify(
                super::failure_kind(&failed.code, failed.message.as_deref()),
                &failed,
            );
            *slot = Err(TransientError::new(
                operation,
                kind,
                format!("{}: {}", failed.code, failed.message.unwrap_or_default()),
            ));
        }
    }
    results
}

//! SNS: episode notifications for people on the on-call topic, apart from the alert topic's
//! one message per hot reading. One message per transition, JSON, with attributes for
//! subscription filter policies.

use crate::operation::AwsOperation;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use serde::Serialize;
use std::collections::HashMap;

use super::sns::{MAX_PUBLISH_BATCH_ENTRIES, SnsAlerts, publish_batch};
use crate::domain::episode::Notification;
use crate::ports::{FailureKind, Notice, OnCallPublisher, TransientError};
use crate::telemetry::propagation::notice_trace_headers;

/// The W3C trace context header a notice carries, in its attributes and body.
const TRACEPARENT: &str = "traceparent";

/// Message attribute names of on-call messages, for subscription filter policies.
pub mod attr {
    /// `opened`, `escalated`, `repeated`, `resolved`, `silent`.
    pub const ACTION: &str = "action";
    pub const SEVERITY: &str = "severity";
    pub const REACTOR: &str = "reactor";
    /// The dedup key of an incident (PagerDuty `dedup_key`, Incident Manager `dedupString`).
    pub const EPISODE_ID: &str = "episode_id";
}

/// The on-call publish's own name in request counts, spans and metrics (its AWS operation is
/// SNS `PublishBatch`, like the alert topic's): its failures page apart from the alerts'.
pub const OPERATION: AwsOperation = AwsOperation::SnsOnCallPublishBatch;

/// What the trace fields of a notice are, for whoever reads one.
pub const TRACE_NOTE: &str = "traceparent: the on-call publish span under the record span of the reading that caused this notice (its trace in X-Ray or Jaeger); producer_traceparent: the reading's producer's, when it sent one; reading.sequence_number is the record span's messaging.message.id";

/// The message body of an on-call notification (JSON).
#[derive(Debug, Serialize)]
pub struct OnCallMessage<'a> {
    #[serde(flatten)]
    pub notification: &'a Notification,
    /// The Kinesis record of the reading that caused it; absent for `silent`.
    pub reading: Option<ReadingRef<'a>>,
    /// W3C trace context of the on-call publish span under the record span of the reading
    /// that caused it (`propagation::notice_trace_headers`), when the function exports spans;
    /// absent for `silent` (the silence check is not traced).
    pub traceparent: Option<String>,
    /// W3C trace context of the reading's producer, when the payload carried one.
    pub producer_traceparent: Option<&'a str>,
    pub trace_note: &'static str,
}

/// Where the reading sits in the stream.
#[derive(Debug, Serialize)]
pub struct ReadingRef<'a> {
    pub shard_id: &'a str,
    pub sequence_number: String,
}

impl SnsAlerts {
    /// The JSON body of a notice; `trace` = its W3C trace context headers
    /// ([`notice_trace_headers`] of the reading's record).
    pub fn on_call_message(notice: &Notice<'_>, trace: &HashMap<String, String>) -> String {
        serde_json::to_string(&OnCallMessage {
            notification: notice.notification,
            reading: notice.origin.map(|o| ReadingRef {
                shard_id: &o.shard_id,
                sequence_number: o.sequence_number.to_string(),
            }),
            traceparent: trace.get(TRACEPARENT).cloned(),
            producer_traceparent: notice.traceparent,
            trace_note: TRACE_NOTE,
        })
        .expect("a notice serializes")
    }

    fn on_call_entry(
        id: usize,
        notice: &Notice<'_>,
    ) -> Result<PublishBatchRequestEntry, TransientError> {
        let n = notice.notification;
        let invalid = |e| {
            TransientError::new(OPERATION, FailureKind::Service, "invalid notice entry")
                .with_source(e)
        };
        let string = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
        };
        let trace = notice.origin.map(notice_trace_headers).unwrap_or_default();
        let mut entry = PublishBatchRequestEntry::builder();
        // The W3C headers as message attributes too, as on alerts: a consumer continues the
        // reading's trace without parsing the body.
        for (name, value) in &trace {
            entry = entry.message_attributes(name, string(value).map_err(invalid)?);
        }
        entry
            .id(id.to_string())
            // ASCII only (SNS subjects): the reactor id is in the body and the attributes.
            .subject(format!("{} {}", n.action, n.severity))
            .message(Self::on_call_message(notice, &trace))
            .message_attributes(attr::ACTION, string(n.action.as_str()).map_err(invalid)?)
            .message_attributes(
                attr::SEVERITY,
                string(n.severity.as_str()).map_err(invalid)?,
            )
            .message_attributes(attr::REACTOR, string(&n.reactor).map_err(invalid)?)
            .message_attributes(attr::EPISODE_ID, string(&n.episode_id).map_err(invalid)?)
            .build()
            .map_err(invalid)
    }
}

impl OnCallPublisher for SnsAlerts {
    const NOTIFY_OPERATION: AwsOperation = OPERATION;
    const MAX_NOTIFY_BATCH: usize = MAX_PUBLISH_BATCH_ENTRIES;

    async fn notify(&self, notices: &[Notice<'_>]) -> Vec<Result<String, TransientError>> {
        let Some(topic) = self.on_call_topic_arn.as_deref() else {
            let e = TransientError::new(
                OPERATION,
                FailureKind::Misconfigured,
                "no on-call topic configured",
            );
            return vec![Err(e); notices.len()];
        };
        let entries: Result<Vec<_>, _> = notices
            .iter()
            .enumerate()
            .map(|(i, n)| Self::on_call_entry(i, n))
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => return vec![Err(e); notices.len()],
        };
        // Never drop a page because SNS refused it: retry (and alarm on failures).
        publish_batch(
            &self.client,
            topic,
            entries,
            OPERATION,
            |kind, _| match kind {
                FailureKind::Rejected | FailureKind::Service => FailureKind::Unprocessed,
                kind => kind,
            },
        )
        .await
    }
}

//! The Kinesis event as Lambda delivers it, and the partial batch response.

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;

use crate::domain::SequenceNumber;
use crate::pipeline::{BatchReport, InboundRecord};
use crate::ports::Origin;

/// Shard id used when an event record carries no `eventID` (never the case from Lambda).
const UNKNOWN_SHARD: &str = "shardId-unknown";

impl From<KinesisEventRecord> for InboundRecord {
    fn from(record: KinesisEventRecord) -> Self {
        // Lambda's eventID is "<shard id>:<sequence number>".
        let shard_id = record
            .event_id
            .as_deref()
            .and_then(|id| id.split_once(':'))
            .map(|(shard, _)| shard.to_string())
            .unwrap_or_else(|| UNKNOWN_SHARD.to_string());
        let kinesis = record.kinesis;
        InboundRecord {
            origin: Origin {
                shard_id,
                sequence_number: SequenceNumber::new(kinesis.sequence_number),
                partition_key: kinesis.partition_key,
                arrival: kinesis.approximate_arrival_timestamp.0,
            },
            data: kinesis.data.0,
        }
    }
}

/// The event's Kinesis records, as they came: KPL aggregates are unpacked by the pipeline.
pub fn inbound_records(event: KinesisEvent) -> Vec<InboundRecord> {
    event.records.into_iter().map(InboundRecord::from).collect()
}

impl BatchReport {
    /// The partial batch response: every Kinesis record with a failed reading, once, lowest
    /// sequence number first.
    pub fn response(&self) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        for seq in self.failed_sequence_numbers() {
            response.add_failure(seq.as_str());
        }
        response
    }
}

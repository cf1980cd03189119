//! Real Kinesis event JSON, as Lambda sends it, in and out.

use aws_lambda_events::event::kinesis::KinesisEvent;
use reactor_monitor::kinesis::inbound_records;

const FIXTURE: &[u8] = include_bytes!("../../../../events/kinesis-event.json");

#[test]
fn the_fixture_round_trips_through_the_event_types() {
    let parsed: KinesisEvent = serde_json::from_slice(FIXTURE).unwrap();
    let again: KinesisEvent =
        serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
    assert_eq!(parsed, again);
}

#[test]
fn records_keep_their_shard_sequence_number_partition_key_and_bytes() {
    let records = inbound_records(serde_json::from_slice(FIXTURE).unwrap());

    assert_eq!(records.len(), 4);
    assert_eq!(records[0].origin.shard_id, "shardId-000000000000");
    assert_eq!(
        records[2].origin.sequence_number.as_str(),
        "49656865813316372830357373633619430814930082556787245058"
    );
    assert_eq!(records[3].origin.partition_key, "reactor-2");
    assert_eq!(records[2].data, br#"{"temp":712.4,"reactor":"reac"#);
    assert_eq!(
        records[0].origin.arrival.timestamp_millis(),
        1_583_591_390_123
    );
}

/// One odd record of each kind among good ones (`events/kinesis-event-odd-records.json`):
/// `encryptionType` null and unknown, schema version 2.0 and a new field, no arrival time, a
/// 4-digit fraction, `data` not base64, a record without any sequence number.
#[tokio::test]
async fn odd_records_of_an_event_end_each_in_their_own_outcome() {
    use reactor_monitor::domain::RejectReason;
    use reactor_monitor::kinesis::KinesisBatch;
    use reactor_monitor::pipeline::Outcome;
    use reactor_monitor_local::testing::memory_pipeline;

    const ODD: &[u8] = include_bytes!("../../../../events/kinesis-event-odd-records.json");
    let batch = KinesisBatch::from_slice(ODD).unwrap();
    assert_eq!(batch.records.len(), 8);
    assert_eq!(
        batch.records[4]
            .as_ref()
            .unwrap()
            .origin
            .arrival
            .timestamp_millis(),
        1_583_591_390_000
    );

    let pipeline = memory_pipeline();
    let report = pipeline.process_inbound(batch.inbound(), None).await;

    let outcomes: Vec<(String, String)> = report
        .records
        .iter()
        .map(|r| {
            let outcome = match &r.outcome {
                Outcome::Stored => "stored".to_string(),
                Outcome::StoredAndAlerted { .. } => "alerted".to_string(),
                Outcome::DeadLettered(reason) => reason.code().to_string(),
                Outcome::Failed(e) => format!("failed: {e}"),
            };
            (r.origin.sequence_number.to_string(), outcome)
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("1", "stored"),
        ("2", "stored"),
        ("3", "stored"),
        ("4", "stored"),
        ("5", "stored"),
        ("6", "kinesis_envelope_unreadable"),
        ("7", "alerted"),
    ]
    .iter()
    .map(|(s, o)| (s.to_string(), o.to_string()))
    .collect();
    assert_eq!(outcomes, expected);
    assert!(report.response().batch_item_failures.is_empty());
    let letters = pipeline.dead_letters.letters.lock().unwrap();
    let (payload, reason) = letters.values().next().unwrap();
    assert_eq!(*reason, RejectReason::EnvelopeUnreadable);
    assert!(
        std::str::from_utf8(payload)
            .unwrap()
            .contains("not base64!")
    );
}

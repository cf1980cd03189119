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

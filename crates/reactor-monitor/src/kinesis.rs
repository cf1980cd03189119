//! The Kinesis event as Lambda delivers it, and the partial batch response.
//!
//! [`KinesisBatch`] is the event decoded tolerantly, record by record: one odd record never
//! rejects the event (which would stall the shard). Per record:
//!
//! - fields the function does not use (`encryptionType`, `kinesisSchemaVersion`,
//!   `eventSource`, anything new) are ignored, whatever their value;
//! - `approximateArrivalTimestamp` is read from the JSON number's text, exactly: the
//!   millisecond that contains the instant (any number of fraction digits, exponent form);
//!   when it is missing or unreadable the record is still processed, with the time the event
//!   was decoded as its arrival;
//! - a missing or non-string `partitionKey` is taken as empty (it is only metadata here);
//! - a record whose `data` is missing or not base64, or which is not an object, but whose
//!   sequence number is known (`kinesis.sequenceNumber`, else the part of `eventID` after the
//!   shard id) is dead-lettered as `kinesis_envelope_unreadable`, its JSON text as the payload;
//! - a record with no sequence number at all cannot be dead-lettered under a key nor reported
//!   in `batchItemFailures` (Lambda never sends one): it is logged as an error, with its
//!   position in the event, and skipped.
//!
//! An event that is not an object with a `Records` array is not a Kinesis event at all (a
//! misconfigured trigger): it fails to deserialize, and the invocation fails.

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::{RejectReason, SequenceNumber};
use crate::pipeline::{BatchReport, Inbound, InboundRecord};
use crate::ports::Origin;

/// Shard id used when an event record carries no `eventID` (never the case from Lambda).
const UNKNOWN_SHARD: &str = "shardId-unknown";

/// Milliseconds per second: the arrival time is kept to the millisecond (Kinesis' own
/// precision for `ApproximateArrivalTimestamp`).
const MILLIS_PER_SECOND_EXPONENT: i64 = 3;

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

/// The Kinesis event, decoded record by record: what the handler can take instead of
/// [`KinesisEvent`] (it implements `Deserialize`, so the runtime deserializes into it).
#[derive(Debug, Clone, Default)]
pub struct KinesisBatch {
    /// One entry per record of the event, in order.
    pub records: Vec<Result<InboundRecord, EnvelopeError>>,
}

/// A record of the event whose envelope cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {position} of the event: {problem}")]
pub struct EnvelopeError {
    /// Its position in the event's `Records`.
    pub position: usize,
    /// Where it sits in the stream, when its sequence number is known.
    pub origin: Option<Box<Origin>>,
    /// The record's JSON text, as Lambda sent it.
    pub raw: Vec<u8>,
    pub problem: EnvelopeProblem,
}

/// What is wrong with a record's envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeProblem {
    #[error("not a JSON object with a `kinesis` object")]
    NotARecord,
    #[error("no `kinesis.data`")]
    DataMissing,
    #[error("`kinesis.data` is not a base64 string")]
    DataNotBase64,
    #[error("no sequence number in `kinesis.sequenceNumber` or `eventID`")]
    SequenceNumberMissing,
}

impl EnvelopeError {
    /// What the pipeline does with it: dead-letter its JSON text when it has a place in the
    /// stream; `None` (logged) when it has none.
    pub fn into_inbound(self) -> Option<Inbound> {
        match self.origin {
            Some(origin) => Some(Inbound::Rejected(
                InboundRecord {
                    origin: *origin,
                    data: self.raw,
                },
                RejectReason::EnvelopeUnreadable,
            )),
            None => {
                tracing::error!(
                    position = self.position,
                    problem = %self.problem,
                    record_bytes = self.raw.len(),
                    "a record of the event has no sequence number: it cannot be dead-lettered or reported, skipped"
                );
                None
            }
        }
    }
}

/// An event the function can process: the tolerant [`KinesisBatch`] it is deployed with, or
/// `aws_lambda_events`' strict [`KinesisEvent`] (tests and tools that build one).
pub trait KinesisInput {
    /// Records in the event, as Lambda counts them.
    fn record_count(&self) -> usize;
    /// What the pipeline processes.
    fn into_inbound(self) -> Vec<Inbound>;
}

impl KinesisInput for KinesisBatch {
    fn record_count(&self) -> usize {
        self.records.len()
    }
    fn into_inbound(self) -> Vec<Inbound> {
        self.inbound()
    }
}

impl KinesisInput for KinesisEvent {
    fn record_count(&self) -> usize {
        self.records.len()
    }
    fn into_inbound(self) -> Vec<Inbound> {
        inbound_records(self)
            .into_iter()
            .map(Inbound::Record)
            .collect()
    }
}

impl KinesisBatch {
    /// Decodes an event's JSON text.
    pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }

    /// What the pipeline processes: every readable record, and every unreadable one that
    /// can be dead-lettered (see the module documentation).
    pub fn inbound(self) -> Vec<Inbound> {
        self.records
            .into_iter()
            .filter_map(|r| match r {
                Ok(record) => Some(Inbound::Record(record)),
                Err(e) => e.into_inbound(),
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for KinesisBatch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Event {
            #[serde(rename = "Records")]
            records: Vec<Box<RawValue>>,
        }
        let event = Event::deserialize(deserializer)?;
        let decoded_at = Utc::now();
        Ok(Self {
            records: event
                .records
                .iter()
                .enumerate()
                .map(|(position, raw)| decode_record(position, raw, decoded_at))
                .collect(),
        })
    }
}

#[derive(Deserialize)]
struct RecordEnvelope<'a> {
    #[serde(rename = "eventID", default, borrow)]
    event_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    kinesis: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct KinesisFields<'a> {
    #[serde(rename = "sequenceNumber", default, borrow)]
    sequence_number: Option<&'a RawValue>,
    #[serde(rename = "partitionKey", default, borrow)]
    partition_key: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(rename = "approximateArrivalTimestamp", default, borrow)]
    approximate_arrival_timestamp: Option<&'a RawValue>,
}

fn string_of(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// A Kinesis sequence number: decimal digits.
fn sequence_number_of(text: &str) -> Option<SequenceNumber> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| SequenceNumber::new(text))
}

fn decode_record(
    position: usize,
    raw: &RawValue,
    decoded_at: DateTime<Utc>,
) -> Result<InboundRecord, EnvelopeError> {
    let error = |origin: Option<Origin>, problem| EnvelopeError {
        position,
        origin: origin.map(Box::new),
        raw: raw.get().as_bytes().to_vec(),
        problem,
    };
    let envelope = serde_json::from_str::<RecordEnvelope>(raw.get()).ok();
    // Lambda's eventID is "<shard id>:<sequence number>".
    let event_id = string_of(envelope.as_ref().and_then(|e| e.event_id));
    let (shard_id, id_sequence) = match event_id.as_deref().and_then(|id| id.split_once(':')) {
        Some((shard, seq)) => (shard.to_string(), sequence_number_of(seq)),
        None => (UNKNOWN_SHARD.to_string(), None),
    };
    let fields = envelope
        .as_ref()
        .and_then(|e| e.kinesis)
        .and_then(|k| serde_json::from_str::<KinesisFields>(k.get()).ok());
    let Some(fields) = fields else {
        let origin = id_sequence.map(|sequence_number| Origin {
            shard_id,
            sequence_number,
            partition_key: String::new(),
            arrival: decoded_at,
        });
        return Err(error(origin, EnvelopeProblem::NotARecord));
    };
    let sequence_number = string_of(fields.sequence_number)
        .as_deref()
        .and_then(sequence_number_of)
        .or(id_sequence);
    let arrival = fields
        .approximate_arrival_timestamp
        .and_then(|t| arrival_of(t.get()))
        .unwrap_or(decoded_at);
    let origin = sequence_number.map(|sequence_number| Origin {
        shard_id,
        sequence_number,
        partition_key: string_of(fields.partition_key).unwrap_or_default(),
        arrival,
    });
    let Some(data) = fields.data.filter(|d| d.get() != "null") else {
        return Err(error(origin, EnvelopeProblem::DataMissing));
    };
    let data = string_of(Some(data)).and_then(|b| aws_smithy_types::base64::decode(b).ok());
    match (origin, data) {
        (Some(origin), Some(data)) => Ok(InboundRecord { origin, data }),
        (origin, None) => Err(error(origin, EnvelopeProblem::DataNotBase64)),
        (None, Some(_)) => Err(error(None, EnvelopeProblem::SequenceNumberMissing)),
    }
}

/// The arrival time of `approximateArrivalTimestamp`'s JSON text (seconds since the epoch):
/// the millisecond that contains the instant, computed on the decimal digits, so that no
/// fraction is misread. `None` for anything that is not a JSON number or is out of range.
pub fn arrival_of(json_number: &str) -> Option<DateTime<Utc>> {
    millis_of(json_number.trim()).and_then(DateTime::from_timestamp_millis)
}

/// ⌊seconds × 1000⌋ of a JSON number's text (RFC 8259 §6 grammar), exactly.
fn millis_of(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let negative = bytes.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &text[int_start..i];
    if int_digits.is_empty() || (int_digits.len() > 1 && int_digits.starts_with('0')) {
        return None;
    }
    let mut frac_digits = "";
    if bytes.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &text[start..i];
        if frac_digits.is_empty() {
            return None;
        }
    }
    let mut exponent: i64 = 0;
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        let sign: i64 = match bytes.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            // Saturates: an exponent this large is out of range either way.
            exponent = exponent
                .saturating_mul(10)
                .saturating_add(i64::from(bytes[i] - b'0'));
            i += 1;
        }
        if i == start {
            return None;
        }
        exponent *= sign;
    }
    if i != bytes.len() {
        return None;
    }
    // value = digits × 10^(exponent − fraction length); in ms, 10^(… + 3).
    let digits: Vec<u8> = int_digits
        .bytes()
        .chain(frac_digits.bytes())
        .map(|b| b - b'0')
        .skip_while(|d| *d == 0)
        .collect();
    if digits.is_empty() {
        return Some(0);
    }
    let shift = exponent
        .saturating_sub(frac_digits.len() as i64)
        .saturating_add(MILLIS_PER_SECOND_EXPONENT);
    // Digits kept (those at or above the millisecond), and whether any below it is non-zero.
    let kept = (digits.len() as i64).saturating_add(shift.min(0)).max(0) as usize;
    let dropped_non_zero = digits[kept..].iter().any(|d| *d != 0);
    // i64 milliseconds have at most 19 digits.
    let magnitude_digits = (kept as i64).saturating_add(shift.max(0));
    if magnitude_digits > 19 {
        return None;
    }
    let mut magnitude: i128 = 0;
    for d in &digits[..kept] {
        magnitude = magnitude * 10 + i128::from(*d);
    }
    for _ in 0..shift.max(0) {
        magnitude *= 10;
    }
    let millis = if negative {
        -magnitude - i128::from(dropped_non_zero)
    } else {
        magnitude
    };
    i64::try_from(millis).ok()
}

impl Inbound {
    /// The record, readable or not.
    pub fn record(&self) -> &InboundRecord {
        match self {
            Inbound::Record(r) | Inbound::Rejected(r, _) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Latest millisecond chrono represents (year 262143) in ms since the epoch.
    const MAX_MILLIS: i64 = 8_210_266_876_799_999;

    fn ms(text: &str) -> Option<i64> {
        arrival_of(text).map(|t| t.timestamp_millis())
    }

    #[test]
    fn fractions_without_trailing_zeros_are_exact() {
        assert_eq!(ms("1583591390.5"), Some(1_583_591_390_500));
        assert_eq!(ms("1583591390.05"), Some(1_583_591_390_050));
        assert_eq!(ms("1583591390.005"), Some(1_583_591_390_005));
        assert_eq!(ms("1583591390.123"), Some(1_583_591_390_123));
        assert_eq!(ms("1583591390"), Some(1_583_591_390_000));
        assert_eq!(ms("1583591390.0"), Some(1_583_591_390_000));
    }

    #[test]
    fn digits_past_the_millisecond_are_cut_never_rounded() {
        assert_eq!(ms("1583591390.1239"), Some(1_583_591_390_123));
        assert_eq!(
            ms("1583591390.123999999999999999999"),
            Some(1_583_591_390_123)
        );
        assert_eq!(ms("1583591390.1230000001"), Some(1_583_591_390_123));
        assert_eq!(ms("-0.0001"), Some(-1));
        assert_eq!(ms("-1.5"), Some(-1_500));
    }

    #[test]
    fn exponent_forms_are_exact() {
        assert_eq!(ms("1.5835913905E9"), Some(1_583_591_390_500));
        assert_eq!(ms("1.583591390123e+9"), Some(1_583_591_390_123));
        assert_eq!(ms("1583591390123e-3"), Some(1_583_591_390_123));
        assert_eq!(ms("15835913901235E-4"), Some(1_583_591_390_123));
        assert_eq!(ms("0.0e999999999999999999999"), Some(0));
        assert_eq!(ms("1e-99999999999999999999"), Some(0));
    }

    #[test]
    fn what_is_not_a_json_number_or_out_of_range_is_no_arrival() {
        for text in [
            "",
            "-",
            ".5",
            "1.",
            "01.5",
            "1e",
            "1e+",
            "+1",
            "\"1583591390\"",
            "null",
            "1.5x",
            "NaN",
            "Infinity",
            "1e400",
            "9223372036854775808",
        ] {
            assert_eq!(ms(text), None, "{text:?}");
        }
    }

    /// Every way a JSON number may spell the instant `millis` ms (seconds, with or without
    /// the fraction's trailing zeros, digits past the ms, exponent forms).
    fn spellings(millis: i64, extra: &str) -> Vec<String> {
        let secs = millis.div_euclid(1000);
        let frac = millis.rem_euclid(1000);
        let three = format!("{frac:03}");
        let trimmed = three.trim_end_matches('0');
        let mut out = vec![format!("{secs}.{three}"), format!("{secs}.{three}{extra}")];
        out.push(if trimmed.is_empty() {
            format!("{secs}")
        } else {
            format!("{secs}.{trimmed}")
        });
        if secs >= 0 {
            let digits = format!("{secs}{three}");
            out.push(format!("{digits}e-3"));
            out.push(format!("{digits}{extra}E-{}", 3 + extra.len()));
            let (head, tail) = digits.split_at(1);
            out.push(format!("{head}.{tail}{extra}e+{}", digits.len() - 4));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_096))]

        #[test]
        fn every_spelling_of_a_millisecond_decodes_to_it(
            millis in 0i64..=MAX_MILLIS,
            extra in "[0-9]{0,12}",
        ) {
            for text in spellings(millis, &extra) {
                prop_assert_eq!(ms(&text), Some(millis), "{}", text);
            }
        }

        #[test]
        fn instants_around_now_decode_exactly(
            millis in 1_000_000_000_000i64..4_000_000_000_000,
            extra in "[0-9]{0,6}",
        ) {
            for text in spellings(millis, &extra) {
                prop_assert_eq!(ms(&text), Some(millis), "{}", text);
            }
        }
    }

    fn record(seq: &str, extra: &str) -> String {
        format!(
            r#"{{"kinesis":{{"kinesisSchemaVersion":"1.0","partitionKey":"reactor-1","sequenceNumber":"{seq}","data":"e30=","approximateArrivalTimestamp":1583591390.5{extra}}},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000003:{seq}","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::123456789012:role/r","awsRegion":"us-east-1","eventSourceARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s"}}"#
        )
    }

    fn batch(odd: &str) -> KinesisBatch {
        let event = format!(
            r#"{{"Records":[{},{},{}]}}"#,
            record("1", ""),
            odd,
            record("3", "")
        );
        let jd = &mut serde_json::Deserializer::from_slice(event.as_bytes());
        // The way lambda_runtime deserializes an event.
        serde_path_to_error::deserialize(jd).unwrap()
    }

    fn good_neighbours(batch: &KinesisBatch) {
        assert_eq!(batch.records.len(), 3);
        for (i, seq) in [(0, "1"), (2, "3")] {
            let r = batch.records[i].as_ref().unwrap();
            assert_eq!(r.origin.sequence_number.as_str(), seq);
            assert_eq!(r.origin.shard_id, "shardId-000000000003");
            assert_eq!(r.origin.arrival.timestamp_millis(), 1_583_591_390_500);
            assert_eq!(r.data, b"{}");
        }
    }

    #[test]
    fn unused_fields_with_odd_values_do_not_matter() {
        for odd in [
            r#""encryptionType":null"#,
            r#""encryptionType":"SOMETHING_NEW""#,
            r#""encryptionType":42"#,
            r#""kinesisSchemaVersion":"2.0""#,
            r#""newField":{"nested":[1,2,3]}"#,
        ] {
            let inner = record("2", "").replacen(
                "\"kinesisSchemaVersion\":\"1.0\",",
                &format!("{odd},"),
                1,
            );
            let b = batch(&inner);
            good_neighbours(&b);
            let r = b.records[1].as_ref().unwrap();
            assert_eq!(r.origin.sequence_number.as_str(), "2", "{odd}");
            assert_eq!(r.data, b"{}");
        }
    }

    #[test]
    fn a_record_without_an_arrival_time_is_processed_with_the_decoding_time() {
        let before = Utc::now();
        for odd in [
            record("2", "").replace(",\"approximateArrivalTimestamp\":1583591390.5", ""),
            record("2", "").replace("1583591390.5", "null"),
            record("2", "").replace("1583591390.5", "\"yesterday\""),
        ] {
            let b = batch(&odd);
            good_neighbours(&b);
            let r = b.records[1].as_ref().unwrap();
            assert!(r.origin.arrival >= before && r.origin.arrival <= Utc::now());
        }
    }

    #[test]
    fn a_record_whose_data_cannot_be_read_is_dead_lettered_by_its_sequence_number() {
        for (odd, problem) in [
            (
                record("2", "").replace(",\"data\":\"e30=\"", ""),
                EnvelopeProblem::DataMissing,
            ),
            (
                record("2", "").replace("\"e30=\"", "null"),
                EnvelopeProblem::DataMissing,
            ),
            (
                record("2", "").replace("\"e30=\"", "\"not base64!\""),
                EnvelopeProblem::DataNotBase64,
            ),
            (
                record("2", "").replace("\"e30=\"", "[1,2]"),
                EnvelopeProblem::DataNotBase64,
            ),
            // No kinesis.sequenceNumber: eventID still has it.
            (
                record("2", "")
                    .replace("\"sequenceNumber\":\"2\",", "")
                    .replace("\"e30=\"", "7"),
                EnvelopeProblem::DataNotBase64,
            ),
            (
                r#"{"eventID":"shardId-000000000003:2","kinesis":"scrambled"}"#.to_string(),
                EnvelopeProblem::NotARecord,
            ),
        ] {
            let b = batch(&odd);
            good_neighbours(&b);
            let e = b.records[1].as_ref().unwrap_err();
            assert_eq!(e.problem, problem, "{odd}");
            assert_eq!(e.position, 1);
            assert_eq!(e.raw, odd.as_bytes());
            let origin = e.origin.as_ref().unwrap();
            assert_eq!(origin.sequence_number.as_str(), "2");
            assert_eq!(origin.shard_id, "shardId-000000000003");
            let inbound = b.inbound();
            assert_eq!(inbound.len(), 3);
            match &inbound[1] {
                Inbound::Rejected(r, RejectReason::EnvelopeUnreadable) => {
                    assert_eq!(r.data, odd.as_bytes())
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_record_without_any_sequence_number_is_skipped_alone() {
        for odd in [
            "null".to_string(),
            "42".to_string(),
            r#"{"kinesis":{}}"#.to_string(),
            record("2", "")
                .replace("\"sequenceNumber\":\"2\",", "")
                .replace("\"eventID\":\"shardId-000000000003:2\",", ""),
            record("2", "")
                .replace("\"2\"", "\"not-a-number\"")
                .replace("\"eventID\":\"shardId-000000000003:2\",", ""),
        ] {
            let b = batch(&odd);
            good_neighbours(&b);
            assert!(b.records[1].as_ref().unwrap_err().origin.is_none(), "{odd}");
            let seqs: Vec<String> = b
                .inbound()
                .iter()
                .map(|i| i.record().origin.sequence_number.to_string())
                .collect();
            assert_eq!(seqs, ["1", "3"]);
        }
    }

    #[test]
    fn an_event_without_records_is_not_a_kinesis_event() {
        assert!(
            KinesisBatch::from_slice(br#"{"Records":[]}"#)
                .unwrap()
                .records
                .is_empty()
        );
        assert!(KinesisBatch::from_slice(br#"{"detail":{}}"#).is_err());
        assert!(KinesisBatch::from_slice(br#"{"Records":{}}"#).is_err());
    }

    /// The fixtures decode alike, except for the arrival time that aws_lambda_events 1.2.1
    /// misreads (`1583591400.25` → 25 ms): the tolerant decoder reads it exactly.
    #[test]
    fn the_tolerant_decoder_agrees_with_the_event_types_on_the_fixtures() {
        for (fixture, arrival_ms) in [
            (
                &include_bytes!("../../../events/kinesis-event.json")[..],
                &[
                    1_583_591_390_123,
                    1_583_591_391_123,
                    1_583_591_392_123,
                    1_583_591_393_123,
                ][..],
            ),
            (
                &include_bytes!("../../../events/kinesis-event-aggregated.json")[..],
                &[1_583_591_400_250, 1_583_591_401_250][..],
            ),
        ] {
            let strict = inbound_records(serde_json::from_slice(fixture).unwrap());
            let tolerant: Vec<InboundRecord> = KinesisBatch::from_slice(fixture)
                .unwrap()
                .records
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(strict.len(), tolerant.len());
            for ((s, t), ms) in strict.iter().zip(&tolerant).zip(arrival_ms) {
                assert_eq!(t.origin.arrival.timestamp_millis(), *ms);
                let strict_origin = Origin {
                    arrival: t.origin.arrival,
                    ..s.origin.clone()
                };
                assert_eq!(strict_origin, t.origin);
                assert_eq!(s.data, t.data);
            }
        }
    }
}

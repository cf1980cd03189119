//! S3 dead-letter sink: the rejected records of one phase of an invocation as one object of
//! JSON Lines, each record's payload byte for byte (base64) with why it was rejected and where
//! it sits in the stream.
//!
//! S3 rather than SQS because a Kinesis record can be 10 MiB, and an SQS message cannot
//! hold that once encoded as text. One object per call rather than one per record: a batch
//! with parse errors costs one PutObject, not one per error. The shape follows Amazon Data
//! Firehose, which writes the records it could not process to S3 as JSON documents with the
//! raw record base64-encoded, an error code and the arrival timestamp
//! (<https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion-error-handling.html>).
//!
//! The object key is derived from the records' place in the stream
//! ([`S3DeadLetters::object_key`]), so a replay of the same batch writes the same object again
//! instead of a second one. When a retry composes a different batch (Lambda retries from the
//! lowest reported sequence number, bisect splits a batch), the same record can be in two
//! objects: readers identify a record by (shard id, sequence number, subsequence number), as
//! [`read_object`] gives it, and keep one line per identity.

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::sdk_failure;
use crate::domain::{NotASequenceNumber, SequenceNumber};
use crate::operation::AwsOperation;
use crate::ports::{DeadLetter, DeadLetterSink, note_request_id};
use crate::sinks;

/// Object metadata keys (sent as `x-amz-meta-*`): a summary of the object, so that a listing
/// tool or `head-object` tells what it holds without reading it.
pub mod meta {
    /// How many records (lines) the object holds, in decimal.
    pub const COUNT: &str = "count";
    /// `<reason code>=<count>` for each reason, by code, joined with `,`.
    pub const REASONS: &str = "reasons";
    pub const SHARD_ID: &str = "shard-id";
    /// The lowest sequence number in the object (`…:<subsequence>` for a KPL user record).
    pub const FIRST_SEQUENCE_NUMBER: &str = "first-sequence-number";
    /// The highest sequence number in the object.
    pub const LAST_SEQUENCE_NUMBER: &str = "last-sequence-number";
    /// When the records were rejected, RFC 3339 UTC with milliseconds.
    pub const REJECTED_AT: &str = "rejected-at";
}

/// Key prefix of dead-letter objects in the bucket.
pub const KEY_PREFIX: &str = "parse-errors/";
/// Extension of dead-letter objects' keys.
pub const KEY_SUFFIX: &str = ".jsonl";
/// The objects' Content-Type. JSON Lines has no media type registered with IANA; its
/// specification suggests this one (<https://jsonlines.org/>).
pub const CONTENT_TYPE: &str = "application/jsonl";

/// One line of a dead-letter object as written: one rejected record.
#[derive(Serialize)]
struct LineOut<'a> {
    reject_reason: &'static str,
    shard_id: &'a str,
    sequence_number: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subsequence_number: Option<u64>,
    partition_key: &'a str,
    arrived_at: String,
    rejected_at: &'a str,
    payload_bytes: usize,
    data: Base64<'a>,
}

/// One line of a dead-letter object as read.
#[derive(Deserialize)]
struct LineIn {
    reject_reason: String,
    shard_id: String,
    sequence_number: String,
    #[serde(default)]
    subsequence_number: Option<u64>,
    partition_key: String,
    arrived_at: String,
    rejected_at: String,
    payload_bytes: usize,
    data: String,
}

/// Bytes written as base64 (standard alphabet, padded) straight into the JSON text, a few
/// kilobytes at a time: a 10 MiB payload is never copied whole into a `String` first.
struct Base64<'a>(&'a [u8]);

impl fmt::Display for Base64<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A multiple of 3 bytes encodes to whole base64 quanta: no padding until the end.
        const CHUNK: usize = 3 * 4096;
        for chunk in self.0.chunks(CHUNK) {
            f.write_str(&aws_smithy_types::base64::encode(chunk))?;
        }
        Ok(())
    }
}

impl Serialize for Base64<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A dead letter read back from an object ([`read_object`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLetter {
    /// The reject reason's code (`RejectReason::code`): `not_json`, `store_rejected`, …
    pub reason: String,
    pub shard_id: String,
    /// With the subsequence number for a user record of a KPL aggregate.
    pub sequence_number: SequenceNumber,
    pub partition_key: String,
    /// Kinesis' approximate arrival time, to the millisecond.
    pub arrived_at: DateTime<Utc>,
    /// When the function rejected the record, to the millisecond.
    pub rejected_at: DateTime<Utc>,
    /// The record's payload, byte for byte.
    pub payload: Vec<u8>,
}

impl KeptLetter {
    /// What identifies the record across objects: its shard and its sequence number with the
    /// subsequence.
    pub fn identity(&self) -> (&str, &SequenceNumber) {
        (&self.shard_id, &self.sequence_number)
    }
}

/// Why a dead-letter object could not be read; `line` counts from 1. The object is not one
/// this sink wrote, or was changed since: read it by hand, nothing in it is trusted.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableObject {
    #[error("line {line} is not a dead letter: {source}")]
    NotALine {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("line {line}: `data` is not base64")]
    DataNotBase64 { line: usize },
    #[error("line {line}: `data` holds {decoded} bytes where `payload_bytes` says {declared}")]
    LengthMismatch {
        line: usize,
        decoded: usize,
        declared: usize,
    },
    #[error("line {line}: {source}")]
    SequenceNumber {
        line: usize,
        #[source]
        source: NotASequenceNumber,
    },
    #[error("line {line}: `{field}` is not an RFC 3339 time: {value:?}")]
    Time {
        line: usize,
        field: &'static str,
        value: String,
    },
}

/// Reads a dead-letter object: one [`KeptLetter`] per line, in the object's order. Blank
/// lines (the final `\n`) are skipped; any other line that is not a dead letter, or whose
/// payload's length differs from `payload_bytes`, makes the whole object unreadable.
pub fn read_object(body: &[u8]) -> Result<Vec<KeptLetter>, UnreadableObject> {
    let mut letters = Vec::new();
    for (index, text) in body.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let raw: LineIn = serde_json::from_slice(text)
            .map_err(|source| UnreadableObject::NotALine { line, source })?;
        let payload = aws_smithy_types::base64::decode(&raw.data)
            .map_err(|_| UnreadableObject::DataNotBase64 { line })?;
        if payload.len() != raw.payload_bytes {
            return Err(UnreadableObject::LengthMismatch {
                line,
                decoded: payload.len(),
                declared: raw.payload_bytes,
            });
        }
        let record: SequenceNumber = raw
            .sequence_number
            .parse()
            .map_err(|source| UnreadableObject::SequenceNumber { line, source })?;
        let sequence_number = match raw.subsequence_number {
            Some(index) => record.user_record(index),
            None => record,
        };
        let time = |field: &'static str, value: String| {
            DateTime::parse_from_rfc3339(&value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| UnreadableObject::Time { line, field, value })
        };
        letters.push(KeptLetter {
            reason: raw.reject_reason,
            shard_id: raw.shard_id,
            sequence_number,
            partition_key: raw.partition_key,
            arrived_at: time("arrived_at", raw.arrived_at)?,
            rejected_at: time("rejected_at", raw.rejected_at)?,
            payload,
        });
    }
    Ok(letters)
}

/// The dead-letter sink on S3: one object of JSON Lines per call, in one bucket.
#[derive(Clone)]
pub struct S3DeadLetters {
    client: Client,
    bucket: String,
}

impl S3DeadLetters {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// `parse-errors/<shard id>/<first>-<last>.jsonl`: the lowest and highest sequence number
    /// of `letters` (`…:<subsequence>` for a user record of an aggregate), within S3's key
    /// rules (`sinks::s3::object_key`); `None` for no letters. Letters of one shard: the key
    /// names the first letter's.
    ///
    /// Why a replay overwrites and never loses a record: a Kinesis batch is a contiguous run
    /// of its shard, and whether a record is a parse error depends on the record alone, so two
    /// objects of parse errors with the same first and last sequence number hold the same
    /// records. A reading a sink refuses is refused on every delivery, unless a transient
    /// failure hides the refusal: then the reading is reported for retry and kept by a later
    /// delivery. A parse error is never a reading: an object of parse errors and one of
    /// refused readings never share a key.
    pub fn object_key(letters: &[DeadLetter<'_>]) -> Option<String> {
        let shard = &letters.first()?.origin.shard_id;
        let sequence_numbers = letters.iter().map(|l| &l.origin.sequence_number);
        let first = sequence_numbers.clone().min()?;
        let last = sequence_numbers.max()?;
        Some(sinks::s3::object_key(
            KEY_PREFIX,
            &[shard, &format!("{first}-{last}{KEY_SUFFIX}")],
        ))
    }

    /// The object's user metadata ([`meta`]): US-ASCII, at most `USER_METADATA_MAX_BYTES` in
    /// all. The reasons take what the other entries leave, cut with a digest when longer.
    pub fn metadata(letters: &[DeadLetter<'_>], rejected_at: &str) -> Vec<(&'static str, String)> {
        let budget = sinks::s3::USER_METADATA_MAX_BYTES;
        let sequence_numbers = letters.iter().map(|l| &l.origin.sequence_number);
        let bound = |n: Option<&SequenceNumber>| n.map(ToString::to_string).unwrap_or_default();
        let shard = letters.first().map(|l| l.origin.shard_id.as_str());
        let mut entries = vec![
            (meta::COUNT, letters.len().to_string()),
            (
                meta::SHARD_ID,
                sinks::s3::metadata_value(shard.unwrap_or_default(), budget),
            ),
            (
                meta::FIRST_SEQUENCE_NUMBER,
                sinks::s3::metadata_value(&bound(sequence_numbers.clone().min()), budget),
            ),
            (
                meta::LAST_SEQUENCE_NUMBER,
                sinks::s3::metadata_value(&bound(sequence_numbers.max()), budget),
            ),
            (meta::REJECTED_AT, rejected_at.to_owned()),
        ];
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for letter in letters {
            *reasons.entry(letter.reason.code()).or_default() += 1;
        }
        let reasons: Vec<String> = reasons
            .into_iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect();
        let used = sinks::s3::metadata_bytes(entries.iter().map(|(k, v)| (*k, v.as_str())));
        let left = budget.saturating_sub(used + meta::REASONS.len());
        entries.push((
            meta::REASONS,
            sinks::s3::metadata_value(&reasons.join(","), left),
        ));
        entries
    }

    /// The object's body: one JSON object per letter, in the order given, each line ended by
    /// `\n`. Fields: `reject_reason`, `shard_id`, `sequence_number`, `subsequence_number`
    /// (only for a KPL user record), `partition_key`, `arrived_at` and `rejected_at` (RFC 3339
    /// UTC, milliseconds), `payload_bytes`, and `data`, the payload base64-encoded (standard
    /// alphabet, padded). A line is about 4/3 of its payload plus at most ~2.2 KB; the letters
    /// of one invocation, whose payload Lambda caps at 6 MB, stay far below S3's 5 GB for one
    /// PutObject (`sinks::fits`).
    pub fn body(letters: &[DeadLetter<'_>], rejected_at: &str) -> Vec<u8> {
        let size: usize = letters
            .iter()
            .map(|l| l.payload.len().div_ceil(3) * 4 + 512)
            .sum();
        let mut body = Vec::with_capacity(size);
        for letter in letters {
            let o = letter.origin;
            let line = LineOut {
                reject_reason: letter.reason.code(),
                shard_id: &o.shard_id,
                sequence_number: o.sequence_number.as_str(),
                subsequence_number: o.sequence_number.subsequence(),
                partition_key: &o.partition_key,
                arrived_at: o.arrival.to_rfc3339_opts(SecondsFormat::Millis, true),
                rejected_at,
                payload_bytes: letter.payload.len(),
                data: Base64(letter.payload),
            };
            serde_json::to_writer(&mut body, &line).expect("a dead letter serializes");
            body.push(b'\n');
        }
        body
    }
}

/// Metadata values must be printable ASCII: anything else is percent-encoded.
pub fn encode_metadata(value: &str) -> String {
    sinks::s3::metadata_value(value, usize::MAX)
}

impl DeadLetterSink for S3DeadLetters {
    const OPERATION: AwsOperation = AwsOperation::S3PutObject;

    /// One PutObject of [`S3DeadLetters::body`] at [`S3DeadLetters::object_key`]; no request
    /// for no letters.
    async fn put(&self, letters: &[DeadLetter<'_>]) -> Result<(), crate::ports::TransientError> {
        let Some(key) = Self::object_key(letters) else {
            return Ok(());
        };
        let rejected_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(CONTENT_TYPE)
            .body(ByteStream::from(Self::body(letters, &rejected_at)));
        for (key, value) in Self::metadata(letters, &rejected_at) {
            request = request.metadata(key, value);
        }
        let response = request.send().await;
        note_request_id(response.request_id());
        response
            .map(|_| ())
            .map_err(|e| sdk_failure(Self::OPERATION, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RejectReason;
    use crate::ports::Origin;

    fn origin(sequence_number: SequenceNumber, partition_key: &str) -> Origin {
        Origin {
            shard_id: "shardId-000000000000".into(),
            sequence_number,
            partition_key: partition_key.into(),
            arrival: DateTime::parse_from_rfc3339("2020-03-07T14:29:50.123Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn metadata_cannot_carry_control_characters_or_non_ascii() {
        assert_eq!(encode_metadata("key-1"), "key-1");
        assert_eq!(encode_metadata("a\r\nb%"), "a%0D%0Ab%25");
        assert_eq!(encode_metadata("é"), "%C3%A9");
    }

    #[test]
    fn every_letter_reads_back_byte_for_byte_with_its_place_and_reason() {
        let all_bytes: Vec<u8> = (0..=255).collect();
        let origins = [
            origin(SequenceNumber::new("9"), "p\n\"é"),
            origin(SequenceNumber::new("10").user_record(3), "k"),
            origin(SequenceNumber::new("11"), ""),
        ];
        let letters = [
            DeadLetter {
                payload: &all_bytes,
                origin: &origins[0],
                reason: RejectReason::NotUtf8,
            },
            DeadLetter {
                payload: b"{\"temp\":",
                origin: &origins[1],
                reason: RejectReason::NotJson,
            },
            DeadLetter {
                payload: b"",
                origin: &origins[2],
                reason: RejectReason::NotJson,
            },
        ];

        let body = S3DeadLetters::body(&letters, "2020-03-07T14:30:00.000Z");
        let read = read_object(&body).unwrap();

        assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), 3);
        assert_eq!(read.len(), 3);
        for (kept, letter) in read.iter().zip(&letters) {
            assert_eq!(kept.payload, letter.payload);
            assert_eq!(kept.reason, letter.reason.code());
            assert_eq!(
                kept.identity(),
                (
                    letter.origin.shard_id.as_str(),
                    &letter.origin.sequence_number
                )
            );
            assert_eq!(kept.partition_key, letter.origin.partition_key);
            assert_eq!(kept.arrived_at, letter.origin.arrival);
            assert_eq!(
                kept.rejected_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
                "2020-03-07T14:30:00.000Z"
            );
        }
        let second: serde_json::Value =
            serde_json::from_slice(body.split(|&b| b == b'\n').nth(1).unwrap()).unwrap();
        assert_eq!(second["sequence_number"], "10");
        assert_eq!(second["subsequence_number"], 3);
        assert_eq!(second["data"], "eyJ0ZW1wIjo=");
        assert_eq!(second["payload_bytes"], 8);
        let first: serde_json::Value =
            serde_json::from_slice(body.split(|&b| b == b'\n').next().unwrap()).unwrap();
        assert!(first.get("subsequence_number").is_none(), "{first}");
    }

    #[test]
    fn a_payload_longer_than_one_base64_chunk_is_encoded_whole() {
        let payload: Vec<u8> = (0..3 * 4096 * 2 + 2).map(|i| (i * 7 % 251) as u8).collect();
        let origin = origin(SequenceNumber::new("1"), "k");
        let letter = DeadLetter {
            payload: &payload,
            origin: &origin,
            reason: RejectReason::NotUtf8,
        };

        let body = S3DeadLetters::body(&[letter], "2020-03-07T14:30:00.000Z");

        let line: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            line["data"].as_str().unwrap(),
            aws_smithy_types::base64::encode(&payload)
        );
        assert_eq!(read_object(&body).unwrap()[0].payload, payload);
    }

    #[test]
    fn the_key_spans_the_letters_lowest_to_highest_sequence_number() {
        let origins = [
            origin(SequenceNumber::new("100").user_record(2), "k"),
            origin(SequenceNumber::new("9"), "k"),
            origin(SequenceNumber::new("100").user_record(0), "k"),
        ];
        let letters: Vec<DeadLetter<'_>> = origins
            .iter()
            .map(|origin| DeadLetter {
                payload: b"x",
                origin,
                reason: RejectReason::NotJson,
            })
            .collect();

        assert_eq!(
            S3DeadLetters::object_key(&letters).as_deref(),
            Some("parse-errors/shardId-000000000000/9-100:2.jsonl")
        );
        assert_eq!(
            S3DeadLetters::object_key(&letters[1..2]).as_deref(),
            Some("parse-errors/shardId-000000000000/9-9.jsonl")
        );
        assert_eq!(S3DeadLetters::object_key(&[]), None);
        let metadata: BTreeMap<_, _> = S3DeadLetters::metadata(&letters, "t").into_iter().collect();
        assert_eq!(metadata[meta::COUNT], "3");
        assert_eq!(metadata[meta::REASONS], "not_json=3");
        assert_eq!(metadata[meta::FIRST_SEQUENCE_NUMBER], "9");
        assert_eq!(metadata[meta::LAST_SEQUENCE_NUMBER], "100:2");
    }

    #[test]
    fn an_object_whose_line_lies_about_its_payload_is_unreadable() {
        let good = br#"{"reject_reason":"not_json","shard_id":"s","sequence_number":"1","partition_key":"k","arrived_at":"2020-03-07T14:29:50.123Z","rejected_at":"2020-03-07T14:29:50.123Z","payload_bytes":1,"data":"eA=="}"#;
        assert_eq!(read_object(good).unwrap()[0].payload, b"x");
        let long =
            String::from_utf8_lossy(good).replace("\"payload_bytes\":1", "\"payload_bytes\":2");
        assert!(matches!(
            read_object(long.as_bytes()),
            Err(UnreadableObject::LengthMismatch {
                line: 1,
                decoded: 1,
                declared: 2
            })
        ));
        let not_base64 = String::from_utf8_lossy(good).replace("eA==", "e!");
        assert!(matches!(
            read_object(format!("\n{not_base64}").as_bytes()),
            Err(UnreadableObject::DataNotBase64 { line: 2 })
        ));
        assert!(matches!(
            read_object(b"{}\n"),
            Err(UnreadableObject::NotALine { line: 1, .. })
        ));
    }
}

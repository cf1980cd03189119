//! S3 dead-letter sink: each rejected payload as one object, byte for byte.
//!
//! S3 rather than SQS because a Kinesis record can be 1 MiB, and an SQS message cannot
//! hold that once encoded as text. The object key is derived from the record's place in
//! the stream, so a replay writes the same object again instead of a second one.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{SecondsFormat, Utc};

use super::sdk_failure;
use crate::ports::{DeadLetter, DeadLetterSink, Origin, note_request_id};

/// Object metadata keys (sent as `x-amz-meta-*`).
pub mod meta {
    pub const REASON: &str = "reject-reason";
    pub const SHARD_ID: &str = "shard-id";
    pub const SEQUENCE_NUMBER: &str = "sequence-number";
    pub const PARTITION_KEY: &str = "partition-key";
    pub const ARRIVED_AT: &str = "arrived-at";
    pub const REJECTED_AT: &str = "rejected-at";
}

/// Key prefix of dead-lettered payloads in the bucket.
pub const KEY_PREFIX: &str = "parse-errors/";

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

    pub fn object_key(origin: &Origin) -> String {
        format!("{KEY_PREFIX}{}/{}", origin.shard_id, origin.sequence_number)
    }
}

/// Metadata values must be printable ASCII: anything else is percent-encoded.
pub fn encode_metadata(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl DeadLetterSink for S3DeadLetters {
    const OPERATION: &'static str = "PutObject";

    async fn put(&self, letter: DeadLetter<'_>) -> Result<(), crate::ports::TransientError> {
        let o = letter.origin;
        let response = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(Self::object_key(o))
            .content_type("application/octet-stream")
            .body(ByteStream::from(letter.payload.to_vec()))
            .metadata(meta::REASON, letter.reason.code())
            .metadata(meta::SHARD_ID, encode_metadata(&o.shard_id))
            .metadata(meta::SEQUENCE_NUMBER, o.sequence_number.to_string())
            .metadata(meta::PARTITION_KEY, encode_metadata(&o.partition_key))
            .metadata(
                meta::ARRIVED_AT,
                o.arrival.to_rfc3339_opts(SecondsFormat::Millis, true),
            )
            .metadata(
                meta::REJECTED_AT,
                Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            )
            .send()
            .await;
        note_request_id(response.request_id());
        response
            .map(|_| ())
            .map_err(|e| sdk_failure(Self::OPERATION, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_cannot_carry_control_characters_or_non_ascii() {
        assert_eq!(encode_metadata("key-1"), "key-1");
        assert_eq!(encode_metadata("a\r\nb%"), "a%0D%0Ab%25");
        assert_eq!(encode_metadata("é"), "%C3%A9");
    }
}

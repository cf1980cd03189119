//! S3 dead-letter sink: each rejected payload as one object, byte for byte.
//!
//! S3 rather than SQS because a Kinesis record can be 1 MiB, and an SQS message cannot
//! hold that once encoded as text. The object key is derived from the record's place in
//! the stream, so a replay writes the same object again instead of a second one.

use crate::operation::AwsOperation;
use aws_sdk_s3::Client;
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{SecondsFormat, Utc};

use super::sdk_failure;
use crate::ports::{DeadLetter, DeadLetterSink, Origin, note_request_id};
use crate::sinks;

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

    /// `parse-errors/<shard id>/<sequence number>` (`…:<subsequence>` for a user record of an
    /// aggregate), within S3's key rules (`sinks::s3::object_key`).
    pub fn object_key(origin: &Origin) -> String {
        sinks::s3::object_key(
            KEY_PREFIX,
            &[&origin.shard_id, &origin.sequence_number.to_string()],
        )
    }

    /// The object's user metadata: US-ASCII, at most `USER_METADATA_MAX_BYTES` in all. The
    /// partition key (up to 256 Unicode characters, ~3 KB escaped) takes what the other
    /// entries leave, cut with a digest when longer.
    pub fn metadata(letter: &DeadLetter<'_>, rejected_at: &str) -> Vec<(&'static str, String)> {
        let o = letter.origin;
        let budget = sinks::s3::USER_METADATA_MAX_BYTES;
        let mut entries = vec![
            (meta::REASON, letter.reason.code().to_owned()),
            (
                meta::SHARD_ID,
                sinks::s3::metadata_value(&o.shard_id, budget),
            ),
            (
                meta::SEQUENCE_NUMBER,
                sinks::s3::metadata_value(&o.sequence_number.to_string(), budget),
            ),
            (
                meta::ARRIVED_AT,
                o.arrival.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            (meta::REJECTED_AT, rejected_at.to_owned()),
        ];
        let used = sinks::s3::metadata_bytes(entries.iter().map(|(k, v)| (*k, v.as_str())));
        let left = budget.saturating_sub(used + meta::PARTITION_KEY.len());
        entries.push((
            meta::PARTITION_KEY,
            sinks::s3::metadata_value(&o.partition_key, left),
        ));
        entries
    }
}

/// Metadata values must be printable ASCII: anything else is percent-encoded.
pub fn encode_metadata(value: &str) -> String {
    sinks::s3::metadata_value(value, usize::MAX)
}

impl DeadLetterSink for S3DeadLetters {
    const OPERATION: AwsOperation = AwsOperation::S3PutObject;

    async fn put(&self, letter: DeadLetter<'_>) -> Result<(), crate::ports::TransientError> {
        let rejected_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(Self::object_key(letter.origin))
            .content_type("application/octet-stream")
            .body(ByteStream::from(letter.payload.to_vec()));
        for (key, value) in Self::metadata(&letter, &rejected_at) {
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

    #[test]
    fn metadata_cannot_carry_control_characters_or_non_ascii() {
        assert_eq!(encode_metadata("key-1"), "key-1");
        assert_eq!(encode_metadata("a\r\nb%"), "a%0D%0Ab%25");
        assert_eq!(encode_metadata("é"), "%C3%A9");
    }
}

//! What each sink accepts: every documented rule of an AWS service that a value handed to it
//! must obey, with its source, and the one function per kind of value that brings it within
//! the rule. Adapters and telemetry never format a value for a sink any other way.
//!
//! How a reading's values are represented in each sink (the record contract in README.md):
//! - the temperature: in DynamoDB as a number written from the shortest decimal that reads
//!   back as the same binary64 (≤ 17 significant digits, exponent form outside 1E-6..1E21);
//!   a temperature outside DynamoDB's range (|t| ≥ 1E+126 or 0 < |t| < 1E-130) is stored
//!   as that same text in a string attribute with a flag ([`dynamodb::number`] says which);
//!   in CloudWatch metrics clamped into CloudWatch's range ([`cloudwatch::metric_value`]);
//! - the reactor id: verbatim in DynamoDB keys, SNS message attributes and X-Ray; in a
//!   CloudWatch dimension as an ASCII escape ([`cloudwatch::dimension_value`]); in S3
//!   metadata as an ASCII escape within the metadata budget ([`s3::metadata_value`]).

/// Percent-encodes every byte of `raw` for which `keep` is false, and `%` itself, so that the
/// encoding is reversible and two different values never give the same text.
fn percent_encode(raw: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if keep(byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xF)] as char);
        }
    }
    out
}

/// FNV-1a, 64 bits: a stable digest (the same on every build and machine) that tells apart
/// two values cut to the same prefix.
fn fnv1a(raw: &str) -> u64 {
    raw.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Length of the suffix [`fit`] appends: `~` and 16 hex digits.
const DIGEST_SUFFIX_LEN: usize = 17;

/// `encoded` (ASCII, from [`percent_encode`]) when it is at most `max` bytes; otherwise its
/// longest prefix that does not cut an escape, followed by `~` and the digest of `original`.
fn fit(encoded: String, original: &str, max: usize) -> String {
    if encoded.len() <= max {
        return encoded;
    }
    let mut cut = max.saturating_sub(DIGEST_SUFFIX_LEN);
    // Never split a `%XX` escape.
    if let Some(at) = encoded[..cut].rfind('%')
        && at + 3 > cut
    {
        cut = at;
    }
    format!("{}~{:016x}", &encoded[..cut], fnv1a(original))
}

/// The shortest decimal text that reads back as `value`, in plain notation when its decimal
/// exponent is within -6..=20 and in exponent notation (`8.04040404040404E126`) otherwise, so
/// that no value is ever written as a 100-digit integer. For finite values.
pub fn decimal(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let exponent = decimal_exponent(value);
    if (-6..=20).contains(&exponent) {
        value.to_string()
    } else {
        format!("{value:E}")
    }
}

/// The decimal exponent of the shortest text of a finite, non-zero `value`.
fn decimal_exponent(value: f64) -> i32 {
    let text = format!("{value:e}");
    text.rsplit_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0)
}

/// Amazon DynamoDB.
pub mod dynamodb {
    /// A number has at most 38 significant digits.
    /// Source: <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html#HowItWorks.DataTypes.Number>
    pub const NUMBER_MAX_SIGNIFICANT_DIGITS: usize = 38;
    /// Largest decimal exponent of a number: magnitudes up to
    /// 9.9999999999999999999999999999999999999E+125 (same source).
    pub const NUMBER_MAX_EXPONENT: i32 = 125;
    /// Smallest decimal exponent of a non-zero number: magnitudes from 1E-130 (same source).
    pub const NUMBER_MIN_EXPONENT: i32 = -130;
    /// A partition key value is at most 2048 bytes.
    /// Source: <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-partition-sort-keys>
    pub const PARTITION_KEY_MAX_BYTES: usize = 2048;
    /// A sort key value is at most 1024 bytes (same source).
    pub const SORT_KEY_MAX_BYTES: usize = 1024;
    /// An item, names and values together, is at most 400 KB.
    /// Source: <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items>
    pub const ITEM_MAX_BYTES: usize = 400 * 1024;

    /// The text of a number attribute (`N`) for `value`, `None` when DynamoDB cannot hold it
    /// (not finite, |value| ≥ 1E+126, or 0 < |value| < 1E-130). The text is the shortest
    /// decimal that reads back as `value` (≤ 17 significant digits), so the stored number
    /// is exactly the value the function read and classified.
    pub fn number(value: f64) -> Option<String> {
        if !value.is_finite() {
            return None;
        }
        if value != 0.0
            && !(NUMBER_MIN_EXPONENT..=NUMBER_MAX_EXPONENT)
                .contains(&super::decimal_exponent(value))
        {
            return None;
        }
        Some(super::decimal(value))
    }
}

/// Amazon CloudWatch metrics (written as embedded metric format lines).
pub mod cloudwatch {
    use std::borrow::Cow;

    /// A dimension value has 1 to 1,024 characters, only ASCII, and at least one that is not
    /// whitespace.
    /// Source: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_Dimension.html>
    pub const DIMENSION_VALUE_MAX_CHARS: usize = 1024;
    /// Largest magnitude of a metric value: CloudWatch rejects values outside 8.515920e-109
    /// to 1.174271e+108 (the API reference says -2^360 to 2^360 today; this is the tighter of
    /// the two published ranges), and NaN and ±Infinity.
    /// Source: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html>
    pub const METRIC_VALUE_MAX_MAGNITUDE: f64 = 1.174271e108;
    /// Smallest magnitude of a non-zero metric value (same source).
    pub const METRIC_VALUE_MIN_MAGNITUDE: f64 = 8.515920e-109;

    /// Whether CloudWatch accepts `value` as a dimension value.
    pub fn is_valid_dimension_value(value: &str) -> bool {
        !value.is_empty()
            && value.len() <= DIMENSION_VALUE_MAX_CHARS
            && value.is_ascii()
            && value.bytes().any(|b| !b.is_ascii_whitespace())
    }

    /// A dimension value for `raw`: itself when CloudWatch accepts it and it holds no `%`;
    /// otherwise every byte outside printable ASCII, and `%`, percent-encoded (all of its
    /// bytes when it is whitespace only), cut to 1,024 characters with a digest of `raw` when
    /// longer. `réacteur-7` becomes `r%C3%A9acteur-7`; two ids never share a value unless
    /// both were cut (then their digests tell them apart).
    pub fn dimension_value(raw: &str) -> Cow<'_, str> {
        if is_valid_dimension_value(raw) && !raw.contains('%') {
            return Cow::Borrowed(raw);
        }
        let blank = raw.bytes().all(|b| b.is_ascii_whitespace());
        let encoded = super::percent_encode(raw, |b| (0x20..0x7f).contains(&b) && !blank);
        Cow::Owned(super::fit(encoded, raw, DIMENSION_VALUE_MAX_CHARS))
    }

    /// A metric value for `value`: clamped into CloudWatch's range (a reading beyond it stays
    /// the largest value CloudWatch takes, so alarms on it still fire), magnitudes below the
    /// smallest become 0, and a value that is not a number becomes 0.
    pub fn metric_value(value: f64) -> f64 {
        if value.is_nan() {
            return 0.0;
        }
        let magnitude = value.abs();
        if magnitude < METRIC_VALUE_MIN_MAGNITUDE {
            0.0
        } else if magnitude > METRIC_VALUE_MAX_MAGNITUDE {
            METRIC_VALUE_MAX_MAGNITUDE.copysign(value)
        } else {
            value
        }
    }

    /// Whether CloudWatch accepts `value` as a metric value.
    pub fn is_valid_metric_value(value: f64) -> bool {
        value == 0.0
            || (value.is_finite()
                && (METRIC_VALUE_MIN_MAGNITUDE..=METRIC_VALUE_MAX_MAGNITUDE).contains(&value.abs()))
    }
}

/// Amazon S3 (the dead-letter bucket).
pub mod s3 {
    /// An object key is at most 1,024 bytes of UTF-8.
    /// Source: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>
    pub const OBJECT_KEY_MAX_BYTES: usize = 1024;
    /// User-defined metadata, keys and values together, is at most 2 KB (the sum of the
    /// bytes of each key and value), sent as `x-amz-meta-*` headers, which take US-ASCII only.
    /// Source: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html#UserMetadata>
    pub const USER_METADATA_MAX_BYTES: usize = 2048;
    /// One PutObject uploads at most 5 GB; larger objects need a multipart upload.
    /// Source: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/upload-objects.html>
    pub const PUT_OBJECT_MAX_BYTES: u64 = 5 * 1024 * 1024 * 1024;

    /// Whether an object key obeys the rules above.
    pub fn is_valid_object_key(key: &str) -> bool {
        !key.is_empty() && key.len() <= OBJECT_KEY_MAX_BYTES
    }

    /// An object key made of `prefix` and `parts` joined by `/`: each part with `/`, `%` and
    /// every byte outside printable ASCII percent-encoded, the whole cut with a digest when
    /// longer than 1,024 bytes.
    pub fn object_key(prefix: &str, parts: &[&str]) -> String {
        let mut key = prefix.to_owned();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push('/');
            }
            key.push_str(&super::percent_encode(part, |b| {
                (0x21..0x7f).contains(&b) && b != b'/'
            }));
        }
        let original = key.clone();
        super::fit(key, &original, OBJECT_KEY_MAX_BYTES)
    }

    /// A metadata value for `raw` within `budget` bytes: printable ASCII kept, `%` and every
    /// other byte percent-encoded, cut with a digest of `raw` when longer than `budget`.
    pub fn metadata_value(raw: &str, budget: usize) -> String {
        super::fit(
            super::percent_encode(raw, |b| (0x20..0x7f).contains(&b)),
            raw,
            budget,
        )
    }

    /// The bytes `entries` count against [`USER_METADATA_MAX_BYTES`].
    pub fn metadata_bytes<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
        entries.into_iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// Amazon SNS (alerts).
pub mod sns {
    /// A subject has fewer than 100 characters, ASCII only, no line breaks or control
    /// characters, and starts with a letter, a number or a punctuation mark.
    /// Source: <https://docs.aws.amazon.com/sns/latest/api/API_PublishBatchRequestEntry.html>
    pub const SUBJECT_MAX_CHARS: usize = 99;
    /// A message has at most 10 message attributes.
    /// Source: <https://docs.aws.amazon.com/sns/latest/dg/sns-message-attributes.html>
    pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
    /// A message attribute name has at most 256 characters: `A-Z a-z 0-9 _ - .`, not starting
    /// or ending with `.`, no `..`, not starting with `AWS.` or `Amazon.` (same source).
    pub const ATTRIBUTE_NAME_MAX_CHARS: usize = 256;
    /// A message is at most 256 KB (262,144 bytes) of UTF-8, attributes included.
    /// Source: <https://docs.aws.amazon.com/sns/latest/api/API_Publish.html>
    pub const MESSAGE_MAX_BYTES: usize = 262_144;

    pub fn is_valid_subject(subject: &str) -> bool {
        subject.len() <= SUBJECT_MAX_CHARS
            && subject.is_ascii()
            && subject.starts_with(|c: char| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
            && !subject.chars().any(|c| c.is_ascii_control())
    }

    pub fn is_valid_attribute_name(name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        !name.is_empty()
            && name.len() <= ATTRIBUTE_NAME_MAX_CHARS
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..")
            && !lower.starts_with("aws.")
            && !lower.starts_with("amazon.")
    }
}

/// AWS X-Ray annotations (the `aws.xray.annotations` of a span).
pub mod xray {
    /// An annotation key has at most 500 characters, alphanumeric or `_`.
    /// Source: <https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html#api-segmentdocuments-annotations>
    pub const ANNOTATION_KEY_MAX_CHARS: usize = 500;
    /// A string annotation value has at most 1,000 Unicode characters.
    /// Source: <https://docs.aws.amazon.com/xray/latest/devguide/xray-sdk-go-segment.html>
    pub const ANNOTATION_VALUE_MAX_CHARS: usize = 1000;
    /// At most 50 annotations per trace (same source).
    pub const MAX_ANNOTATIONS: usize = 50;

    pub fn is_valid_annotation_key(key: &str) -> bool {
        !key.is_empty()
            && key.chars().count() <= ANNOTATION_KEY_MAX_CHARS
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }
}

/// What the record contract lets in fits every key and item, whatever the value: the
/// contract's limits checked against each sink's at compile time.
mod fits {
    use super::{dynamodb, s3, xray};
    use crate::domain::{MAX_REACTOR_ID_CHARS, UTC_TIMESTAMP_LEN};

    /// A UTF-8 character takes at most 4 bytes.
    const MAX_UTF8_BYTES: usize = 4;
    /// A Kinesis shard id has at most 128 characters of `[a-zA-Z0-9_.-]`.
    /// Source: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_Shard.html>
    const MAX_SHARD_ID_CHARS: usize = 128;
    /// A Kinesis sequence number is `0|([1-9]\d{0,128})`.
    /// Source: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_Record.html>
    const MAX_SEQUENCE_NUMBER_DIGITS: usize = 129;
    /// A partition key has at most 256 Unicode characters (same source).
    const MAX_PARTITION_KEY_CHARS: usize = 256;
    /// `:<subsequence>`, a u64.
    const MAX_SUBSEQUENCE_CHARS: usize = 21;
    const _: () =
        assert!(MAX_REACTOR_ID_CHARS * MAX_UTF8_BYTES <= dynamodb::PARTITION_KEY_MAX_BYTES);
    const _: () = assert!(
        UTC_TIMESTAMP_LEN
            + 1
            + MAX_SHARD_ID_CHARS
            + 1
            + MAX_SEQUENCE_NUMBER_DIGITS
            + MAX_SUBSEQUENCE_CHARS
            <= dynamodb::SORT_KEY_MAX_BYTES
    );
    /// A reading's item with its alert's record, names included, is far below the item limit:
    /// the keys, the Kinesis partition key, shard id and sequence number, and fourteen more
    /// attributes (names ≤ 32 bytes, values ≤ 64: temperature, dates, severity, message id…).
    const _: () = assert!(
        dynamodb::PARTITION_KEY_MAX_BYTES
            + dynamodb::SORT_KEY_MAX_BYTES
            + MAX_PARTITION_KEY_CHARS * MAX_UTF8_BYTES
            + MAX_SHARD_ID_CHARS
            + MAX_SEQUENCE_NUMBER_DIGITS
            + 14 * (32 + 64)
            <= dynamodb::ITEM_MAX_BYTES
    );
    const _: () = assert!(MAX_REACTOR_ID_CHARS <= xray::ANNOTATION_VALUE_MAX_CHARS);
    /// A dead-letter object's key: `parse-errors/<shard id>/<first>-<last>.jsonl`, each
    /// sequence number with its subsequence (`adapters::s3::S3DeadLetters::object_key`).
    const _: () = assert!(
        "parse-errors/".len()
            + MAX_SHARD_ID_CHARS
            + 1
            + 2 * (MAX_SEQUENCE_NUMBER_DIGITS + MAX_SUBSEQUENCE_CHARS)
            + "-.jsonl".len()
            <= s3::OBJECT_KEY_MAX_BYTES
    );

    /// A Lambda invocation's payload, the Kinesis event, is at most 6 MB (synchronous
    /// invocation, which is how the event source mapping invokes).
    /// Source: <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>
    const LAMBDA_PAYLOAD_MAX_BYTES: u64 = 6 * 1024 * 1024;
    /// A Kinesis record holds at most 10 MiB once the stream's maximum record size is raised
    /// (UpdateMaxRecordSize, 1,024–10,240 KiB; 1 MiB by default).
    /// Source: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateMaxRecordSize.html>
    const KINESIS_RECORD_MAX_BYTES: u64 = 10 * 1024 * 1024;
    /// A Kinesis event source mapping delivers at most 10,000 records an invocation.
    /// Source: <https://docs.aws.amazon.com/lambda/latest/dg/API_CreateEventSourceMapping.html>
    const MAX_BATCH_RECORDS: u64 = 10_000;
    /// One line of a dead-letter object, apart from its base64 payload: field names, shard
    /// id, sequence number and subsequence, a partition key of 256 characters each escaped to
    /// at most 6 bytes, two timestamps, the length and a reason code.
    const DEAD_LETTER_LINE_MAX_OVERHEAD: u64 = 256
        + MAX_SHARD_ID_CHARS as u64
        + (MAX_SEQUENCE_NUMBER_DIGITS + MAX_SUBSEQUENCE_CHARS) as u64
        + 6 * MAX_PARTITION_KEY_CHARS as u64
        + 2 * 24
        + 20
        + 64;

    /// A dead-letter object holds the rejected records of one invocation, base64-encoded
    /// (4 bytes per 3): bounded by the invocation's payload, and with the largest record
    /// Kinesis takes (10 MiB) besides, still far below what one PutObject uploads.
    const _: () = assert!(
        (LAMBDA_PAYLOAD_MAX_BYTES + KINESIS_RECORD_MAX_BYTES).div_ceil(3) * 4
            + MAX_BATCH_RECORDS * DEAD_LETTER_LINE_MAX_OVERHEAD
            <= s3::PUT_OBJECT_MAX_BYTES / 64
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_shortest_and_never_as_a_long_integer() {
        assert_eq!(decimal(750.0), "750");
        assert_eq!(decimal(750.5), "750.5");
        assert_eq!(decimal(-273.15), "-273.15");
        assert_eq!(decimal(1e20), "100000000000000000000");
        assert_eq!(decimal(1e21), "1E21");
        assert_eq!(decimal(1e120), "1E120");
        assert_eq!(decimal(0.000001), "0.000001");
        assert_eq!(decimal(1e-7), "1E-7");
        assert_eq!(decimal(-0.0), "0");
    }

    #[test]
    fn dynamodb_numbers_stop_at_both_ends_of_the_range() {
        assert_eq!(dynamodb::number(1e120).as_deref(), Some("1E120"));
        let below_1e126 = f64::from_bits(1e126_f64.to_bits() - 1);
        assert!(dynamodb::number(below_1e126).unwrap().ends_with("E125"));
        assert_eq!(dynamodb::number(1e126), None);
        assert_eq!(dynamodb::number(8.04040404040404e126), None);
        assert_eq!(dynamodb::number(1e-130).as_deref(), Some("1E-130"));
        assert_eq!(dynamodb::number(9e-131), None);
        assert_eq!(dynamodb::number(5e-324), None);
        assert_eq!(dynamodb::number(0.0).as_deref(), Some("0"));
        assert_eq!(dynamodb::number(f64::NAN), None);
    }

    #[test]
    fn a_non_ascii_reactor_id_is_escaped_in_a_dimension_and_kept_apart() {
        assert_eq!(cloudwatch::dimension_value("reactor-7"), "reactor-7");
        assert_eq!(cloudwatch::dimension_value("réacteur-7"), "r%C3%A9acteur-7");
        assert_eq!(cloudwatch::dimension_value("r%C3%A9"), "r%25C3%25A9");
        assert_eq!(cloudwatch::dimension_value("   "), "%20%20%20");
        let long = "😀".repeat(128);
        let value = cloudwatch::dimension_value(&long);
        assert!(cloudwatch::is_valid_dimension_value(&value), "{value}");
        assert_ne!(value, cloudwatch::dimension_value(&"😀".repeat(127)));
    }

    #[test]
    fn metric_values_are_clamped_into_cloudwatch_range() {
        assert_eq!(cloudwatch::metric_value(812.5), 812.5);
        assert_eq!(
            cloudwatch::metric_value(8.04040404040404e126),
            cloudwatch::METRIC_VALUE_MAX_MAGNITUDE
        );
        assert_eq!(cloudwatch::metric_value(1e-200), 0.0);
        assert_eq!(
            cloudwatch::metric_value(-1e300),
            -cloudwatch::METRIC_VALUE_MAX_MAGNITUDE
        );
    }

    #[test]
    fn s3_keys_and_metadata_are_ascii_and_bounded() {
        assert_eq!(
            s3::object_key("parse-errors/", &["shardId-0", "42"]),
            "parse-errors/shardId-0/42"
        );
        assert_eq!(s3::object_key("p/", &["a/b", "é"]), "p/a%2Fb/%C3%A9");
        let long = s3::object_key("p/", &["x".repeat(2000).as_str()]);
        assert!(s3::is_valid_object_key(&long));
        assert_eq!(s3::metadata_value("a\r\nb%", 100), "a%0D%0Ab%25");
        let cut = s3::metadata_value(&"é".repeat(256), 200);
        assert!(cut.len() <= 200 && cut.is_ascii(), "{cut}");
    }

    #[test]
    fn sns_and_xray_names_obey_their_rules() {
        assert!(sns::is_valid_subject("emergency"));
        assert!(!sns::is_valid_subject("\nemergency"));
        assert!(!sns::is_valid_subject("émergency"));
        assert!(sns::is_valid_attribute_name("sequence_number"));
        assert!(!sns::is_valid_attribute_name("AWS.trace"));
        assert!(!sns::is_valid_attribute_name("a..b"));
        assert!(xray::is_valid_annotation_key("flow_type"));
        assert!(!xray::is_valid_annotation_key("flow.type"));
    }
}

//! The Kinesis Producer Library's aggregation format: many user records in one Kinesis record.
//!
//! A shard takes at most 1,000 records/s, so high-rate producers pack user records into one
//! Kinesis record of up to 1 MiB: the magic `F3 89 9A C2`, a protobuf `AggregatedRecord`
//! (a partition key table, an explicit hash key table, and records that point into them),
//! then the MD5 digest of the protobuf bytes. Kinesis and Lambda see one record; the consumer
//! unpacks it (the format: awslabs/amazon-kinesis-producer, `aggregation-format.md`).

use md5::{Digest, Md5};
use prost::Message;

/// What every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// The MD5 digest of the protobuf body closes the record.
pub const DIGEST_LEN: usize = 16;
/// Kinesis' largest record: data and partition key together.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Protobuf field tags of the format, for producers that size a record before writing it.
pub mod tags {
    /// `AggregatedRecord.partition_key_table`.
    pub const PARTITION_KEY_TABLE: u32 = 1;
    /// `AggregatedRecord.records`.
    pub const RECORDS: u32 = 3;
    /// `Record.partition_key_index`.
    pub const PARTITION_KEY_INDEX: u32 = 1;
    /// `Record.data`.
    pub const DATA: u32 = 3;
}

// The format's proto2 messages, by hand (no build step). Tags are decoded and not used.
/// The protobuf body of an aggregated record: key tables and the user records that index them.
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// One user record inside an [`AggregatedRecord`]: indexes into its key tables, and its data.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// A user record's tag (the KPL writes none; decoded and ignored).
#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// Frames a protobuf body as an aggregated record: the magic, the body, its MD5 digest.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_LEN);
    data.extend_from_slice(&MAGIC);
    data.extend_from_slice(body);
    data.extend_from_slice(&Md5::digest(body));
    data
}

/// The consumer's view of an [`AggregatedRecord`]: the partition key table as bytes, and the
/// explicit hash key table (field 2) skipped. The reference deaggregator (aws_kinesis_agg)
/// yields the user records of an aggregate whose key tables are not UTF-8; a key only labels
/// a reading here, so it is read lossily rather than refusing the readings.
#[derive(Clone, PartialEq, Message)]
struct WireAggregate {
    #[prost(bytes = "vec", repeated, tag = "1")]
    partition_key_table: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<Record>,
}

/// One user record of an aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Why a record that starts with the magic is not a readable aggregate. Its user records
/// cannot be told apart, so it is dead-lettered whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("{0} bytes: too short for the magic and the MD5 digest")]
    TooShort(usize),
    #[error("the MD5 digest does not match the protobuf body")]
    DigestMismatch,
    #[error("the protobuf body does not decode")]
    Undecodable(#[source] prost::DecodeError),
    #[error("user record {record} points at partition key {index} of a table of {table}")]
    PartitionKeyOutOfRange {
        record: usize,
        index: u64,
        table: usize,
    },
    /// The KPL never writes one; taken as damage rather than as a record with no readings.
    #[error("no user records")]
    Empty,
}

/// Whether a Kinesis record claims to be an aggregate (starts with the magic).
pub fn is_aggregated(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// The user records of an aggregated record, in order; `None` when `data` is not one.
pub fn deaggregate(data: &[u8]) -> Option<Result<Vec<UserRecord>, Corruption>> {
    is_aggregated(data).then(|| unpack(data))
}

fn unpack(data: &[u8]) -> Result<Vec<UserRecord>, Corruption> {
    let body_len = data
        .len()
        .checked_sub(MAGIC.len() + DIGEST_LEN)
        .ok_or(Corruption::TooShort(data.len()))?;
    let (body, digest) = data[MAGIC.len()..].split_at(body_len);
    if Md5::digest(body).as_slice() != digest {
        return Err(Corruption::DigestMismatch);
    }
    // The explicit hash key only chose the shard, for the producer: a consumer has no use
    // for it, so its index is not checked (the reference deaggregator, aws_kinesis_agg,
    // yields the user records of an aggregate whose explicit hash key table is empty).
    let WireAggregate {
        partition_key_table: keys,
        records,
    } = WireAggregate::decode(body).map_err(Corruption::Undecodable)?;
    if records.is_empty() {
        return Err(Corruption::Empty);
    }
    records
        .into_iter()
        .enumerate()
        .map(|(record, r)| {
            let index = r.partition_key_index;
            let partition_key = usize::try_from(index)
                .ok()
                .and_then(|i| keys.get(i))
                .ok_or(Corruption::PartitionKeyOutOfRange {
                    record,
                    index,
                    table: keys.len(),
                })?;
            Ok(UserRecord {
                partition_key: String::from_utf8_lossy(partition_key).into_owned(),
                data: r.data,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An aggregate of `records` with one partition key table entry per distinct key.
    fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut message = AggregatedRecord::default();
        for (key, data) in records {
            let index = match message.partition_key_table.iter().position(|k| k == key) {
                Some(i) => i,
                None => {
                    message.partition_key_table.push(key.to_string());
                    message.partition_key_table.len() - 1
                }
            };
            message.records.push(Record {
                partition_key_index: index as u64,
                explicit_hash_key_index: None,
                data: data.to_vec(),
                tags: Vec::new(),
            });
        }
        frame(&message.encode_to_vec())
    }

    /// Magic + a protobuf body written field by field + its digest.
    fn framed(body: &[u8]) -> Vec<u8> {
        frame(body)
    }

    fn corruption(data: &[u8]) -> Corruption {
        deaggregate(data).unwrap().unwrap_err()
    }

    #[test]
    fn generated_aggregates_round_trip_with_their_partition_keys() {
        let records: [(&str, &[u8]); 3] = [
            ("reactor-1", br#"{"temp":650}"#),
            ("reactor-2", b"\xff\x00 not json"),
            ("reactor-1", b""),
        ];

        let data = aggregate(&records);

        assert!(data.starts_with(&MAGIC));
        let users = deaggregate(&data).unwrap().unwrap();
        let got: Vec<(&str, &[u8])> = users
            .iter()
            .map(|u| (u.partition_key.as_str(), u.data.as_slice()))
            .collect();
        assert_eq!(got, records);
    }

    #[test]
    fn a_record_without_the_magic_is_not_an_aggregate() {
        let data = aggregate(&[("k", b"{}")]);
        let mut wrong = data.clone();
        wrong[3] ^= 0x01;

        assert_eq!(deaggregate(&wrong), None);
        assert_eq!(deaggregate(br#"{"temp":1}"#), None);
        assert_eq!(deaggregate(&MAGIC[..3]), None);
    }

    #[test]
    fn a_bad_digest_is_a_corrupt_aggregate() {
        let mut data = aggregate(&[("k", b"{}")]);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        assert_eq!(corruption(&data), Corruption::DigestMismatch);

        let mut body_changed = aggregate(&[("k", b"{}")]);
        body_changed[MAGIC.len() + 3] ^= 0x20;
        assert_eq!(corruption(&body_changed), Corruption::DigestMismatch);
    }

    #[test]
    fn a_truncated_aggregate_is_corrupt() {
        let data = aggregate(&[("reactor-1", br#"{"temp":650}"#)]);

        assert_eq!(corruption(&MAGIC), Corruption::TooShort(4));
        assert_eq!(
            corruption(&data[..MAGIC.len() + 10]),
            Corruption::TooShort(14)
        );
        assert_eq!(
            corruption(&data[..data.len() - 1]),
            Corruption::DigestMismatch
        );
        // Cut inside the protobuf, with a digest that matches what is left.
        let body = &data[MAGIC.len()..data.len() - DIGEST_LEN];
        assert!(matches!(
            corruption(&framed(&body[..body.len() - 3])),
            Corruption::Undecodable(_)
        ));
    }

    #[test]
    fn a_body_that_is_not_protobuf_is_corrupt() {
        assert!(matches!(
            corruption(&framed(b"\xff\xff\xff\xff")),
            Corruption::Undecodable(_)
        ));
    }

    #[test]
    fn an_index_outside_its_table_is_corrupt() {
        // partition_key_table ["k"], records [{partition_key_index: 1, data: "x"}]
        let body = b"\x0a\x01k\x1a\x05\x08\x01\x1a\x01x";
        assert_eq!(
            corruption(&framed(body)),
            Corruption::PartitionKeyOutOfRange {
                record: 0,
                index: 1,
                table: 1
            }
        );
    }

    #[test]
    fn explicit_hash_key_indexes_are_not_checked() {
        // Index 0 with an empty explicit hash key table, and index 5 with a table of one.
        for body in [
            &b"\x0a\x01k\x1a\x07\x08\x00\x10\x00\x1a\x01x"[..],
            &b"\x0a\x01k\x12\x0242\x1a\x07\x08\x00\x10\x05\x1a\x01x"[..],
        ] {
            let users = deaggregate(&framed(body)).unwrap().unwrap();
            assert_eq!(
                users,
                [UserRecord {
                    partition_key: "k".into(),
                    data: b"x".to_vec()
                }]
            );
        }
    }

    #[test]
    fn explicit_hash_keys_and_tags_in_range_are_accepted() {
        // keys ["k"], hash keys ["42"], a record with hash key 0 and a tag {key: "t"}.
        let body = b"\x0a\x01k\x12\x0242\x1a\x0c\x08\x00\x10\x00\x1a\x01x\x22\x03\x0a\x01t";
        let users = deaggregate(&framed(body)).unwrap().unwrap();
        assert_eq!(
            users,
            [UserRecord {
                partition_key: "k".into(),
                data: b"x".to_vec()
            }]
        );
    }

    #[test]
    fn an_aggregate_with_no_user_records_is_corrupt() {
        assert_eq!(corruption(&framed(b"")), Corruption::Empty);
    }
}

//! The producer side of the Kinesis Producer Library's aggregation format: packs readings into
//! aggregated records for `generate --aggregate N`. The consumer side, which the function
//! ships, is `reactor_monitor::kpl`.

use std::collections::HashMap;

use prost::Message;
use prost::encoding::{encoded_len_varint, key_len};
use reactor_monitor::kpl::{
    AggregatedRecord, DIGEST_LEN, MAGIC, MAX_RECORD_BYTES, Record, frame, tags,
};

/// One aggregated Kinesis record, ready to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregated {
    /// The first user record's partition key, as the KPL does: it picks the shard.
    pub partition_key: String,
    pub data: Vec<u8>,
    pub user_records: usize,
}

/// Packs user records into aggregated records of at most `max_user_records` each and at
/// most [`MAX_RECORD_BYTES`] with their partition key.
#[derive(Debug)]
pub struct Aggregator {
    max_user_records: usize,
    pending: AggregatedRecord,
    key_indexes: HashMap<String, u64>,
    body_len: usize,
}

impl Aggregator {
    pub fn new(max_user_records: usize) -> Self {
        Self {
            max_user_records: max_user_records.max(1),
            pending: AggregatedRecord::default(),
            key_indexes: HashMap::new(),
            body_len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pending.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.records.is_empty()
    }

    /// Adds a user record when it fits; when it does not, adds nothing and returns false:
    /// [`finish`](Self::finish) this aggregate and add the record to the next. A record that
    /// does not fit an empty aggregate never will: put it on its own.
    pub fn try_add(&mut self, partition_key: &str, data: &[u8]) -> bool {
        if self.len() >= self.max_user_records {
            return false;
        }
        let known = self.key_indexes.get(partition_key).copied();
        let index = known.unwrap_or(self.pending.partition_key_table.len() as u64);
        let key_len_added = match known {
            Some(_) => 0,
            None => delimited_len(tags::PARTITION_KEY_TABLE, partition_key.len()),
        };
        let record_len = key_len(tags::PARTITION_KEY_INDEX)
            + encoded_len_varint(index)
            + delimited_len(tags::DATA, data.len());
        let body_len = self.body_len + key_len_added + delimited_len(tags::RECORDS, record_len);
        let kinesis_key_len = self
            .pending
            .partition_key_table
            .first()
            .map_or(partition_key.len(), String::len);
        if MAGIC.len() + body_len + DIGEST_LEN + kinesis_key_len > MAX_RECORD_BYTES {
            return false;
        }
        if known.is_none() {
            self.key_indexes.insert(partition_key.to_string(), index);
            self.pending
                .partition_key_table
                .push(partition_key.to_string());
        }
        self.pending.records.push(Record {
            partition_key_index: index,
            explicit_hash_key_index: None,
            data: data.to_vec(),
            tags: Vec::new(),
        });
        self.body_len = body_len;
        true
    }

    /// The aggregated record of what was added since the last call; `None` when nothing was.
    pub fn finish(&mut self) -> Option<Aggregated> {
        if self.is_empty() {
            return None;
        }
        let pending = std::mem::take(&mut self.pending);
        self.key_indexes.clear();
        self.body_len = 0;
        let data = frame(&pending.encode_to_vec());
        Some(Aggregated {
            partition_key: pending.partition_key_table[0].clone(),
            data,
            user_records: pending.records.len(),
        })
    }
}

/// Bytes of a length-delimited field (string, bytes, message) of `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use reactor_monitor::kpl::deaggregate;

    #[test]
    fn the_aggregator_stops_at_the_count_and_at_one_mebibyte() {
        let mut by_count = Aggregator::new(2);
        assert!(by_count.try_add("k", b"1") && by_count.try_add("k", b"2"));
        assert!(!by_count.try_add("k", b"3"));
        assert_eq!(by_count.finish().unwrap().user_records, 2);
        assert!(by_count.try_add("k", b"3"));

        let mut by_size = Aggregator::new(usize::MAX);
        let chunk = vec![b'x'; 100 * 1024];
        let mut added = 0;
        while by_size.try_add("reactor-1", &chunk) {
            added += 1;
        }
        assert_eq!(added, 10);
        let aggregated = by_size.finish().unwrap();
        assert!(aggregated.data.len() + aggregated.partition_key.len() <= MAX_RECORD_BYTES);
        assert_eq!(deaggregate(&aggregated.data).unwrap().unwrap().len(), 10);

        let mut alone = Aggregator::new(10);
        assert!(!alone.try_add("k", &vec![0; MAX_RECORD_BYTES]));
        assert!(alone.finish().is_none());
    }

    #[test]
    fn the_size_the_aggregator_counts_is_the_size_it_writes() {
        let mut aggregator = Aggregator::new(usize::MAX);
        let data: Vec<Vec<u8>> = (0..300).map(|i| vec![b'a'; i * 7]).collect();
        for (i, d) in data.iter().enumerate() {
            assert!(aggregator.try_add(&format!("reactor-{}", i % 13), d));
        }
        let counted = aggregator.body_len;
        let written = aggregator.finish().unwrap().data.len();
        assert_eq!(written, MAGIC.len() + counted + DIGEST_LEN);
    }
}

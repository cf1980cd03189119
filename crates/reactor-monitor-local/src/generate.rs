//! The producer: generated readings (or a JSON Lines file) put into a stream with PutRecords,
//! one reading per Kinesis record or, like the KPL, many in one aggregated record.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use base64::Engine;
use chrono::{TimeZone, Utc};
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use reactor_monitor::kpl;

/// PutRecords takes at most 500 records and 5 MiB per request.
pub const MAX_PUT_RECORDS: usize = 500;
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
const PUT_ATTEMPTS: u32 = 8;

/// What share of generated readings is hot or corrupted.
#[derive(Debug, Clone)]
pub struct Mix {
    pub reactors: usize,
    pub warning_share: f64,
    pub emergency_share: f64,
    pub corrupt_share: f64,
    pub seed: u64,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            reactors: 12,
            warning_share: 0.04,
            emergency_share: 0.01,
            corrupt_share: 0.02,
            seed: 7,
        }
    }
}

/// The kind of reading the generator meant to write: the ground truth of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Normal,
    Warning,
    Emergency,
    Corrupt,
}

/// One record to put: its payload and partition key. `intent` is the generator's, for a
/// generated reading; `None` for a record read from a file and for an aggregated record.
#[derive(Debug, Clone)]
pub struct OutgoingRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
    pub intent: Option<Intent>,
}

/// Corrupted payloads of the kinds sensors and networks produce.
const CORRUPTIONS: [&[u8]; 8] = [
    b"{\"temp\": 712.4, \"reactor\": \"reactor-",
    b"\xff\xfe\x00garbage",
    b"[\"temp\", 650]",
    b"{\"reactor\":\"reactor-1\",\"date\":\"2024-05-01T10:00:00Z\"}",
    b"{\"temp\":\"hot\",\"reactor\":\"reactor-1\",\"date\":\"2024-05-01T10:00:00Z\"}",
    b"{\"temp\":-300,\"reactor\":\"reactor-1\",\"date\":\"2024-05-01T10:00:00Z\"}",
    b"{\"temp\":640,\"reactor\":\"reactor-1\\n\",\"date\":\"2024-05-01T10:00:00Z\"}",
    b"{\"temp\":640,\"reactor\":\"reactor-1\",\"date\":\"last tuesday\"}",
];

/// A reproducible dataset: the same mix and count give the same records.
pub fn generate(mix: &Mix, count: usize) -> Vec<OutgoingRecord> {
    let mut rng = StdRng::seed_from_u64(mix.seed);
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    (0..count)
        .map(|i| {
            let reactor = format!("reactor-{}", rng.random_range(1..=mix.reactors.max(1)));
            let roll: f64 = rng.random();
            let intent = if roll < mix.corrupt_share {
                Intent::Corrupt
            } else if roll < mix.corrupt_share + mix.emergency_share {
                Intent::Emergency
            } else if roll < mix.corrupt_share + mix.emergency_share + mix.warning_share {
                Intent::Warning
            } else {
                Intent::Normal
            };
            let data = match intent {
                Intent::Corrupt => CORRUPTIONS[i % CORRUPTIONS.len()].to_vec(),
                _ => {
                    let temp: f64 = match intent {
                        Intent::Emergency => rng.random_range(800.0..950.0),
                        Intent::Warning => rng.random_range(700.0..799.9),
                        _ => rng.random_range(250.0..690.0),
                    };
                    let temp = (temp * 10.0).floor() / 10.0;
                    let date =
                        (start + chrono::Duration::milliseconds(i as i64 * 250)).to_rfc3339();
                    format!(r#"{{"temp":{temp},"reactor":"{reactor}","date":"{date}"}}"#)
                        .into_bytes()
                }
            };
            OutgoingRecord {
                partition_key: reactor,
                data,
                intent: Some(intent),
            }
        })
        .collect()
}

/// Packs records into KPL aggregated records of up to `per_record` readings each, and at most
/// Kinesis' 1 MiB: the same readings in fewer Kinesis records, as a producer does past a
/// shard's 1,000 records/s. A record too large to share one is put on its own, unchanged.
pub fn aggregate(records: &[OutgoingRecord], per_record: usize) -> Vec<OutgoingRecord> {
    let mut aggregator = crate::kpl::Aggregator::new(per_record);
    let mut out = Vec::new();
    for record in records {
        if aggregator.try_add(&record.partition_key, &record.data) {
            continue;
        }
        out.extend(aggregator.finish().map(aggregated));
        if !aggregator.try_add(&record.partition_key, &record.data) {
            out.push(record.clone());
        }
    }
    out.extend(aggregator.finish().map(aggregated));
    out
}

fn aggregated(record: crate::kpl::Aggregated) -> OutgoingRecord {
    OutgoingRecord {
        partition_key: record.partition_key,
        data: record.data,
        intent: None,
    }
}

/// Readings in these Kinesis records, counted as the handler will: every user record of a
/// readable KPL aggregate, one for any other record (a corrupt aggregate is one dead letter).
pub fn readings_in(records: &[OutgoingRecord]) -> usize {
    records
        .iter()
        .map(|r| match kpl::deaggregate(&r.data) {
            Some(Ok(users)) => users.len(),
            _ => 1,
        })
        .sum()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InputLine {
    data: String,
    #[serde(default)]
    partition_key: Option<String>,
}

/// Reads JSON Lines of `{"data": "<base64 payload>", "partitionKey": "<optional>"}`.
pub fn read_input(path: &Path) -> anyhow::Result<Vec<OutgoingRecord>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut records = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let parsed: InputLine = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}: expected {{\"data\": \"<base64>\", \"partitionKey\": \"<optional>\"}}",
                at()
            )
        })?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(parsed.data.trim())
            .with_context(|| format!("{}: \"data\" is not base64", at()))?;
        if data.is_empty() || data.len() > 1024 * 1024 {
            bail!(
                "{}: a Kinesis record holds 1 byte to 1 MiB, this one {} bytes",
                at(),
                data.len()
            );
        }
        records.push(OutgoingRecord {
            partition_key: parsed
                .partition_key
                .unwrap_or_else(|| format!("line-{}", n + 1)),
            data,
            intent: None,
        });
    }
    Ok(records)
}

/// Where a record landed in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Placement {
    pub shard_id: String,
    pub sequence_number: String,
}

/// Puts records with PutRecords, retrying the entries the stream refused, at most
/// `rate` records per second when given. Returns where each record landed, in order.
pub async fn put_records(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    records: &[OutgoingRecord],
    rate: Option<f64>,
    progress: &ProgressBar,
    calls: &std::sync::atomic::AtomicUsize,
) -> anyhow::Result<Vec<Placement>> {
    let mut placements: Vec<Option<Placement>> = vec![None; records.len()];
    let started = tokio::time::Instant::now();
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut bytes = 0;
        let chunk_cap = rate.map_or(MAX_PUT_RECORDS, |r| {
            ((r / 10.0).ceil() as usize).clamp(1, MAX_PUT_RECORDS)
        });
        while end < records.len() && end - start < chunk_cap {
            let size = records[end].data.len() + records[end].partition_key.len();
            if end > start && bytes + size > MAX_PUT_RECORDS_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        let mut pending: Vec<usize> = (start..end).collect();
        for attempt in 0..PUT_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(records[i].data.clone()))
                        .partition_key(&records[i].partition_key)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let out = kinesis
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries))
                .send()
                .await
                .with_context(|| format!("putting records into {stream}"))?;
            let mut refused = Vec::new();
            for (&i, result) in pending.iter().zip(out.records()) {
                match (result.shard_id(), result.sequence_number()) {
                    (Some(shard), Some(seq)) => {
                        placements[i] = Some(Placement {
                            shard_id: shard.to_string(),
                            sequence_number: seq.to_string(),
                        })
                    }
                    _ => refused.push(i),
                }
            }
            progress.inc((pending.len() - refused.len()) as u64);
            pending = refused;
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            bail!(
                "{} records were still refused by {stream} after {PUT_ATTEMPTS} attempts",
                pending.len()
            );
        }
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(end as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
        start = end;
    }
    Ok(placements
        .into_iter()
        .map(|p| p.expect("every record placed"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reactor_monitor::domain::{Reading, Thresholds};

    #[test]
    fn generated_records_are_what_they_were_meant_to_be() {
        let records = generate(&Mix::default(), 2_000);
        let thresholds = Thresholds::default();
        for r in &records {
            let parsed = Reading::parse(&r.data);
            let got = match parsed {
                Err(_) => Intent::Corrupt,
                Ok(reading) => match thresholds.classify(reading.temp_c) {
                    None => Intent::Normal,
                    Some(reactor_monitor::domain::Severity::Warning) => Intent::Warning,
                    Some(reactor_monitor::domain::Severity::Emergency) => Intent::Emergency,
                },
            };
            assert_eq!(Some(got), r.intent, "{}", String::from_utf8_lossy(&r.data));
        }
        for intent in [
            Intent::Normal,
            Intent::Warning,
            Intent::Emergency,
            Intent::Corrupt,
        ] {
            assert!(
                records.iter().any(|r| r.intent == Some(intent)),
                "{intent:?} missing"
            );
        }
    }

    #[test]
    fn aggregated_readings_unpack_to_the_same_readings_in_order() {
        let readings = generate(&Mix::default(), 1_000);

        let records = aggregate(&readings, 64);

        assert_eq!(records.len(), 1_000usize.div_ceil(64));
        assert_eq!(readings_in(&records), 1_000);
        let unpacked: Vec<kpl::UserRecord> = records
            .iter()
            .flat_map(|r| kpl::deaggregate(&r.data).unwrap().unwrap())
            .collect();
        for (user, reading) in unpacked.iter().zip(&readings) {
            assert_eq!(user.data, reading.data);
            assert_eq!(user.partition_key, reading.partition_key);
        }
        assert_eq!(records[0].partition_key, readings[0].partition_key);
    }

    #[test]
    fn a_record_too_large_to_share_an_aggregate_is_put_alone() {
        let mut readings = generate(&Mix::default(), 3);
        readings[1].data = vec![b'x'; 1024 * 1024 - 16];

        let records = aggregate(&readings, 10);

        assert_eq!(records.len(), 3);
        assert_eq!(records[1].data, readings[1].data);
        assert_eq!(readings_in(&records), 3);
    }

    #[test]
    fn the_same_seed_gives_the_same_dataset() {
        let a = generate(&Mix::default(), 100);
        let b = generate(&Mix::default(), 100);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.data == y.data && x.partition_key == y.partition_key)
        );
    }
}

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

/// Kinesis API limits, from botocore's Kinesis service model (`botocore/data/kinesis/
/// 2013-12-02/service-2.json`, botocore 1.44.8 in `.venv`; a unit test reads it): shape
/// `PartitionKey` is a string of 1 to 256 characters.
pub const PARTITION_KEY_CHARS: std::ops::RangeInclusive<usize> = 1..=256;
/// Shape `Data`: a blob of 0 bytes up to 10,485,760 (the largest record any stream takes).
pub const MAX_DATA_BYTES_ANY_STREAM: usize = 10 * 1024 * 1024;
/// Shape `MaxRecordSizeInKiB`: 1,024 to 10,240 KiB, set by UpdateMaxRecordSize; a stream
/// starts at the minimum, 1 MiB, counted over data and partition key together. The streams
/// the local tools create keep it.
pub const DEFAULT_MAX_RECORD_KIB: usize = 1024;

/// Why Kinesis would refuse a record (data and partition key) on a stream whose records are
/// at most `max_record_bytes`; `None` when it takes it.
pub fn record_problem(data: &[u8], partition_key: &str, max_record_bytes: usize) -> Option<String> {
    let key_chars = partition_key.chars().count();
    if !PARTITION_KEY_CHARS.contains(&key_chars) {
        return Some(format!(
            "a partition key of {key_chars} characters: Kinesis takes {} to {}",
            PARTITION_KEY_CHARS.start(),
            PARTITION_KEY_CHARS.end()
        ));
    }
    let size = data.len() + partition_key.len();
    let max = max_record_bytes.min(MAX_DATA_BYTES_ANY_STREAM);
    (size > max).then(|| {
        format!(
            "{} bytes of data and {} of partition key: the stream takes at most {max} together",
            data.len(),
            partition_key.len()
        )
    })
}

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

/// Reads JSON Lines of `{"data": "<base64 payload>", "partitionKey": "<optional>"}` (a line
/// without a key gets `line-<n>`). Every record Kinesis takes is taken, 0 bytes of data
/// included. A file with any line Kinesis would refuse is refused whole, before anything is
/// produced, with every such line named by its number.
pub fn read_input(path: &Path) -> anyhow::Result<Vec<OutgoingRecord>> {
    let max_record_bytes = DEFAULT_MAX_RECORD_KIB * 1024;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), n + 1);
        let parsed: InputLine = match serde_json::from_str(&line) {
            Ok(parsed) => parsed,
            Err(e) => {
                problems.push(format!(
                    "{at}: expected {{\"data\": \"<base64>\", \"partitionKey\": \"<optional>\"}} ({e})"
                ));
                continue;
            }
        };
        let data = match base64::engine::general_purpose::STANDARD.decode(parsed.data.trim()) {
            Ok(data) => data,
            Err(e) => {
                problems.push(format!("{at}: \"data\" is not base64 ({e})"));
                continue;
            }
        };
        let partition_key = parsed
            .partition_key
            .unwrap_or_else(|| format!("line-{}", n + 1));
        if let Some(problem) = record_problem(&data, &partition_key, max_record_bytes) {
            problems.push(format!("{at}: {problem}"));
            continue;
        }
        records.push(OutgoingRecord {
            partition_key,
            data,
            intent: None,
        });
    }
    if !problems.is_empty() {
        bail!(
            "{} line(s) of {} are not records Kinesis takes; nothing was produced (fix or remove them):\n{}",
            problems.len(),
            path.display(),
            problems.join("\n")
        );
    }
    Ok(records)
}

/// Writes records as the JSON Lines [`read_input`] reads: `{"data": "<base64>",
/// "partitionKey": "<key>"}`, one a line.
///
/// # Errors
/// Writing to `out` failed.
pub fn write_input(
    records: &[OutgoingRecord],
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    for record in records {
        let line = serde_json::json!({
            "data": base64::engine::general_purpose::STANDARD.encode(&record.data),
            "partitionKey": record.partition_key,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
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
    let refused: Vec<String> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            record_problem(&r.data, &r.partition_key, DEFAULT_MAX_RECORD_KIB * 1024)
                .map(|p| format!("record {}: {p}", i + 1))
        })
        .collect();
    if !refused.is_empty() {
        bail!(
            "{} record(s) are not records Kinesis takes; nothing was produced:\n{}",
            refused.len(),
            refused.join("\n")
        );
    }
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
        let mut last_errors: Vec<String> = Vec::new();
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
            // PutRecords answers per entry: an ErrorCode (throttling, internal failure) for
            // the ones it did not take; those are put again.
            let mut refused = Vec::new();
            last_errors.clear();
            for (&i, result) in pending.iter().zip(out.records()) {
                match (result.shard_id(), result.sequence_number()) {
                    (Some(shard), Some(seq)) => {
                        placements[i] = Some(Placement {
                            shard_id: shard.to_string(),
                            sequence_number: seq.to_string(),
                        })
                    }
                    _ => {
                        refused.push(i);
                        last_errors.push(format!(
                            "record {}: {} {}",
                            i + 1,
                            result.error_code().unwrap_or("(no error code)"),
                            result.error_message().unwrap_or("")
                        ));
                    }
                }
            }
            progress.inc((pending.len() - refused.len()) as u64);
            pending = refused;
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            let placed = placements.iter().filter(|p| p.is_some()).count();
            bail!(
                "{} of {} records were still refused by {stream} after {PUT_ATTEMPTS} attempts \
                 ({placed} were put, {} not attempted); last answers:\n{}",
                pending.len(),
                records.len(),
                records.len() - end,
                last_errors.join("\n")
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

    fn input(lines: &[String]) -> anyhow::Result<Vec<OutgoingRecord>> {
        let dir =
            std::env::temp_dir().join(format!("reactor-monitor-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.jsonl", lines.len()));
        std::fs::write(&path, lines.join("\n")).unwrap();
        let result = read_input(&path);
        std::fs::remove_file(&path).unwrap();
        result
    }

    fn line(data_len: usize, key: Option<&str>) -> String {
        let data = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; data_len]);
        match key {
            Some(key) => serde_json::json!({"data": data, "partitionKey": key}).to_string(),
            None => serde_json::json!({"data": data}).to_string(),
        }
    }

    #[test]
    fn every_record_kinesis_takes_is_read_from_a_file() {
        let max = DEFAULT_MAX_RECORD_KIB * 1024;
        let key256 = "k".repeat(256);
        let records = input(&[
            line(0, Some("k")),
            line(max - 1, Some("k")),
            line(max - 256, Some(&key256)),
            line(3, Some("é")),
            line(3, None),
        ])
        .unwrap();
        let sizes: Vec<usize> = records.iter().map(|r| r.data.len()).collect();
        assert_eq!(sizes, [0, max - 1, max - 256, 3, 3]);
        assert_eq!(records[4].partition_key, "line-5");
    }

    #[test]
    fn a_file_with_lines_kinesis_refuses_is_refused_whole_naming_each_line() {
        let max = DEFAULT_MAX_RECORD_KIB * 1024;
        let error = input(&[
            line(1, Some("fine")),
            line(max, Some("k")),
            line(1, Some("")),
            line(1, Some(&"é".repeat(257))),
            "not json".to_string(),
            r#"{"data": "***"}"#.to_string(),
            line(max - 2, Some("ok")),
        ])
        .unwrap_err()
        .to_string();
        for wanted in [
            "5 line(s)",
            "nothing was produced",
            ".jsonl:2: 1048576 bytes of data and 1 of partition key",
            ".jsonl:3: a partition key of 0 characters",
            ".jsonl:4: a partition key of 257 characters",
            ".jsonl:5: expected",
            ".jsonl:6: \"data\" is not base64",
        ] {
            assert!(error.contains(wanted), "{wanted:?} in {error}");
        }
        assert!(!error.contains(".jsonl:1:") && !error.contains(".jsonl:7:"));
    }

    /// The limits are botocore's Kinesis service model's.
    #[test]
    fn the_limits_are_those_of_botocores_kinesis_service_model() {
        let script = r#"
import json
from botocore.loaders import Loader
shapes = Loader().load_service_model("kinesis", "service-2")["shapes"]
print(json.dumps({k: [shapes[k].get("min"), shapes[k].get("max")] for k in ["PartitionKey", "Data", "MaxRecordSizeInKiB"]}))
"#;
        let output = std::process::Command::new(crate::project_root().join(".venv/bin/python"))
            .args(["-c", script])
            .output()
            .expect("botocore is in .venv (scripts/setup-local)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let model: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            model["PartitionKey"],
            serde_json::json!([PARTITION_KEY_CHARS.start(), PARTITION_KEY_CHARS.end()])
        );
        assert_eq!(
            model["Data"],
            serde_json::json!([0, MAX_DATA_BYTES_ANY_STREAM])
        );
        assert_eq!(model["MaxRecordSizeInKiB"][0], DEFAULT_MAX_RECORD_KIB);
        assert_eq!(DEFAULT_MAX_RECORD_KIB * 1024, kpl::MAX_RECORD_BYTES);
    }

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
    fn written_records_read_back_as_the_same_records() {
        let records = generate(&Mix::default(), 50);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let mut file = std::fs::File::create(&path).unwrap();

        write_input(&records, &mut file).unwrap();

        let back = read_input(&path).unwrap();
        assert_eq!(back.len(), 50);
        for (a, b) in records.iter().zip(&back) {
            assert_eq!((&a.data, &a.partition_key), (&b.data, &b.partition_key));
        }
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

//! The function's KPL deaggregation against the reference deaggregator (PyPI
//! `aws_kinesis_agg`, pinned in requirements-local.txt, in `.venv`), on aggregates of odd
//! shapes: explicit hash key indexes with an empty or short table, tags, empty data, many
//! keys, unknown fields, no records, damaged bytes.
//!
//! The reference yields the user records of an aggregate it can read, and the Kinesis record
//! itself, whole, when it cannot (no magic, too short, wrong digest, protobuf that does not
//! decode); the function dead-letters such a record whole. Where the two differ, the
//! function keeps more than the reference, never less: see `KNOWN_DIFFERENCES`.

use base64::Engine;
use prost::Message;
use reactor_monitor::kpl::{AggregatedRecord, Record, Tag, deaggregate, frame};
use reactor_monitor_local::testing::project_file;

/// Runs the reference over Lambda-format records and returns, per record, the user records
/// it yields as (partition key, data), or `None` when it raises.
const ORACLE: &str = r#"
import base64, json, sys
from aws_kinesis_agg.deaggregator import deaggregate_records
for line in sys.stdin:
    record = {"kinesis": {"kinesisSchemaVersion": "1.0", "data": line.strip(), "partitionKey": "outer",
              "sequenceNumber": "1", "approximateArrivalTimestamp": 1.0}}
    try:
        users = deaggregate_records([record])
    except Exception:
        print("null")  # the reference raised
        continue
    text = lambda d: d.decode() if isinstance(d, bytes) else d
    # Keys that are not UTF-8 come as bytes: passed on as base64 of their bytes.
    key = lambda k: base64.b64encode(k if isinstance(k, bytes) else k.encode()).decode()
    print(json.dumps([[key(u["kinesis"]["partitionKey"]), text(u["kinesis"]["data"])] for u in users]))
"#;

type Users = Vec<(String, Vec<u8>)>;

fn reference(aggregates: &[Vec<u8>]) -> Vec<Option<Users>> {
    use std::io::Write;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut child = std::process::Command::new(project_file(".venv/bin/python"))
        .args(["-c", ORACLE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the reference deaggregator runs (scripts/setup-local installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let input: String = aggregates.iter().map(|a| b64.encode(a) + "\n").collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    crate::assert_success(&output);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Option<Vec<(String, String)>>>(line)
                .unwrap()
                .map(|users| {
                    users
                        .into_iter()
                        .map(|(k, d)| {
                            let key = String::from_utf8_lossy(&b64.decode(k).unwrap()).into_owned();
                            (key, b64.decode(d).unwrap())
                        })
                        .collect()
                })
        })
        .collect()
}

/// What the function makes of one Kinesis record, in the reference's terms: the user
/// records of a readable aggregate; the record itself, whole, when it is not one.
fn ours(data: &[u8]) -> Users {
    match deaggregate(data) {
        Some(Ok(users)) => users
            .into_iter()
            .map(|u| (u.partition_key, u.data))
            .collect(),
        None | Some(Err(_)) => vec![("outer".to_string(), data.to_vec())],
    }
}

fn record(key: u64, ehk: Option<u64>, data: &[u8], tags: Vec<Tag>) -> Record {
    Record {
        partition_key_index: key,
        explicit_hash_key_index: ehk,
        data: data.to_vec(),
        tags,
    }
}

fn aggregate(keys: &[&str], ehks: &[&str], records: Vec<Record>) -> Vec<u8> {
    frame(
        &AggregatedRecord {
            partition_key_table: keys.iter().map(|k| k.to_string()).collect(),
            explicit_hash_key_table: ehks.iter().map(|k| k.to_string()).collect(),
            records,
        }
        .encode_to_vec(),
    )
}

/// Shapes on which the two agree.
fn agreed_shapes() -> Vec<(&'static str, Vec<u8>)> {
    let tag = |k: &str, v: Option<&str>| Tag {
        key: k.into(),
        value: v.map(Into::into),
    };
    let many_keys: Vec<String> = (0..300).map(|i| format!("reactor-{i}")).collect();
    let many_keys: Vec<&str> = many_keys.iter().map(String::as_str).collect();
    let mut shapes = vec![
        (
            "plain",
            aggregate(
                &["a", "b"],
                &[],
                vec![
                    record(0, None, b"{}", vec![]),
                    record(1, None, b"x", vec![]),
                ],
            ),
        ),
        (
            "explicit hash key index with an empty table",
            aggregate(
                &["a"],
                &[],
                vec![
                    record(0, Some(0), b"one", vec![]),
                    record(0, Some(3), b"two", vec![]),
                ],
            ),
        ),
        (
            "explicit hash keys in range",
            aggregate(
                &["a"],
                &["170141183460469231731687303715884105728"],
                vec![record(0, Some(0), b"r", vec![])],
            ),
        ),
        (
            "tags, with and without values",
            aggregate(
                &["a"],
                &[],
                vec![record(
                    0,
                    None,
                    b"t",
                    vec![tag("k", Some("v")), tag("", None)],
                )],
            ),
        ),
        (
            "empty data and an empty partition key",
            aggregate(
                &[""],
                &[],
                vec![record(0, None, b"", vec![]), record(0, None, b"", vec![])],
            ),
        ),
        (
            "many keys, used out of order",
            aggregate(
                &many_keys,
                &[],
                (0..300u64)
                    .rev()
                    .map(|i| record(i, None, format!("{i}").as_bytes(), vec![]))
                    .collect(),
            ),
        ),
        (
            "binary and non-UTF-8 data",
            aggregate(
                &["k"],
                &[],
                vec![record(0, None, b"\xff\x00\xf3\x89\x9a\xc2", vec![])],
            ),
        ),
        (
            "a nested aggregate is data",
            aggregate(
                &["k"],
                &[],
                vec![record(
                    0,
                    None,
                    &aggregate(&["i"], &[], vec![record(0, None, b"in", vec![])]),
                    vec![],
                )],
            ),
        ),
        ("not an aggregate", br#"{"temp":1}"#.to_vec()),
        ("the magic alone", reactor_monitor::kpl::MAGIC.to_vec()),
        ("the magic and a digest only", frame(b"")),
        ("protobuf that does not decode", frame(b"\xff\xff\xff\xff")),
        (
            "a key table that is not UTF-8",
            frame(b"\x0a\x01\xff\x1a\x05\x08\x00\x1a\x01x"),
        ),
    ];
    let mut wrong_digest = aggregate(&["a"], &[], vec![record(0, None, b"{}", vec![])]);
    *wrong_digest.last_mut().unwrap() ^= 1;
    shapes.push(("a wrong digest", wrong_digest));
    // An unknown field (tag 9, varint) in the aggregate and in a record.
    let mut body = AggregatedRecord {
        partition_key_table: vec!["u".into()],
        explicit_hash_key_table: vec![],
        records: vec![record(0, None, b"u", vec![])],
    }
    .encode_to_vec();
    body.extend_from_slice(b"\x48\x01");
    shapes.push(("unknown fields", frame(&body)));
    shapes
}

/// Where the function deliberately differs from the reference, and why.
const KNOWN_DIFFERENCES: &[&str] = &[
    // The reference stops at the first bad index, keeping the user records before it and
    // dropping the rest (it prints an error); the function dead-letters the aggregate whole.
    "a partition key index outside the table",
    // The reference indexes the table and raises on an index outside a non-empty one (in
    // its own error path); the function never reads the explicit hash key and yields every
    // user record.
    "an explicit hash key index outside a non-empty table",
    // The reference yields nothing: the Kinesis record vanishes; the function dead-letters it.
    "an aggregate with no user records",
];

fn differing_shapes() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            KNOWN_DIFFERENCES[0],
            aggregate(
                &["a"],
                &[],
                vec![
                    record(0, None, b"kept", vec![]),
                    record(4, None, b"lost", vec![]),
                ],
            ),
        ),
        (
            KNOWN_DIFFERENCES[1],
            aggregate(
                &["a"],
                &["1"],
                vec![
                    record(0, Some(0), b"one", vec![]),
                    record(0, Some(2), b"two", vec![]),
                ],
            ),
        ),
        (KNOWN_DIFFERENCES[2], aggregate(&["a"], &[], vec![])),
    ]
}

#[test]
fn the_function_and_the_reference_deaggregator_agree_on_every_shape_but_the_known_ones() {
    let shapes = agreed_shapes();
    let data: Vec<Vec<u8>> = shapes.iter().map(|(_, d)| d.clone()).collect();
    for ((name, data), theirs) in shapes.iter().zip(reference(&data)) {
        assert_eq!(Some(ours(data)), theirs, "{name}");
    }

    let shapes = differing_shapes();
    let data: Vec<Vec<u8>> = shapes.iter().map(|(_, d)| d.clone()).collect();
    let theirs = reference(&data);
    // A bad partition key index: the reference keeps what came before it.
    assert_eq!(theirs[0], Some(vec![("a".to_string(), b"kept".to_vec())]));
    assert_eq!(ours(&data[0]), [("outer".to_string(), data[0].clone())]);
    // An explicit hash key index past a non-empty table: the reference raises.
    assert_eq!(theirs[1], None);
    assert_eq!(ours(&data[1]).len(), 2);
    // No user records: the reference yields nothing.
    assert_eq!(theirs[2], Some(vec![]));
    assert_eq!(ours(&data[2]), [("outer".to_string(), data[2].clone())]);
}

/// Seeded aggregates of random shapes: keys, explicit hash keys (empty or not, indexes in
/// range or past an empty table), tags and data lengths, all agreed on.
#[test]
fn random_aggregates_deaggregate_alike() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound.max(1)
    };
    let mut aggregates = Vec::new();
    for _ in 0..300 {
        let keys: Vec<String> = (0..1 + next(20))
            .map(|i| format!("k{i}-{}", next(1000)))
            .collect();
        let ehks: Vec<String> = (0..next(3)).map(|i| format!("{}", i * 1_000_003)).collect();
        let records = (0..1 + next(50))
            .map(|_| {
                let ehk = match (ehks.len(), next(3)) {
                    (_, 0) => None,
                    (0, _) => Some(next(5)),
                    (n, _) => Some(next(n as u64)),
                };
                let data: Vec<u8> = (0..next(64)).map(|_| next(256) as u8).collect();
                let tags = (0..next(3))
                    .map(|t| Tag {
                        key: format!("t{t}"),
                        value: (next(2) == 0).then(|| "v".to_string()),
                    })
                    .collect();
                record(next(keys.len() as u64), ehk, &data, tags)
            })
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let ehks: Vec<&str> = ehks.iter().map(String::as_str).collect();
        aggregates.push(aggregate(&keys, &ehks, records));
    }
    for (i, (data, theirs)) in aggregates.iter().zip(reference(&aggregates)).enumerate() {
        assert_eq!(Some(ours(data)), theirs, "aggregate {i}");
    }
}

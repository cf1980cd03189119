//! A corpus of malformed payloads, each named by its category: every one is rejected with a
//! reason, dead-lettered byte for byte, and never stops the valid readings around it.

use reactor_monitor_local::testing as support;

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use reactor_monitor::domain::{Reading, RejectReason, Rejection};
use reactor_monitor::kpl;
use reactor_monitor::pipeline::Outcome;
use reactor_monitor::{aws, lambda};
use reactor_monitor_local::verify;
use support::{emulator_with_resources, kinesis_event, lambda_event, payload};

/// Kinesis' largest record.
const ONE_MIB: usize = 1024 * 1024;
/// What the Kinesis Producer Library puts before an aggregated record's protobuf body.
const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DATE: &str = r#""2024-05-01T10:00:00Z""#;

struct Malformed {
    category: &'static str,
    name: &'static str,
    payload: Vec<u8>,
    /// The reason code expected; `None` where any rejection will do.
    reason: Option<&'static str>,
}

fn bad(
    category: &'static str,
    name: &'static str,
    payload: impl Into<Vec<u8>>,
    reason: &'static str,
) -> Malformed {
    Malformed {
        category,
        name,
        payload: payload.into(),
        reason: Some(reason),
    }
}

/// `{"temp":…,"reactor":…,"date":…}` with each value given as raw JSON text.
fn fields(temp: &str, reactor: &str, date: &str) -> Vec<u8> {
    format!(r#"{{"temp":{temp},"reactor":{reactor},"date":{date}}}"#).into_bytes()
}

fn temp(raw: &str) -> Vec<u8> {
    fields(raw, r#""reactor-1""#, DATE)
}

fn reactor(raw: &str) -> Vec<u8> {
    fields("500", raw, DATE)
}

fn date(raw: &str) -> Vec<u8> {
    fields("500", r#""reactor-1""#, raw)
}

fn valid() -> Vec<u8> {
    temp("500")
}

fn one_mib(mut start: Vec<u8>, fill: u8) -> Vec<u8> {
    start.resize(ONE_MIB, fill);
    start
}

fn corpus() -> Vec<Malformed> {
    let deep = 100_000;
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            String::from_utf8(valid())
                .unwrap()
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    let mut kpl = KPL_MAGIC.to_vec();
    kpl.extend_from_slice(b"\x0a\x03pk1\x1a\x07\x08\x00\x1a\x03{\"t"); // a cut-off protobuf body
    kpl.extend_from_slice(&[0u8; 16]); // and an MD5 that is not the body's

    let mut corpus = vec![
        bad("empty", "no bytes at all", b"".to_vec(), "not_json"),
        bad("empty", "whitespace only", b" \n\t ".to_vec(), "not_json"),
        bad(
            "not UTF-8",
            "binary garbage",
            b"\xff\xfe\x00garbage".to_vec(),
            "not_utf8",
        ),
        bad(
            "not UTF-8",
            "Latin-1 reactor id",
            [br#"{"temp":1,"reactor":"r"#.as_slice(), b"\xe9acteur\"}"].concat(),
            "not_utf8",
        ),
        bad(
            "not UTF-8",
            "overlong encoding of '/'",
            [b"{\"temp\":1,\"reactor\":\"".as_slice(), b"\xc0\xaf\"}"].concat(),
            "not_utf8",
        ),
        bad(
            "not UTF-8",
            "UTF-8-encoded surrogate",
            [b"{\"temp\":1,\"reactor\":\"".as_slice(), b"\xed\xa0\x80\"}"].concat(),
            "not_utf8",
        ),
        bad("not UTF-8", "UTF-16 LE with BOM", utf16, "not_utf8"),
        bad(
            "not UTF-8",
            "gzip-compressed reading",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\x56\x2a".to_vec(),
            "not_utf8",
        ),
        bad(
            "BOM",
            "UTF-8 byte order mark before a valid reading",
            [b"\xef\xbb\xbf".as_slice(), &valid()].concat(),
            "not_json",
        ),
        bad(
            "truncated JSON",
            "cut inside the reactor id",
            b"{\"temp\": 712.4, \"reactor\": \"reactor-".to_vec(),
            "not_json",
        ),
        bad(
            "truncated JSON",
            "opening brace only",
            b"{".to_vec(),
            "not_json",
        ),
        bad(
            "truncated JSON",
            "closing brace missing",
            valid()[..valid().len() - 1].to_vec(),
            "not_json",
        ),
        bad(
            "truncated JSON",
            "cut inside a number",
            b"{\"temp\":7".to_vec(),
            "not_json",
        ),
        bad(
            "not JSON",
            "trailing garbage",
            [valid(), b"x".to_vec()].concat(),
            "not_json",
        ),
        bad(
            "not JSON",
            "two readings in one record",
            [valid(), valid()].concat(),
            "not_json",
        ),
        bad(
            "not JSON",
            "single quotes",
            b"{'temp':500,'reactor':'reactor-1','date':'2024-05-01T10:00:00Z'}".to_vec(),
            "not_json",
        ),
        bad(
            "not JSON",
            "trailing comma",
            format!(r#"{{"temp":500,"reactor":"r","date":{DATE},}}"#),
            "not_json",
        ),
        bad(
            "not JSON",
            "a comment",
            format!("{{\"temp\":500, // hot\n\"reactor\":\"r\",\"date\":{DATE}}}"),
            "not_json",
        ),
        bad(
            "not JSON",
            "raw newline inside the reactor id",
            reactor("\"reactor-1\nERROR forged line\""),
            "not_json",
        ),
        bad(
            "not JSON",
            "XML",
            b"<reading temp=\"500\" reactor=\"reactor-1\"/>".to_vec(),
            "not_json",
        ),
        bad(
            "not JSON",
            "CSV line",
            b"500,reactor-1,2024-05-01T10:00:00Z".to_vec(),
            "not_json",
        ),
        bad(
            "not JSON",
            "base64 of a reading",
            base64::engine::general_purpose::STANDARD.encode(valid()),
            "not_json",
        ),
        bad("not JSON", "leading plus sign", temp("+500"), "not_json"),
        bad("not JSON", "leading zero", temp("0500"), "not_json"),
        bad("not JSON", "hexadecimal", temp("0x1F4"), "not_json"),
        bad("not an object", "null", b"null".to_vec(), "not_an_object"),
        bad(
            "not an object",
            "array",
            [b"[".as_slice(), &valid(), b"]"].concat(),
            "not_an_object",
        ),
        bad("not an object", "number", b"500".to_vec(), "not_an_object"),
        bad(
            "not an object",
            "string",
            b"\"reactor-1\"".to_vec(),
            "not_an_object",
        ),
        bad(
            "not an object",
            "boolean",
            b"true".to_vec(),
            "not_an_object",
        ),
        bad(
            "not an object",
            "a reading encoded twice, as a JSON string",
            serde_json::to_vec(&String::from_utf8(valid()).unwrap()).unwrap(),
            "not_an_object",
        ),
        bad(
            "missing field",
            "empty object",
            b"{}".to_vec(),
            "missing_temp",
        ),
        bad(
            "missing field",
            "no temp",
            format!(r#"{{"reactor":"r","date":{DATE}}}"#),
            "missing_temp",
        ),
        bad(
            "missing field",
            "temp spelled Temp",
            format!(r#"{{"Temp":500,"reactor":"r","date":{DATE}}}"#),
            "missing_temp",
        ),
        bad(
            "missing field",
            "no reactor",
            format!(r#"{{"temp":500,"date":{DATE}}}"#),
            "missing_reactor",
        ),
        bad(
            "missing field",
            "no date",
            br#"{"temp":500,"reactor":"r"}"#.to_vec(),
            "missing_date",
        ),
        bad("null field", "temp null", temp("null"), "missing_temp"),
        bad(
            "null field",
            "reactor null",
            reactor("null"),
            "missing_reactor",
        ),
        bad("null field", "date null", date("null"), "missing_date"),
        bad(
            "wrong type",
            "temp boolean",
            temp("true"),
            "temp_not_a_number",
        ),
        bad(
            "wrong type",
            "temp object",
            temp(r#"{"value":500}"#),
            "temp_not_a_number",
        ),
        bad(
            "wrong type",
            "temp array",
            temp("[500]"),
            "temp_not_a_number",
        ),
        bad(
            "wrong type",
            "reactor number",
            reactor("7"),
            "reactor_not_a_string",
        ),
        bad(
            "wrong type",
            "reactor array",
            reactor(r#"["reactor-1"]"#),
            "reactor_not_a_string",
        ),
        bad(
            "wrong type",
            "date as epoch seconds",
            date("1714557600"),
            "date_not_a_string",
        ),
        bad(
            "wrong type",
            "date object",
            date(r#"{"epoch":1714557600}"#),
            "date_not_a_string",
        ),
        bad(
            "number as string",
            "temp \"750\"",
            temp(r#""750""#),
            "temp_not_a_number",
        ),
        bad(
            "number as string",
            "temp with a unit",
            temp(r#""750 °C""#),
            "temp_not_a_number",
        ),
        bad(
            "number as string",
            "temp \"7.5e2\"",
            temp(r#""7.5e2""#),
            "temp_not_a_number",
        ),
        bad("NaN/Infinity", "bare NaN", temp("NaN"), "not_json"),
        bad(
            "NaN/Infinity",
            "bare Infinity",
            temp("Infinity"),
            "not_json",
        ),
        bad(
            "NaN/Infinity",
            "bare -Infinity",
            temp("-Infinity"),
            "not_json",
        ),
        bad(
            "NaN/Infinity",
            "\"NaN\" as a string",
            temp(r#""NaN""#),
            "temp_not_a_number",
        ),
        bad(
            "NaN/Infinity",
            "\"Infinity\" as a string",
            temp(r#""Infinity""#),
            "temp_not_a_number",
        ),
        bad("huge exponent", "1e999", temp("1e999"), "temp_not_finite"),
        bad(
            "huge exponent",
            "-1E+400",
            temp("-1E+400"),
            "temp_not_finite",
        ),
        bad(
            "huge exponent",
            "just past f64::MAX",
            temp("1.8e308"),
            "temp_not_finite",
        ),
        bad(
            "huge exponent",
            "a 400-digit integer",
            temp(&format!("1{}", "0".repeat(400))),
            "temp_not_finite",
        ),
        bad(
            "below absolute zero",
            "-273.16",
            temp("-273.16"),
            "temp_below_absolute_zero",
        ),
        bad(
            "below absolute zero",
            "a hair below",
            temp("-273.15000001"),
            "temp_below_absolute_zero",
        ),
        bad(
            "below absolute zero",
            "-1e308",
            temp("-1e308"),
            "temp_below_absolute_zero",
        ),
        bad("reactor id", "empty", reactor(r#""""#), "reactor_empty"),
        bad(
            "reactor id",
            "129 characters",
            reactor(&format!(r#""{}""#, "x".repeat(129))),
            "reactor_too_long",
        ),
        bad(
            "reactor id",
            "129 two-byte characters",
            reactor(&format!(r#""{}""#, "é".repeat(129))),
            "reactor_too_long",
        ),
        bad(
            "reactor id",
            "escaped newline",
            reactor(r#""reactor-1\nreactor-2""#),
            "reactor_control_characters",
        ),
        bad(
            "reactor id",
            "CR LF forging a log line",
            reactor(r#""reactor-1\r\n{\"level\":\"ERROR\"}""#),
            "reactor_control_characters",
        ),
        bad(
            "reactor id",
            "ANSI escape",
            reactor(r#""\u001b[2J\u001b[31mreactor-1""#),
            "reactor_control_characters",
        ),
        bad(
            "reactor id",
            "NUL",
            reactor(r#""reactor\u0000-1""#),
            "reactor_control_characters",
        ),
        bad(
            "reactor id",
            "DEL",
            reactor(r#""reactor-1\u007f""#),
            "reactor_control_characters",
        ),
        bad(
            "reactor id",
            "C1 next line (U+0085)",
            reactor(r#""reactor-1\u0085""#),
            "reactor_control_characters",
        ),
        bad(
            "reactor id",
            "C1 control sequence introducer (U+009B)",
            reactor(r#""\u009b31mreactor-1""#),
            "reactor_control_characters",
        ),
        bad(
            "reactor id",
            "tab",
            reactor(r#""reactor\t1""#),
            "reactor_control_characters",
        ),
        bad(
            "reactor id",
            "raw C1 byte pair (U+0085 unescaped)",
            reactor("\"reactor-1\u{85}\""),
            "reactor_control_characters",
        ),
        bad(
            "reactor id",
            "lone surrogate escape",
            reactor(r#""reactor-\ud800""#),
            "reactor_not_a_string",
        ),
        bad(
            "invalid date",
            "no time zone",
            date(r#""2024-05-01T10:00:00""#),
            "date_not_rfc3339",
        ),
        bad(
            "invalid date",
            "February 30",
            date(r#""2024-02-30T10:00:00Z""#),
            "date_not_rfc3339",
        ),
        bad(
            "invalid date",
            "words",
            date(r#""last tuesday""#),
            "date_not_rfc3339",
        ),
        bad(
            "invalid date",
            "date only",
            date(r#""2024-05-01""#),
            "date_not_rfc3339",
        ),
        bad(
            "invalid date",
            "hour 25",
            date(r#""2024-05-01T25:00:00Z""#),
            "date_not_rfc3339",
        ),
        bad(
            "invalid date",
            "month 13",
            date(r#""2024-13-01T10:00:00Z""#),
            "date_not_rfc3339",
        ),
        bad(
            "invalid date",
            "epoch seconds as a string",
            date(r#""1714557600""#),
            "date_not_rfc3339",
        ),
        bad("invalid date", "empty", date(r#""""#), "date_not_rfc3339"),
        bad(
            "date out of range",
            "UTC instant in year 10000",
            date(r#""9999-12-31T23:30:00-01:00""#),
            "date_out_of_range",
        ),
        bad(
            "date out of range",
            "UTC instant in year -1",
            date(r#""0000-01-01T00:30:00+01:00""#),
            "date_out_of_range",
        ),
        bad(
            "duplicate keys",
            "temp twice",
            format!(r#"{{"temp":500,"temp":900,"reactor":"r","date":{DATE}}}"#),
            "duplicate_field",
        ),
        bad(
            "duplicate keys",
            "reactor twice",
            format!(r#"{{"temp":500,"reactor":"a","reactor":"b","date":{DATE}}}"#),
            "duplicate_field",
        ),
        bad(
            "duplicate keys",
            "temp twice, once escaped",
            format!(r#"{{"temp":500,"t\u0065mp":900,"reactor":"r","date":{DATE}}}"#),
            "duplicate_field",
        ),
        bad(
            "deep nesting",
            "100,000 nested arrays",
            format!("{}{}", "[".repeat(deep), "]".repeat(deep)),
            "not_an_object",
        ),
        bad(
            "deep nesting",
            "100,000 nested objects in an unknown field",
            format!("{}1{}", r#"{"a":"#.repeat(deep), "}".repeat(deep)),
            "missing_temp",
        ),
        bad(
            "deep nesting",
            "100,000 nested arrays as the temp",
            temp(&format!("{}{}", "[".repeat(deep), "]".repeat(deep))),
            "temp_not_a_number",
        ),
        bad(
            "1 MiB record",
            "cut off at 1 MiB",
            one_mib(b"{\"temp\": ".to_vec(), b'9'),
            "not_json",
        ),
        bad(
            "1 MiB record",
            "a 1 MiB reactor id",
            {
                let mut p = one_mib(
                    br#"{"temp":500,"date":"2024-05-01T10:00:00Z","reactor":""#.to_vec(),
                    b'r',
                );
                p.truncate(ONE_MIB - 2);
                p.extend_from_slice(b"\"}");
                p
            },
            "reactor_too_long",
        ),
        bad(
            "1 MiB record",
            "1 MiB of NUL bytes",
            vec![0u8; ONE_MIB],
            "not_json",
        ),
    ];
    let mut aggregator = reactor_monitor_local::kpl::Aggregator::new(10);
    assert!(aggregator.try_add("reactor-1", &valid()) && aggregator.try_add("reactor-2", &valid()));
    let mut bad_digest = aggregator.finish().unwrap().data;
    *bad_digest.last_mut().unwrap() ^= 0x01;
    corpus.extend([
        bad(
            "KPL aggregation",
            "magic prefix, corrupted protobuf body and digest",
            kpl,
            "corrupt_kpl_aggregate",
        ),
        bad(
            "KPL aggregation",
            "two readings with one bit of the digest flipped",
            bad_digest,
            "corrupt_kpl_aggregate",
        ),
        bad(
            "KPL aggregation",
            "the magic alone",
            KPL_MAGIC.to_vec(),
            "corrupt_kpl_aggregate",
        ),
    ]);
    corpus
}

fn label(m: &Malformed) -> String {
    format!("{} / {}", m.category, m.name)
}

#[test]
fn the_corpus_is_at_least_forty_distinct_payloads_in_every_category_of_the_contract() {
    let corpus = corpus();
    let distinct: HashSet<&[u8]> = corpus.iter().map(|m| m.payload.as_slice()).collect();
    assert_eq!(distinct.len(), corpus.len(), "a payload appears twice");
    assert!(corpus.len() >= 40, "{} payloads", corpus.len());
    let categories: HashSet<&str> = corpus.iter().map(|m| m.category).collect();
    for category in [
        "empty",
        "not UTF-8",
        "BOM",
        "truncated JSON",
        "not an object",
        "missing field",
        "null field",
        "wrong type",
        "number as string",
        "NaN/Infinity",
        "huge exponent",
        "below absolute zero",
        "reactor id",
        "invalid date",
        "date out of range",
        "duplicate keys",
        "deep nesting",
        "1 MiB record",
        "KPL aggregation",
    ] {
        assert!(categories.contains(category), "no {category} payload");
    }
    for m in corpus.iter().filter(|m| m.category == "1 MiB record") {
        assert_eq!(m.payload.len(), ONE_MIB, "{}", label(m));
    }
}

#[test]
fn every_malformed_payload_is_rejected_with_its_reason_and_nothing_panics() {
    let mut wrong = Vec::new();
    for m in corpus() {
        // As the handler reads a Kinesis record: a KPL aggregate is unpacked first.
        let parsed = std::panic::catch_unwind(|| match kpl::deaggregate(&m.payload) {
            Some(Err(_)) => Err(Rejection::new(RejectReason::CorruptAggregate)),
            _ => Reading::parse(&m.payload),
        });
        let got = match parsed {
            Err(_) => {
                wrong.push(format!("{}: panicked", label(&m)));
                continue;
            }
            Ok(Ok(reading)) => {
                wrong.push(format!("{}: accepted as {reading:?}", label(&m)));
                continue;
            }
            Ok(Err(rejection)) => rejection.reason.code(),
        };
        if let Some(expected) = m.reason
            && got != expected
        {
            wrong.push(format!("{}: {got}, expected {expected}", label(&m)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn every_malformed_payload_is_dead_lettered_byte_for_byte_between_stored_readings() {
    let (_emulator, sdk, resources) = emulator_with_resources(1).await;
    let pipeline = aws::pipeline(&sdk, &resources.config());
    let corpus = corpus();
    // valid, bad, valid, bad, …, valid: every malformed payload has a reading on each side.
    let mut payloads = Vec::new();
    for (i, m) in corpus.iter().enumerate() {
        payloads.push(payload(&format!("reactor-{}", i % 7), 400.0 + i as f64));
        payloads.push(m.payload.clone());
    }
    payloads.push(payload("reactor-0", 399.5));

    let (response, report) = lambda::handle(&pipeline, lambda_event(kinesis_event(&payloads, 1)))
        .await
        .expect("the batch is processed");

    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    assert_eq!(report.records.len(), payloads.len());
    let s3 = aws::s3_client(&sdk);
    let kept = verify::kept_dead_letters(&s3, &resources.names.dead_letter_bucket)
        .await
        .unwrap();
    assert_eq!(kept.len(), corpus.len());
    let mut readings = HashSet::new();
    for (i, record) in report.records.iter().enumerate() {
        if i % 2 == 0 {
            assert!(
                matches!(record.outcome, Outcome::Stored),
                "reading {i}: {:?}",
                record.outcome
            );
            readings.insert(record.origin.sequence_number.to_string());
            continue;
        }
        let m = &corpus[i / 2];
        assert!(
            matches!(record.outcome, Outcome::DeadLettered(_)),
            "{}: {:?}",
            label(m),
            record.outcome
        );
        let origin = &record.origin;
        let letter = kept
            .get(&(origin.shard_id.clone(), origin.sequence_number.clone()))
            .unwrap_or_else(|| panic!("{}: no dead letter", label(m)));
        assert!(
            letter.payload[..] == m.payload[..],
            "{}: bytes differ",
            label(m)
        );
        assert_eq!(
            Some(letter.reason.as_str()),
            record.reject_reason.map(|r| r.code()),
            "{}",
            label(m)
        );
        if let Some(expected) = m.reason {
            assert_eq!(letter.reason, expected, "{}", label(m));
        }
    }

    let stored: HashSet<String> = aws_sdk_dynamodb::Client::new(&sdk)
        .scan()
        .table_name(&resources.names.table)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|item| match item.get("sequence_number") {
            Some(AttributeValue::S(seq)) => Some(seq.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(stored, readings);
}

/// Readings a sink cannot take verbatim are not malformed: a temperature beyond DynamoDB's
/// number range (stored as text with a flag), one written as a 121-digit integer before,
/// one below CloudWatch's smallest value, a non-ASCII reactor id (escaped in the EMF
/// dimension), dates at both edges of years 0000–9999 UTC. All are stored, alerted when hot,
/// and the emulator scans the table back.
#[tokio::test]
async fn readings_beyond_a_sink_rule_are_stored_and_alerted_not_dead_lettered() {
    let (_emulator, sdk, resources) = emulator_with_resources(1).await;
    let pipeline = aws::pipeline(&sdk, &resources.config());
    let payloads: Vec<Vec<u8>> = [
        r#"{"temp":8.04040404040404e126,"reactor":"reactor-1","date":"2020-03-07T16:40:10+02:00"}"#,
        r#"{"temp":1e120,"reactor":"reactor-1","date":"2020-03-07T16:40:11+02:00"}"#,
        r#"{"temp":1e-200,"reactor":"reactor-1","date":"2020-03-07T16:40:12+02:00"}"#,
        r#"{"temp":512.5,"reactor":"réacteur-7","date":"2020-03-07T16:40:13+02:00"}"#,
        r#"{"temp":500,"reactor":"reactor-1","date":"9999-12-31T23:30:00+01:00"}"#,
        r#"{"temp":500,"reactor":"reactor-1","date":"0000-01-01T00:30:00-01:00"}"#,
    ]
    .iter()
    .map(|p| p.as_bytes().to_vec())
    .collect();

    let (response, report) = lambda::handle(&pipeline, lambda_event(kinesis_event(&payloads, 1)))
        .await
        .expect("the batch is processed");

    assert!(response.batch_item_failures.is_empty());
    let hot = &report.records[..2];
    for record in hot {
        assert!(
            matches!(
                record.outcome,
                Outcome::StoredAndAlerted {
                    published_now: true,
                    ..
                }
            ),
            "{:?}",
            record.outcome
        );
    }
    for record in &report.records[2..] {
        assert!(
            matches!(record.outcome, Outcome::Stored),
            "{:?}",
            record.outcome
        );
    }
    let items = aws_sdk_dynamodb::Client::new(&sdk)
        .scan()
        .table_name(&resources.names.table)
        .send()
        .await
        .expect("the emulator scans every item back")
        .items()
        .to_vec();
    let kinds = |kind: &str| {
        items
            .iter()
            .filter(|i| i.get("kind") == Some(&AttributeValue::S(kind.into())))
            .count()
    };
    assert_eq!(kinds("reading"), payloads.len());
    let alerted = items
        .iter()
        .filter(|i| i.contains_key("message_id"))
        .count();
    assert_eq!(alerted, 2, "each alert recorded on its reading");
    let texts: Vec<&AttributeValue> = items.iter().filter_map(|i| i.get("temp_c_text")).collect();
    assert_eq!(texts.len(), 2, "the 8e126 and 1e-200 readings");
    assert!(texts.contains(&&AttributeValue::S("8.04040404040404E126".into())));
    assert!(
        items
            .iter()
            .any(|i| i.get("temp_c") == Some(&AttributeValue::N("1E120".into())))
    );
    assert!(
        items
            .iter()
            .any(|i| i.get("reactor") == Some(&AttributeValue::S("réacteur-7".into())))
    );
}

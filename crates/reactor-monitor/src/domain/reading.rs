use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, Utc};

use super::rfc3339::{self, Fraction};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Length of [`Reading::utc_timestamp`]: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub const UTC_TIMESTAMP_LEN: usize = 30;

/// Longest reactor id accepted, in characters.
pub const MAX_REACTOR_ID_CHARS: usize = 128;

/// The years a reading's UTC instant may fall in: the sort key `reading_id` starts with the
/// instant as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, fixed width and sortable as text only for
/// four-digit years. RFC 3339 dates are four-digit years too, but an offset can move the
/// instant out (`9999-12-31T23:30:00-01:00` is in year 10000 UTC): `date_out_of_range`.
pub const MIN_UTC_YEAR: i32 = 0;
pub const MAX_UTC_YEAR: i32 = 9999;

/// Absolute zero in °C: no thermometer can read below it.
const ABSOLUTE_ZERO_C: f64 = -273.15;

/// A validated coolant temperature reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub reactor: String,
    pub temp_c: f64,
    /// The instant as the sensor wrote it, offset included.
    pub date: DateTime<FixedOffset>,
    /// W3C trace context of the producer, when the payload carried one.
    pub traceparent: Option<String>,
}

impl Reading {
    /// The reading's instant in UTC with fixed width, so that text order is time order.
    pub fn utc_timestamp(&self) -> String {
        let mut out = String::with_capacity(UTC_TIMESTAMP_LEN);
        self.push_utc_timestamp(&mut out);
        out
    }

    /// Appends [`Reading::utc_timestamp`] to `out`.
    pub fn push_utc_timestamp(&self, out: &mut String) {
        rfc3339::push_utc(out, &self.date.with_timezone(&Utc), Fraction::Nanos);
    }

    /// Decodes and validates one payload; the single place bytes become a reading.
    pub fn parse(payload: &[u8]) -> Result<Reading, Rejection> {
        let text =
            std::str::from_utf8(payload).map_err(|_| Rejection::new(RejectReason::NotUtf8))?;
        if !text.trim_start().starts_with('{') {
            let reason = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => RejectReason::NotAnObject,
                Err(_) => RejectReason::NotJson,
            };
            return Err(Rejection::new(reason));
        }
        let wire: Wire<'_> = serde_json::from_str(text).map_err(|e| classify_json_error(&e))?;

        let temp_c = number(wire.temp, Field::Temp)?;
        if !temp_c.is_finite() {
            return Err(Rejection::new(RejectReason::TempNotFinite));
        }
        if temp_c < ABSOLUTE_ZERO_C {
            return Err(Rejection::new(RejectReason::TempBelowAbsoluteZero));
        }

        let reactor = string(wire.reactor, Field::Reactor)?;
        if reactor.is_empty() {
            return Err(Rejection::new(RejectReason::ReactorEmpty));
        }
        if reactor
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c))
        {
            return Err(Rejection::new(RejectReason::ReactorControlCharacters));
        }
        if reactor.chars().count() > MAX_REACTOR_ID_CHARS {
            return Err(Rejection::new(RejectReason::ReactorTooLong));
        }

        let date_text = string(wire.date, Field::Date)?;
        let date = DateTime::parse_from_rfc3339(&date_text)
            .map_err(|_| Rejection::new(RejectReason::DateInvalid))?;
        if !(MIN_UTC_YEAR..=MAX_UTC_YEAR).contains(&date.with_timezone(&Utc).year()) {
            return Err(Rejection::new(RejectReason::DateOutOfRange));
        }

        let traceparent = wire
            .traceparent
            .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok())
            .map(Cow::into_owned);

        Ok(Reading {
            reactor: reactor.into_owned(),
            temp_c,
            date,
            traceparent,
        })
    }
}

/// Unicode bidirectional controls (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069):
/// invisible, yet they reorder how the text around them is shown, so an id holding one
/// could make an alert or a log line read as something else.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The payload's shape, with each field kept raw so that "missing", "null" and
/// "wrong type" can be told apart. Unknown fields are ignored.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    temp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reactor: Option<&'a RawValue>,
    #[serde(borrow, default)]
    date: Option<&'a RawValue>,
    #[serde(borrow, default)]
    traceparent: Option<&'a RawValue>,
}

/// Classifies an error of parsing text that starts like an object.
fn classify_json_error(error: &serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    let reason = match error.classify() {
        // Every field is kept raw, so the only data error left is a repeated field.
        Category::Data => RejectReason::DuplicateField,
        Category::Syntax | Category::Eof | Category::Io => RejectReason::NotJson,
    };
    Rejection::new(reason)
}

fn present(raw: Option<&RawValue>, field: Field) -> Result<&RawValue, Rejection> {
    match raw {
        Some(raw) if raw.get() != "null" => Ok(raw),
        _ => Err(Rejection::new(RejectReason::MissingField(field))),
    }
}

fn number(raw: Option<&RawValue>, field: Field) -> Result<f64, Rejection> {
    let raw = present(raw, field)?;
    let text = raw.get();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(Rejection::new(RejectReason::WrongType(field)));
    }
    // A syntactically valid number that does not fit an f64 (1e999) is not finite.
    Ok(serde_json::from_str::<f64>(text).unwrap_or(f64::INFINITY))
}

fn string<'a>(raw: Option<&'a RawValue>, field: Field) -> Result<Cow<'a, str>, Rejection> {
    let raw = present(raw, field)?;
    serde_json::from_str::<Cow<'a, str>>(raw.get())
        .map_err(|_| Rejection::new(RejectReason::WrongType(field)))
}

/// A field of the record contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Temp,
    Reactor,
    Date,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Temp => "temp",
            Self::Reactor => "reactor",
            Self::Date => "date",
        }
    }
}

/// Why a payload cannot be read. Rejections are final: the payload is dead-lettered,
/// never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    NotUtf8,
    NotJson,
    NotAnObject,
    DuplicateField,
    MissingField(Field),
    WrongType(Field),
    TempNotFinite,
    TempBelowAbsoluteZero,
    ReactorEmpty,
    ReactorTooLong,
    ReactorControlCharacters,
    DateInvalid,
    /// A valid RFC 3339 date whose UTC instant is outside years 0000–9999.
    DateOutOfRange,
    /// A Kinesis record with the KPL aggregation magic whose digest does not match, whose
    /// protobuf does not decode, or whose user records point outside its key tables: it is
    /// dead-lettered whole, since its user records cannot be told apart.
    CorruptAggregate,
    /// A valid reading DynamoDB refused for good (a `ValidationException` of its item that
    /// the sink rules did not foresee): dead-lettered rather than retried for ever.
    StoreRejected,
    /// A valid reading whose alert SNS refused for good: stored, and dead-lettered so that
    /// people see the alert that could not go out.
    AlertRejected,
    /// A record of the Kinesis event whose envelope cannot be read (no `data`, `data` not
    /// base64, not an object): its JSON text is dead-lettered (`kinesis.rs`).
    EnvelopeUnreadable,
}

impl RejectReason {
    /// Short machine-readable code, stable for dashboards, alarms and the dead-letter sink.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotUtf8 => "not_utf8",
            Self::NotJson => "not_json",
            Self::NotAnObject => "not_an_object",
            Self::DuplicateField => "duplicate_field",
            Self::MissingField(Field::Temp) => "missing_temp",
            Self::MissingField(Field::Reactor) => "missing_reactor",
            Self::MissingField(Field::Date) => "missing_date",
            Self::WrongType(Field::Temp) => "temp_not_a_number",
            Self::WrongType(Field::Reactor) => "reactor_not_a_string",
            Self::WrongType(Field::Date) => "date_not_a_string",
            Self::TempNotFinite => "temp_not_finite",
            Self::TempBelowAbsoluteZero => "temp_below_absolute_zero",
            Self::ReactorEmpty => "reactor_empty",
            Self::ReactorTooLong => "reactor_too_long",
            Self::ReactorControlCharacters => "reactor_control_characters",
            Self::DateInvalid => "date_not_rfc3339",
            Self::DateOutOfRange => "date_out_of_range",
            Self::CorruptAggregate => "corrupt_kpl_aggregate",
            Self::StoreRejected => "store_rejected",
            Self::AlertRejected => "alert_rejected",
            Self::EnvelopeUnreadable => "kinesis_envelope_unreadable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A payload that is not a reading, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload rejected: {reason}")]
pub struct Rejection {
    pub reason: RejectReason,
}

impl Rejection {
    pub fn new(reason: RejectReason) -> Self {
        Self { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(payload: &[u8]) -> &'static str {
        Reading::parse(payload).unwrap_err().reason.code()
    }

    #[test]
    fn a_well_formed_payload_becomes_a_reading() {
        let r = Reading::parse(br#"{"temp":750.5,"reactor":"reactor-1","date":"2020-03-07T16:29:50+02:00","extra":[1]}"#)
            .unwrap();
        assert_eq!(r.reactor, "reactor-1");
        assert_eq!(r.temp_c, 750.5);
        assert_eq!(r.utc_timestamp(), "2020-03-07T14:29:50.000000000Z");
        assert_eq!(r.traceparent, None);
    }

    #[test]
    fn integer_temperatures_and_traceparent_are_read() {
        let r = Reading::parse(
            br#"{"temp":-5,"reactor":"r","date":"2020-03-07T16:29:50Z","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#,
        )
        .unwrap();
        assert_eq!(r.temp_c, -5.0);
        assert_eq!(
            r.traceparent.as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
    }

    #[test]
    fn every_rejection_reason_is_reachable() {
        let ok_rest = r#""reactor":"r","date":"2020-03-07T16:29:50Z""#;
        let with_temp = |t: &str| format!("{{\"temp\":{t},{ok_rest}}}");
        assert_eq!(reason(b"\xff\xfe{}"), "not_utf8");
        assert_eq!(reason(b""), "not_json");
        assert_eq!(reason(b"{\"temp\":"), "not_json");
        assert_eq!(reason("\u{feff}{}".as_bytes()), "not_json");
        assert_eq!(reason(b"[1,2]"), "not_an_object");
        assert_eq!(reason(b"null"), "not_an_object");
        assert_eq!(reason(b"42"), "not_an_object");
        assert_eq!(reason(b"\"text\""), "not_an_object");
        assert_eq!(
            reason(br#"{"temp":1,"temp":2,"reactor":"r","date":"2020-03-07T16:29:50Z"}"#),
            "duplicate_field"
        );
        assert_eq!(reason(format!("{{{ok_rest}}}").as_bytes()), "missing_temp");
        assert_eq!(reason(with_temp("null").as_bytes()), "missing_temp");
        assert_eq!(reason(with_temp("\"750\"").as_bytes()), "temp_not_a_number");
        assert_eq!(reason(with_temp("true").as_bytes()), "temp_not_a_number");
        assert_eq!(reason(with_temp("1e999").as_bytes()), "temp_not_finite");
        assert_eq!(
            reason(with_temp("-273.16").as_bytes()),
            "temp_below_absolute_zero"
        );
        assert_eq!(
            reason(br#"{"temp":1,"date":"2020-03-07T16:29:50Z"}"#),
            "missing_reactor"
        );
        assert_eq!(
            reason(br#"{"temp":1,"reactor":7,"date":"2020-03-07T16:29:50Z"}"#),
            "reactor_not_a_string"
        );
        assert_eq!(
            reason(br#"{"temp":1,"reactor":"","date":"2020-03-07T16:29:50Z"}"#),
            "reactor_empty"
        );
        assert_eq!(
            reason(br#"{"temp":1,"reactor":"a\nb","date":"2020-03-07T16:29:50Z"}"#),
            "reactor_control_characters"
        );
        assert_eq!(
            reason(br#"{"temp":1,"reactor":"\u001b[31m","date":"2020-03-07T16:29:50Z"}"#),
            "reactor_control_characters"
        );
        assert_eq!(
            reason(br#"{"temp":1,"reactor":"a\u0000","date":"2020-03-07T16:29:50Z"}"#),
            "reactor_control_characters"
        );
        let long = format!(
            r#"{{"temp":1,"reactor":"{}","date":"2020-03-07T16:29:50Z"}}"#,
            "x".repeat(129)
        );
        assert_eq!(reason(long.as_bytes()), "reactor_too_long");
        assert_eq!(reason(br#"{"temp":1,"reactor":"r"}"#), "missing_date");
        assert_eq!(
            reason(br#"{"temp":1,"reactor":"r","date":1583591390}"#),
            "date_not_a_string"
        );
        assert_eq!(
            reason(br#"{"temp":1,"reactor":"r","date":"yesterday"}"#),
            "date_not_rfc3339"
        );
    }

    #[test]
    fn limits_are_inclusive_where_the_contract_says_so() {
        let at_zero = br#"{"temp":-273.15,"reactor":"r","date":"2020-03-07T16:29:50Z"}"#;
        assert!(Reading::parse(at_zero).is_ok());
        let longest = format!(
            r#"{{"temp":1,"reactor":"{}","date":"2020-03-07T16:29:50Z"}}"#,
            "é".repeat(128)
        );
        assert!(Reading::parse(longest.as_bytes()).is_ok());
    }

    #[test]
    fn a_reactor_id_that_could_reorder_displayed_text_is_rejected() {
        let spoof = "{\"temp\":1,\"reactor\":\"reactor-1\u{202E}1-rotcaer\",\"date\":\"2020-03-07T16:29:50Z\"}";
        assert_eq!(reason(spoof.as_bytes()), "reactor_control_characters");
        let isolate = "{\"temp\":1,\"reactor\":\"r\u{2067}x\",\"date\":\"2020-03-07T16:29:50Z\"}";
        assert_eq!(reason(isolate.as_bytes()), "reactor_control_characters");
    }

    #[test]
    fn a_date_whose_utc_instant_leaves_years_0000_to_9999_is_rejected() {
        let at = |date: &str| format!(r#"{{"temp":1,"reactor":"r","date":"{date}"}}"#);
        for inside in [
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T22:59:59+00:00",
            "9999-12-31T23:30:00+01:00",
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:30:00-01:00",
        ] {
            let r = Reading::parse(at(inside).as_bytes()).unwrap();
            assert_eq!(r.utc_timestamp().len(), UTC_TIMESTAMP_LEN, "{inside}");
        }
        for outside in [
            "9999-12-31T23:30:00-01:00",
            "9999-12-31T23:59:59-00:01",
            "0000-01-01T00:30:00+01:00",
            "0000-01-01T00:00:00+00:01",
        ] {
            assert_eq!(
                reason(at(outside).as_bytes()),
                "date_out_of_range",
                "{outside}"
            );
        }
    }

    #[test]
    fn a_reading_too_hot_to_be_true_is_still_a_reading() {
        let r = Reading::parse(br#"{"temp":5000,"reactor":"r","date":"2020-03-07T16:29:50Z"}"#)
            .unwrap();
        assert_eq!(r.temp_c, 5000.0);
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(reason(deep.as_bytes()), "not_an_object");
        let deep_unknown = format!("{{\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(reason(deep_unknown.as_bytes()), "missing_temp");
    }
}

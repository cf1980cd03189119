//! RFC 3339 text of instants, written digit by digit.
//!
//! Every stored reading carries three timestamps (its sort key, its date as the sensor wrote
//! it, its arrival), and chrono's general formatter made them most of the cost of building
//! the item. These functions write the same text as chrono's `to_rfc3339_opts` for the
//! formats used here, and hand the rare cases they do not cover (years outside 0000–9999,
//! leap seconds, offsets with seconds) back to chrono.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, SecondsFormat, Timelike, Utc};

/// Digits of the fraction of a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    Millis,
    Nanos,
    /// None, 3, 6 or 9 digits: as many as the value needs (chrono's `AutoSi`).
    Auto,
}

/// Appends `t` in UTC with a `Z`: `YYYY-MM-DDTHH:MM:SS.fffZ` (millis) or with 9 digits (nanos).
pub fn push_utc(out: &mut String, t: &DateTime<Utc>, fraction: Fraction) {
    if !push_naive(out, &t.naive_utc(), fraction) {
        out.push_str(&t.to_rfc3339_opts(seconds_format(fraction), true));
        return;
    }
    out.push('Z');
}

/// Appends `t` with its own offset (`+02:00`, `+00:00`), as `DateTime::to_rfc3339` does.
pub fn push_with_offset(out: &mut String, t: &DateTime<FixedOffset>, fraction: Fraction) {
    let offset = t.offset().local_minus_utc();
    if offset % 60 != 0 || !push_naive(out, &t.naive_local(), fraction) {
        out.push_str(&t.to_rfc3339_opts(seconds_format(fraction), false));
        return;
    }
    let minutes = offset.unsigned_abs() / 60;
    out.push(if offset < 0 { '-' } else { '+' });
    push_digits(out, minutes / 60, 2);
    out.push(':');
    push_digits(out, minutes % 60, 2);
}

/// The date and time without a zone; false (and nothing written) when chrono must do it.
fn push_naive(out: &mut String, t: &NaiveDateTime, fraction: Fraction) -> bool {
    let year = t.year();
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return false;
    }
    push_digits(out, year.unsigned_abs(), 4);
    out.push('-');
    push_digits(out, t.month(), 2);
    out.push('-');
    push_digits(out, t.day(), 2);
    out.push('T');
    push_digits(out, t.hour(), 2);
    out.push(':');
    push_digits(out, t.minute(), 2);
    out.push(':');
    push_digits(out, t.second(), 2);
    let (value, digits) = match fraction {
        Fraction::Millis => (nanos / 1_000_000, 3),
        Fraction::Nanos => (nanos, 9),
        Fraction::Auto if nanos == 0 => return true,
        Fraction::Auto if nanos.is_multiple_of(1_000_000) => (nanos / 1_000_000, 3),
        Fraction::Auto if nanos.is_multiple_of(1_000) => (nanos / 1_000, 6),
        Fraction::Auto => (nanos, 9),
    };
    out.push('.');
    push_digits(out, value, digits);
    true
}

/// Appends `value` with exactly `width` digits (zero-padded; `value` must fit).
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width - 1);
    while divisor > 0 {
        out.push(char::from(b'0' + (value / divisor % 10) as u8));
        divisor /= 10;
    }
}

fn seconds_format(fraction: Fraction) -> SecondsFormat {
    match fraction {
        Fraction::Millis => SecondsFormat::Millis,
        Fraction::Nanos => SecondsFormat::Nanos,
        Fraction::Auto => SecondsFormat::AutoSi,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(t: &DateTime<Utc>, fraction: Fraction) -> String {
        let mut s = String::new();
        push_utc(&mut s, t, fraction);
        s
    }

    fn offset(t: &DateTime<FixedOffset>) -> String {
        let mut s = String::new();
        push_with_offset(&mut s, t, Fraction::Auto);
        s
    }

    /// Instants spread over years 0–9999 with every kind of fraction, from a fixed LCG.
    fn instants() -> impl Iterator<Item = (i64, u32, i32)> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            x >> 11
        };
        // 0000-01-01 .. 9999-12-31, in seconds from the epoch.
        let (lo, hi) = (-62_167_219_200i64, 253_402_300_799i64);
        (0..20_000).map(move |i| {
            let secs = lo + (next() % (hi - lo) as u64) as i64;
            let nanos = match i % 4 {
                0 => 0,
                1 => (next() % 1_000) as u32 * 1_000_000,
                2 => (next() % 1_000_000) as u32 * 1_000,
                _ => (next() % 1_000_000_000) as u32,
            };
            let offset_minutes = (next() % (2 * 18 * 60)) as i32 - 18 * 60 + 1;
            (secs, nanos, offset_minutes * 60)
        })
    }

    #[test]
    fn writes_what_chrono_writes() {
        for (secs, nanos, offset_secs) in instants() {
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            for (fraction, format) in [
                (Fraction::Millis, SecondsFormat::Millis),
                (Fraction::Nanos, SecondsFormat::Nanos),
                (Fraction::Auto, SecondsFormat::AutoSi),
            ] {
                assert_eq!(utc(&t, fraction), t.to_rfc3339_opts(format, true));
            }
            let local = t.with_timezone(&FixedOffset::east_opt(offset_secs).unwrap());
            assert_eq!(offset(&local), local.to_rfc3339());
        }
    }

    #[test]
    fn the_cases_it_does_not_cover_are_chronos() {
        let far = Utc.with_ymd_and_hms(12_345, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            utc(&far, Fraction::Millis),
            far.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        let odd = FixedOffset::east_opt(3_600 + 30)
            .unwrap()
            .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
            .unwrap();
        assert_eq!(offset(&odd), odd.to_rfc3339());
        let leap = NaiveDateTime::parse_from_str("2016-12-31 23:59:60.5", "%Y-%m-%d %H:%M:%S%.f")
            .unwrap()
            .and_utc();
        assert_eq!(
            utc(&leap, Fraction::Nanos),
            leap.to_rfc3339_opts(SecondsFormat::Nanos, true)
        );
    }

    #[test]
    fn appends_to_what_is_there() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 22, 31, 19).unwrap();
        let mut s = String::from("key#");
        push_utc(&mut s, &t, Fraction::Millis);
        assert_eq!(s, "key#2026-11-25T22:31:19.000Z");
    }
}

//! [`Timestamp`]: an RFC 3339 instant that keeps its text as sent.
//!
//! The text matters beyond the instant it names: the payload cipher binds the
//! timestamp "exactly as sent" (docs/protocol.md section 6) and the signature covers
//! it, so a timestamp is never re-formatted once made. Timestamps the engine
//! makes are UTC with milliseconds, e.g. `2026-11-23T12:00:00.123Z`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Nanoseconds in a second.
const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// An instant on the wire: its RFC 3339 text and the Unix time it names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    text: String,
    unix_nanos: i128,
}

impl Timestamp {
    /// The current time, UTC, to the millisecond.
    pub fn now() -> Timestamp {
        Timestamp::from_unix_nanos(unix_nanos_now())
    }

    /// The instant `unix_nanos` (truncated to the millisecond), formatted as
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`. Instants outside years 0000 to 9999 are
    /// clamped to that range, the range RFC 3339 can express.
    pub fn from_unix_nanos(unix_nanos: i128) -> Timestamp {
        let millis = unix_nanos.div_euclid(1_000_000).saturating_mul(1_000_000);
        let instant = OffsetDateTime::from_unix_timestamp_nanos(millis).unwrap_or(if millis < 0 {
            macros_free::MIN
        } else {
            macros_free::MAX
        });
        let text = format_utc_millis(instant);
        Timestamp {
            unix_nanos: instant.unix_timestamp_nanos(),
            text,
        }
    }

    /// Parses an RFC 3339 date-time, keeping `text` as it is.
    ///
    /// Any offset is accepted; `T` and `Z` in either case, as RFC 3339's
    /// grammar allows; not a space between date and time (the RFC's note
    /// allows it by agreement only). A leap second (`:60`) names the instant
    /// after `:59`.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let unix_nanos = parse_rfc3339(text)?;
        Some(Timestamp {
            text: text.to_owned(),
            unix_nanos,
        })
    }

    /// A timestamp from text already read as `unix_nanos`.
    pub(crate) fn from_parts(text: String, unix_nanos: i128) -> Timestamp {
        Timestamp { text, unix_nanos }
    }

    /// The text as sent.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        self.unix_nanos
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Makes [`Timestamp::now`] for one thread, formatting each millisecond
/// once: a worker answering hundreds of messages a millisecond reuses the
/// text.
#[derive(Debug, Default)]
pub(crate) struct MillisecondClock {
    last: Option<Timestamp>,
}

impl MillisecondClock {
    /// The current time, UTC, to the millisecond.
    pub(crate) fn now(&mut self) -> Timestamp {
        self.at(unix_nanos_now())
    }

    /// `unix_nanos` (a time just read), UTC, to the millisecond.
    pub(crate) fn at(&mut self, unix_nanos: i128) -> Timestamp {
        self.borrow_at(unix_nanos).clone()
    }

    /// As [`at`](Self::at), borrowed: no copy of the text.
    pub(crate) fn borrow_at(&mut self, unix_nanos: i128) -> &Timestamp {
        // Within the last text's millisecond: compared, not divided (an
        // `i128` division is a library call of some 60 instructions).
        if self.last.as_ref().is_some_and(|last| {
            unix_nanos < last.unix_nanos || unix_nanos.saturating_sub(last.unix_nanos) >= 1_000_000
        }) {
            self.last = None;
        }
        self.last
            .get_or_insert_with(|| Timestamp::from_unix_nanos(unix_nanos))
    }
}

/// The current Unix time in nanoseconds.
pub fn unix_nanos_now() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i128::try_from(since.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// The Unix time in nanoseconds named by an RFC 3339 date-time.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i128> {
    let bytes = text.as_bytes();
    if !matches!(bytes.get(10), Some(b'T' | b't')) {
        return None;
    }
    if let Some(unix_nanos) = parse_utc(bytes) {
        return Some(unix_nanos);
    }
    if let Ok(instant) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(instant.unix_timestamp_nanos());
    }
    // A leap second: read it as :59 plus one second.
    if bytes.get(17..19) == Some(b"60") {
        let mut copy = bytes.to_vec();
        copy.get_mut(17..19)?.copy_from_slice(b"59");
        let text = std::str::from_utf8(&copy).ok()?;
        let instant = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        return Some(instant.unix_timestamp_nanos() + NANOS_PER_SECOND);
    }
    None
}

/// The common case read by hand: UTC (`Z`), no leap second, as the engine
/// and most peers write it (`time`'s general parser cost a twentieth of a
/// message). `None` when `bytes` has another shape or names no real date;
/// the general parser then decides.
fn parse_utc(bytes: &[u8]) -> Option<i128> {
    let (&zone, rest) = bytes.split_last()?;
    if !matches!(zone, b'Z' | b'z') || rest.len() < 19 {
        return None;
    }
    let (date_time, fraction) = rest.split_at(19);
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators
        .iter()
        .any(|&(at, separator)| date_time.get(at) != Some(&separator))
    {
        return None;
    }
    let year = digits(date_time.get(0..4)?)?;
    let month = digits(date_time.get(5..7)?)?;
    let day = digits(date_time.get(8..10)?)?;
    let hour = digits(date_time.get(11..13)?)?;
    let minute = digits(date_time.get(14..16)?)?;
    let second = digits(date_time.get(17..19)?)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let nanos = match fraction.split_first() {
        None => 0,
        Some((b'.', decimals)) if (1..=9).contains(&decimals.len()) => {
            let scale = 10u64.pow(9 - decimals.len() as u32);
            u64::from(digits(decimals)?) * scale
        }
        Some(_) => return None,
    };
    // Four-digit years: the seconds fit an i64 (i128 division is a call).
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds = days * 86_400 + i64::from(hour * 3_600 + minute * 60 + second);
    Some(i128::from(seconds) * NANOS_PER_SECOND + i128::from(nanos))
}

/// The decimal number `text` spells (`None` unless all ASCII digits; at
/// most nine of them, so it fits).
fn digits(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0u32, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u32::from(byte - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, written digit by digit: every reply gets a
/// timestamp, and `format!` cost more than the rest of sealing a reply.
fn format_utc_millis(instant: OffsetDateTime) -> String {
    let (year, month, day) = instant.to_calendar_date();
    let (hour, minute, second, milli) = instant.to_hms_milli();
    let mut text = String::with_capacity(24);
    // Years are clamped to 0000..=9999 by the caller.
    push_digits(&mut text, year.unsigned_abs(), 4);
    text.push('-');
    push_digits(&mut text, u32::from(u8::from(month)), 2);
    text.push('-');
    push_digits(&mut text, u32::from(day), 2);
    text.push('T');
    push_digits(&mut text, u32::from(hour), 2);
    text.push(':');
    push_digits(&mut text, u32::from(minute), 2);
    text.push(':');
    push_digits(&mut text, u32::from(second), 2);
    text.push('.');
    push_digits(&mut text, u32::from(milli), 3);
    text.push('Z');
    text
}

/// The last `width` decimal digits of `value`, zero-padded.
fn push_digits(text: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        text.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

/// Stand-ins for `time`'s `PrimitiveDateTime::MIN/MAX` at UTC, without its
/// macros feature.
mod macros_free {
    use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

    pub(super) const MIN: OffsetDateTime = match Date::from_ordinal_date(0, 1) {
        Ok(date) => PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc(),
        Err(_) => OffsetDateTime::UNIX_EPOCH,
    };

    pub(super) const MAX: OffsetDateTime = match Date::from_ordinal_date(9999, 365) {
        Ok(date) => match Time::from_hms_milli(23, 59, 59, 999) {
            Ok(time) => PrimitiveDateTime::new(date, time).assume_utc(),
            Err(_) => OffsetDateTime::UNIX_EPOCH,
        },
        Err(_) => OffsetDateTime::UNIX_EPOCH,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: i128 = 1_795_435_200 * NANOS_PER_SECOND; // 2026-11-23T12:00:00Z

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("2026-11-23T12:00:00Z"), Some(NOON));
        assert_eq!(
            parse_rfc3339("2026-11-23T12:00:00.123Z"),
            Some(NOON + 123_000_000)
        );
        assert_eq!(parse_rfc3339("2026-11-23t12:00:00z"), Some(NOON));
        assert_eq!(parse_rfc3339("2026-11-23T13:30:00+01:30"), Some(NOON));
        assert_eq!(parse_rfc3339("2026-11-23T12:00:00-00:00"), Some(NOON));
        assert_eq!(
            parse_rfc3339("2026-11-23T12:00:00.123456789Z"),
            Some(NOON + 123_456_789)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T23:59:60Z"),
            Some(NOON + 12 * 3600 * NANOS_PER_SECOND)
        );
    }

    #[test]
    fn refuses_what_is_not_rfc_3339() {
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23 12:00:00Z",
            "2026-11-23T12:00Z",
            "2026-11-23T12:00:00",
            "2026-02-30T12:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T12:00:00+24:00",
            "2026-11-23T12:00:61Z",
            "26-11-23T12:00:00Z",
            "2026-11-23T12:00:00.Z",
            "1795435200",
            "2026-11-23T12:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn made_timestamps_are_utc_with_milliseconds_and_read_back() {
        let t = Timestamp::from_unix_nanos(NOON + 123_456_789);
        assert_eq!(t.as_str(), "2026-11-23T12:00:00.123Z");
        assert_eq!(t.unix_nanos(), NOON + 123_000_000);
        assert_eq!(Timestamp::parse(t.as_str()), Some(t));
        let now = Timestamp::now();
        assert_eq!(now.as_str().len(), 24);
        assert_eq!(parse_rfc3339(now.as_str()), Some(now.unix_nanos()));
    }

    #[test]
    fn the_utc_fast_path_agrees_with_the_time_crate() {
        let general = |text: &str| {
            OffsetDateTime::parse(text, &Rfc3339)
                .ok()
                .map(|instant| instant.unix_timestamp_nanos())
        };
        let mut checked = 0;
        let mut read_fast = 0;
        for year in [
            0, 1, 4, 100, 399, 400, 1900, 1969, 1970, 2000, 2024, 2026, 2100, 9999,
        ] {
            for month in 0..=13 {
                for day in [0, 1, 15, 28, 29, 30, 31, 32] {
                    for (hour, minute, second) in [
                        (0, 0, 0),
                        (23, 59, 59),
                        (24, 0, 0),
                        (12, 60, 0),
                        (12, 0, 60),
                    ] {
                        for fraction in ["", ".1", ".123", ".123456789", ".", ".1234567890", ".12a"]
                        {
                            for zone in ["Z", "z", "+00:00", ""] {
                                let text = format!(
                                    "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
                                );
                                let fast = parse_utc(text.as_bytes());
                                if let Some(nanos) = fast {
                                    assert_eq!(Some(nanos), general(&text), "{text}");
                                    read_fast += 1;
                                }
                                assert_eq!(
                                    parse_rfc3339(&text).is_some(),
                                    general(&text).is_some()
                                        || second == 60
                                            && general(&text.replace(":60", ":59")).is_some(),
                                    "{text}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(read_fast > 10_000, "{read_fast} of {checked}");
        for odd in [
            "2026-11-23T12:00:00.123",
            "2026-11-23T12:00:00+Z",
            "2026-11-23T12:0:00Z",
            "2026-11-23T12:00:00.123Zjunk",
            "2026-11-23T12:00:00Z\n",
            "+026-11-23T12:00:00Z",
            "2026-11-23T12:00:00 Z",
        ] {
            assert_eq!(parse_utc(odd.as_bytes()), None, "{odd}");
            assert_eq!(parse_rfc3339(odd), None, "{odd}");
        }
    }

    #[test]
    fn made_timestamps_match_the_time_crate_formatting() {
        // Steps that are not round numbers, from year 0 to 9999, cover every
        // field's range, leap days and the end of years.
        let mut nanos = macros_free::MIN.unix_timestamp_nanos();
        let end = macros_free::MAX.unix_timestamp_nanos();
        let step = 7_919 * 3_600 * NANOS_PER_SECOND + 123_457_000;
        while nanos <= end {
            let instant = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            let (year, month, day) = instant.to_calendar_date();
            let (hour, minute, second, milli) = instant.to_hms_milli();
            let expected = format!(
                "{year:04}-{:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z",
                u8::from(month)
            );
            assert_eq!(Timestamp::from_unix_nanos(nanos).as_str(), expected);
            nanos += step;
        }
    }

    #[test]
    fn the_millisecond_clock_reuses_the_text_within_a_millisecond() {
        let mut clock = MillisecondClock::default();
        let first = clock.now();
        let second = clock.now();
        assert!(second.unix_nanos() >= first.unix_nanos());
        assert_eq!(
            Timestamp::from_unix_nanos(second.unix_nanos()).as_str(),
            second.as_str()
        );
        // A stale cached millisecond is never handed out.
        clock.last = Some(Timestamp::from_unix_nanos(NOON));
        let now = clock.now();
        assert_ne!(now.unix_nanos(), NOON);
        assert_eq!(parse_rfc3339(now.as_str()), Some(now.unix_nanos()));
    }

    #[test]
    fn the_millisecond_clock_changes_text_exactly_at_millisecond_edges() {
        let mut clock = MillisecondClock::default();
        // Around noon and around an instant before 1970 (where the
        // millisecond is the floor, not the truncation toward zero).
        for base in [
            NOON + 7_000_000,
            -1_500_000_000_123_000_000,
            i128::MAX - 2_000_000,
        ] {
            for offset in [
                0, 1, 999_999, 1_000_000, 1_000_001, -1, -1_000_000, -1_000_001,
            ] {
                let at = base + offset;
                assert_eq!(
                    clock.borrow_at(at).as_str(),
                    Timestamp::from_unix_nanos(at).as_str(),
                    "at {at}"
                );
            }
        }
    }

    #[test]
    fn instants_beyond_rfc_3339_years_are_clamped() {
        assert!(
            Timestamp::from_unix_nanos(i128::MAX)
                .as_str()
                .starts_with("9999-12-31T23:59:59.999")
        );
        assert!(
            Timestamp::from_unix_nanos(i128::MIN)
                .as_str()
                .starts_with("0000-01-01T00:00:00.000")
        );
    }
}

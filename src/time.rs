//! Calendar arithmetic and the timestamp syntaxes of access logs.
//!
//! Hand-written rather than delegated to a date crate because timestamp parsing
//! sits on the hot path of every decoder (one call per line) and the formats are
//! fixed-width. Validated against `chrono` in the tests.

pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 in UTC with second precision, e.g. `2017-03-16T13:28:20Z`.
pub fn format_rfc3339(unix_secs: i64) -> String {
    Timestamp::from_secs(unix_secs).to_string()
}

/// Why a timestamp did not parse. Static text: the decoder adds the position.
pub type TimeError = &'static str;

/// Event times Vane accepts: years 1900 to 2199. Wide enough for any real log,
/// and far enough from the ends of `i64` nanoseconds that window arithmetic
/// cannot overflow.
const MIN_NS: i64 = -2_208_988_800 * NANOS_PER_SEC; // 1900-01-01
const MAX_NS: i64 = 7_258_118_400 * NANOS_PER_SEC; // 2200-01-01

/// Rejects event times outside [`MIN_NS`, `MAX_NS`).
pub fn check_range(ns: i64) -> Result<i64, TimeError> {
    if (MIN_NS..MAX_NS).contains(&ns) {
        Ok(ns)
    } else {
        Err("timestamp is outside the years 1900 to 2199")
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<u32, TimeError> {
    let s = b.get(at..at + n).ok_or("timestamp is truncated")?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return Err("timestamp has a non-digit where a digit belongs");
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Ok(v)
}

fn expect(b: &[u8], at: usize, c: u8) -> Result<(), TimeError> {
    if b.get(at) == Some(&c) {
        Ok(())
    } else {
        Err("timestamp separator is not where the format puts it")
    }
}

fn to_nanos(
    year: u32,
    month: u32,
    day: u32,
    (h, mi, s): (u32, u32, u32),
    frac_ns: i64,
    offset_secs: i64,
) -> Result<i64, TimeError> {
    if !(1..=12).contains(&month) {
        return Err("timestamp month is out of range");
    }
    let max_day = match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > max_day {
        return Err("timestamp day is out of range for its month");
    }
    if h > 23 || mi > 59 || s > 60 {
        return Err("timestamp time of day is out of range");
    }
    if !(1900..2200).contains(&year) {
        return Err("timestamp is outside the years 1900 to 2199");
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs =
        days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s) - offset_secs;
    check_range(secs * NANOS_PER_SEC + frac_ns)
}

/// Parses a UTC offset `Z`, `+hhmm`, `+hh:mm` (or `-`) at the start of `b`;
/// returns the offset in seconds and the bytes consumed.
fn parse_offset(b: &[u8]) -> Result<(i64, usize), TimeError> {
    match b.first() {
        Some(b'Z') | Some(b'z') => Ok((0, 1)),
        Some(&sign @ (b'+' | b'-')) => {
            let hh = digits(b, 1, 2)?;
            let (mm, used) = if b.get(3) == Some(&b':') {
                (digits(b, 4, 2)?, 6)
            } else {
                (digits(b, 3, 2)?, 5)
            };
            if hh > 23 || mm > 59 {
                return Err("timestamp UTC offset is out of range");
            }
            let secs = i64::from(hh * 3600 + mm * 60);
            Ok((if sign == b'-' { -secs } else { secs }, used))
        }
        _ => Err("timestamp has no UTC offset (`Z` or `+hhmm`)"),
    }
}

/// The nanoseconds of the fraction digits from `at` on, and where they
/// end. Digits past the ninth are read and cut. Every access log line has
/// one or two of these: eight digits are read at once where eight follow.
#[inline]
fn fraction_ns(b: &[u8], mut at: usize) -> (i64, usize) {
    let mut frac = 0i64;
    let mut scale = 100_000_000i64;
    if let Some(v) = b.get(at..at + 8).and_then(eight_digits) {
        frac = i64::from(v) * 10;
        scale = 1;
        at += 8;
    }
    while let Some(c) = b.get(at).filter(|c| c.is_ascii_digit()) {
        frac += i64::from(c - b'0') * scale;
        scale /= 10;
        at += 1;
    }
    (frac, at)
}

/// Eight ASCII digits as a number, or `None` if any byte is not a digit
/// (the SWAR method: each step adds neighbouring lanes in one multiply).
#[inline]
fn eight_digits(chunk: &[u8]) -> Option<u32> {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let v = u64::from_le_bytes(chunk.try_into().ok()?);
    if (v & HIGH) | ((v.wrapping_add(0x0606_0606_0606_0606) & HIGH) >> 4) != 0x3333_3333_3333_3333 {
        return None;
    }
    let v = ((v & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
    let v = ((v & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
    let v = ((v & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32;
    u32::try_from(v).ok()
}

/// ISO 8601 / RFC 3339: `2019-03-22T14:46:52.175625546Z`, `2017-03-16T13:28:25.166+0000`.
/// Any number of fraction digits; nanoseconds beyond 9 digits are cut.
pub fn parse_iso8601(b: &[u8]) -> Result<i64, TimeError> {
    let year = digits(b, 0, 4)?;
    expect(b, 4, b'-')?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b'-')?;
    let day = digits(b, 8, 2)?;
    match b.get(10) {
        Some(b'T' | b't' | b' ') => {}
        _ => return Err("timestamp date and time are not separated by `T`"),
    }
    let h = digits(b, 11, 2)?;
    expect(b, 13, b':')?;
    let mi = digits(b, 14, 2)?;
    expect(b, 16, b':')?;
    let s = digits(b, 17, 2)?;
    let mut at = 19;
    let mut frac_ns = 0i64;
    if matches!(b.get(at), Some(b'.' | b',')) {
        let (frac, end) = fraction_ns(b, at + 1);
        if end == at + 1 {
            return Err("timestamp has a `.` without fraction digits");
        }
        (frac_ns, at) = (frac, end);
    }
    let (offset, used) = parse_offset(&b[at..])?;
    if at + used != b.len() {
        return Err("timestamp has trailing characters");
    }
    to_nanos(year, month, day, (h, mi, s), frac_ns, offset)
}

fn month_from_abbrev(b: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.as_slice() == b)
        .map(|i| i as u32 + 1)
}

/// Common Log Format time: `17/May/2015:10:05:03 +0000`, and the numeric-month
/// variant of 2016-era gorouter: `15/07/2016:09:26:25 +0000`.
pub fn parse_clf(b: &[u8]) -> Result<i64, TimeError> {
    let day = digits(b, 0, 2)?;
    expect(b, 2, b'/')?;
    let (month, at) = if b.get(5) == Some(&b'/') {
        (digits(b, 3, 2)?, 6)
    } else {
        let name = b.get(3..6).ok_or("timestamp is truncated")?;
        (
            month_from_abbrev(name).ok_or("timestamp month is not a name like `May`")?,
            7,
        )
    };
    expect(b, at - 1, b'/')?;
    let year = digits(b, at, 4)?;
    expect(b, at + 4, b':')?;
    let h = digits(b, at + 5, 2)?;
    expect(b, at + 7, b':')?;
    let mi = digits(b, at + 8, 2)?;
    expect(b, at + 10, b':')?;
    let s = digits(b, at + 11, 2)?;
    let mut p = at + 13;
    let mut frac_ns = 0;
    if b.get(p) == Some(&b'.') {
        // Some proxies log milliseconds in CLF; accept them.
        p += 1;
        let mut scale = 100_000_000i64;
        while let Some(c) = b.get(p).filter(|c| c.is_ascii_digit()) {
            frac_ns += i64::from(c - b'0') * scale;
            scale /= 10;
            p += 1;
        }
    }
    expect(b, p, b' ')?;
    let (offset, used) = parse_offset(&b[p + 1..])?;
    if p + 1 + used != b.len() {
        return Err("timestamp has trailing characters");
    }
    to_nanos(year, month, day, (h, mi, s), frac_ns, offset)
}

/// Seconds with a fraction, as in nginx `$msec` (`1700000000.123`) or
/// `$request_time` (`0.005`); returns nanoseconds.
pub fn parse_decimal_seconds(b: &[u8]) -> Result<i64, TimeError> {
    let mut int: i64 = 0;
    let mut i = 0;
    while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        int = int
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
            .ok_or("number of seconds is too large")?;
        i += 1;
    }
    if i == 0 {
        return Err("number of seconds has no digits");
    }
    let mut frac = 0i64;
    if b.get(i) == Some(&b'.') {
        (frac, i) = fraction_ns(b, i + 1);
    }
    if i != b.len() {
        return Err("number of seconds has a non-digit");
    }
    int.checked_mul(NANOS_PER_SEC)
        .and_then(|v| v.checked_add(frac))
        .ok_or("number of seconds is too large")
}

// Durations as configuration and rule files write them.

/// `250ms`, `10s`, `5m`, `1h`, `1d`; or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("`{s}` is not a duration: use a number and a unit, like `10s`, `250ms`, `5m`")
    })?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        other => {
            return Err(format!(
                "`{other}` is not a duration unit: one of ms, s, m, h, d"
            ));
        }
    };
    std::time::Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("`{s}` is not a duration Vane can hold"))
}

/// Serde helper: a duration as text (`10s`) or as a number of seconds.
/// A visitor rather than an untagged enum: a wrong type is then named with
/// what is expected ("invalid type: boolean `true`, expected a duration
/// like ..."), where an untagged enum only says no variant matched.
pub fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = std::time::Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration like \"10s\", \"250ms\", \"5m\", \"1h\" or a number of seconds")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse_duration(text).map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, secs: f64) -> Result<Self::Value, E> {
        std::time::Duration::try_from_secs_f64(secs)
            .map_err(|_| E::custom("a duration must be a non-negative number of seconds"))
    }

    fn visit_i64<E: serde::de::Error>(self, secs: i64) -> Result<Self::Value, E> {
        u64::try_from(secs)
            .map(std::time::Duration::from_secs)
            .map_err(|_| E::custom("a duration must be a non-negative number of seconds"))
    }

    fn visit_u64<E: serde::de::Error>(self, secs: u64) -> Result<Self::Value, E> {
        Ok(std::time::Duration::from_secs(secs))
    }
}

/// A point in event time: nanoseconds since the Unix epoch, as the core
/// computes with it. Written as RFC 3339 UTC with second precision
/// (`2017-03-16T13:28:20Z`) only when serialized, and read back from any
/// ISO 8601 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_nanos(ns: i64) -> Timestamp {
        Timestamp(ns)
    }

    pub const fn from_secs(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(NANOS_PER_SEC))
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded down.
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }

    /// The 20 bytes of its RFC 3339 text (`2017-03-16T13:28:20Z`).
    pub fn rfc3339_bytes(self) -> [u8; 20] {
        self.rfc3339().0
    }

    /// The RFC 3339 text, formatted without allocating.
    fn rfc3339(self) -> Rfc3339 {
        let secs = self.secs();
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let mut out = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, v: i64| {
            let mut v = v.rem_euclid(10_i64.pow(width as u32));
            for i in (0..width).rev() {
                out[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, i64::from(m));
        put(8, 2, i64::from(d));
        put(11, 2, sod / 3600);
        put(14, 2, (sod / 60) % 60);
        put(17, 2, sod % 60);
        Rfc3339(out)
    }
}

/// The 20 ASCII bytes of an RFC 3339 UTC time with second precision.
struct Rfc3339([u8; 20]);

impl Rfc3339 {
    fn as_str(&self) -> &str {
        // Digits and separators only.
        std::str::from_utf8(&self.0).unwrap_or("0000-00-00T00:00:00Z")
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.rfc3339().as_str())
    }
}

/// Compares with RFC 3339 text as written (second precision).
impl PartialEq<&str> for Timestamp {
    fn eq(&self, text: &&str) -> bool {
        self.rfc3339().as_str() == *text
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Timestamp, TimeError> {
        parse_iso8601(s.as_bytes()).map(Timestamp)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.rfc3339().as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        d.deserialize_str(TimestampVisitor)
    }
}

struct TimestampVisitor;

impl serde::de::Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an RFC 3339 time like `2017-03-16T13:28:20Z`")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
        text.parse()
            .map_err(|e: TimeError| E::custom(format!("`{text}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};
    use proptest::prelude::*;

    proptest! {
        /// Any bytes: eight digits read at once equal them read one by one.
        #[test]
        fn eight_digits_at_once_equal_one_by_one(
            chunk in prop::array::uniform8(any::<u8>()),
            digits in "[0-9]{8}",
            near in "[/0-9:]{8}",
        ) {
            let naive = |c: &[u8]| c.iter().all(u8::is_ascii_digit).then(|| {
                c.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'))
            });
            prop_assert_eq!(eight_digits(&chunk), naive(&chunk));
            prop_assert_eq!(eight_digits(digits.as_bytes()), naive(digits.as_bytes()));
            prop_assert_eq!(eight_digits(near.as_bytes()), naive(near.as_bytes()));
        }

        #[test]
        fn a_fraction_of_any_length_is_cut_at_nanoseconds(digits in "[0-9]{0,14}", tail in "[Z+ x]?") {
            let text = format!("{digits}{tail}");
            let mut want = 0i64;
            for (i, d) in digits.bytes().take(9).enumerate() {
                want += i64::from(d - b'0') * 10_i64.pow(8 - i as u32);
            }
            prop_assert_eq!(fraction_ns(text.as_bytes(), 0), (want, digits.len()));
        }

        #[test]
        fn timestamps_print_as_chrono_does_and_read_back(secs in MIN_NS / NANOS_PER_SEC..MAX_NS / NANOS_PER_SEC, frac in 0..NANOS_PER_SEC) {
            let t = Timestamp::from_nanos(secs * NANOS_PER_SEC + frac);
            let expected = DateTime::from_timestamp(secs, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            prop_assert_eq!(t.to_string(), expected.clone());
            let json = serde_json::to_string(&t).unwrap();
            prop_assert_eq!(&json, &format!("\"{expected}\""));
            let back: Timestamp = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, Timestamp::from_secs(secs));
        }
    }

    #[test]
    fn a_timestamp_that_is_no_time_is_refused_with_the_text() {
        let e = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(e.to_string().contains("`yesterday`"), "{e}");
    }

    #[test]
    fn iso_variants() {
        let ns = parse_iso8601(b"2019-03-22T14:46:52.175625546Z").unwrap();
        let want = DateTime::parse_from_rfc3339("2019-03-22T14:46:52.175625546Z").unwrap();
        assert_eq!(ns, want.timestamp_nanos_opt().unwrap());
        let ms = parse_iso8601(b"2017-03-16T13:28:25.166+0000").unwrap();
        let want = DateTime::parse_from_rfc3339("2017-03-16T13:28:25.166+00:00").unwrap();
        assert_eq!(ms, want.timestamp_nanos_opt().unwrap());
        let off = parse_iso8601(b"2017-03-16T15:28:25+02:00").unwrap();
        assert_eq!(off, ms - 166_000_000);
        assert!(parse_iso8601(b"2017-02-30T00:00:00Z").is_err());
        assert!(parse_iso8601(b"2017-03-16T13:28:25.166").is_err());
        assert!(parse_iso8601(b"2017-03-16T13:28:25Zjunk").is_err());
        assert!(
            parse_iso8601(b"9999-12-31T23:59:59Z").is_err(),
            "beyond i64 nanoseconds"
        );
        assert!(parse_iso8601(b"0001-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn clf_variants() {
        let named = parse_clf(b"17/May/2015:10:05:03 +0000").unwrap();
        let want = NaiveDate::from_ymd_opt(2015, 5, 17)
            .unwrap()
            .and_hms_opt(10, 5, 3)
            .unwrap();
        assert_eq!(named, want.and_utc().timestamp() * NANOS_PER_SEC);
        let numeric = parse_clf(b"15/07/2016:09:26:25 +0000").unwrap();
        let want = NaiveDate::from_ymd_opt(2016, 7, 15)
            .unwrap()
            .and_hms_opt(9, 26, 25)
            .unwrap();
        assert_eq!(numeric, want.and_utc().timestamp() * NANOS_PER_SEC);
        let east = parse_clf(b"17/May/2015:12:05:03 +0200").unwrap();
        assert_eq!(east, named);
        assert!(parse_clf(b"17/Mai/2015:10:05:03 +0000").is_err());
        assert!(parse_clf(b"17/May/2015:10:05:03").is_err());
    }

    #[test]
    fn decimal_seconds() {
        assert_eq!(parse_decimal_seconds(b"0.005").unwrap(), 5_000_000);
        assert_eq!(
            parse_decimal_seconds(b"1700000000.123").unwrap(),
            1_700_000_000_123_000_000
        );
        assert_eq!(parse_decimal_seconds(b"12").unwrap(), 12 * NANOS_PER_SEC);
        assert!(parse_decimal_seconds(b"-").is_err());
        assert!(parse_decimal_seconds(b"1.2.3").is_err());
    }

    proptest! {
        #[test]
        fn civil_roundtrip_matches_chrono(days in -800_000i64..800_000) {
            let (y, m, d) = civil_from_days(days);
            let date = NaiveDate::from_num_days_from_ce_opt((days + 719_163) as i32).unwrap();
            prop_assert_eq!((y as i32, m, d), (chrono::Datelike::year(&date), chrono::Datelike::month(&date), chrono::Datelike::day(&date)));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn rfc3339_matches_chrono(secs in 0i64..4_102_444_800) {
            let want = DateTime::from_timestamp(secs, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            prop_assert_eq!(format_rfc3339(secs), want);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("250ms").unwrap(),
            std::time::Duration::from_millis(250)
        );
        assert_eq!(
            parse_duration("5m").unwrap(),
            std::time::Duration::from_secs(300)
        );
        assert_eq!(
            parse_duration("1.5s").unwrap(),
            std::time::Duration::from_millis(1500)
        );
        assert!(parse_duration("ten").is_err());
        assert!(
            parse_duration("99999999999999999999999d").is_err(),
            "too large: an error, not a panic"
        );
    }
}

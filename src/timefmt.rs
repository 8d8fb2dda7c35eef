//! Dates and times as users type and read them, without a date library: expiry dates
//! (`2027-03-01`, read as 00:00 UTC that day, the cautious reading GitLab uses for its
//! `expires_at`), RFC 3339 timestamps, and countdowns for `helperctl status`.
//!
//! The civil-date arithmetic is Howard Hinnant's `days_from_civil` / `civil_from_days`
//! (public domain, <https://howardhinnant.github.io/date_algorithms.html>).

const SECS_PER_DAY: i64 = 86_400;

/// The latest expiry helperd takes anywhere: 9999-12-31T23:59:59Z. Beyond it no date can
/// be written, and a larger number is a mistake or an attack, never a real expiry.
pub const MAX_EXPIRY: u64 = 253_402_300_799;

/// Seconds since the Unix epoch, now (0 if the system clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An HTTP date (RFC 9110 §5.6.7 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), the form
/// servers send in `Date`; `None` for anything else.
pub fn parse_http_date(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let (_, day, month, year, clock, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let (d, y): (u32, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = clock.split(':').map(|p| p.parse::<u64>().ok());
    let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=days_in_month(y, m)).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn number(s: &str, what: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse()
        .map_err(|_| format!("{what} {s:?} is out of range"))
}

fn parse_date(s: &str) -> Result<i64, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(format!("{s:?} is not a date like 2027-03-01"));
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(format!("{s:?} is not a date like 2027-03-01"));
    }
    let (y, m, d) = (
        i64::from(number(y, "year")?),
        number(m, "month")?,
        number(d, "day")?,
    );
    if !(1..=12).contains(&m) {
        return Err(format!("month {m} does not exist"));
    }
    if d == 0 || d > days_in_month(y, m) {
        return Err(format!("day {d} does not exist in {y}-{m:02}"));
    }
    Ok(days_from_civil(y, m, d))
}

/// Parses an expiry as the user types it: a date (00:00 UTC that day) or an RFC 3339
/// timestamp (`2027-03-01T12:00:00Z`, `2027-03-01T14:00:00+02:00`). Unix seconds.
pub fn parse_expiry(text: &str) -> Result<u64, String> {
    let t = parse_expiry_unbounded(text)?;
    if t > MAX_EXPIRY {
        return Err(format!("{:?} is after the year 9999", text.trim()));
    }
    Ok(t)
}

fn parse_expiry_unbounded(text: &str) -> Result<u64, String> {
    let text = text.trim();
    // An RFC 3339 time has its date part first: the separator sits right after it.
    let separator = text
        .as_bytes()
        .get(10)
        .filter(|b| matches!(b, b'T' | b't' | b' '));
    let secs = match separator {
        None => parse_date(text)? * SECS_PER_DAY,
        Some(_) => parse_rfc3339(&text[..10], &text[11..])?,
    };
    u64::try_from(secs).map_err(|_| format!("{text:?} is before 1970"))
}

fn parse_rfc3339(date: &str, rest: &str) -> Result<i64, String> {
    let days = parse_date(date)?;
    let (clock, offset_secs) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (clock, offset) = rest.split_at(i);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (oh, om) = offset[1..]
            .split_once(':')
            .ok_or_else(|| format!("offset {offset:?} is not like +02:00"))?;
        let (oh, om) = (number(oh, "offset hour")?, number(om, "offset minute")?);
        if oh > 23 || om > 59 {
            return Err(format!("offset {offset:?} is out of range"));
        }
        (clock, sign * i64::from(oh * 3600 + om * 60))
    } else {
        return Err("a timestamp needs a time zone: Z or an offset like +02:00".into());
    };
    // Fractional seconds carry nothing an expiry needs.
    let clock = clock.split('.').next().unwrap_or(clock);
    let parts: Vec<&str> = clock.split(':').collect();
    let [h, m, s] = parts[..] else {
        return Err(format!("time {clock:?} is not like 12:00:00"));
    };
    let (h, m, s) = (
        number(h, "hour")?,
        number(m, "minute")?,
        number(s, "second")?,
    );
    if h > 23 || m > 59 || s > 60 {
        return Err(format!("time {clock:?} is out of range"));
    }
    Ok(days * SECS_PER_DAY + i64::from(h * 3600 + m * 60 + s.min(59)) - offset_secs)
}

/// `2027-03-01`.
pub fn format_date(unix: u64) -> String {
    let (y, m, d) = civil_from_days((unix / SECS_PER_DAY as u64) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2027-03-01 12:00 UTC`.
pub fn format_datetime(unix: u64) -> String {
    let secs_of_day = unix % SECS_PER_DAY as u64;
    format!(
        "{} {:02}:{:02} UTC",
        format_date(unix),
        secs_of_day / 3600,
        (secs_of_day % 3600) / 60
    )
}

/// RFC 3339 in UTC: `2027-03-01T12:00:00Z` (for JSON).
pub fn format_rfc3339(unix: u64) -> String {
    let s = unix % SECS_PER_DAY as u64;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        format_date(unix),
        s / 3600,
        (s % 3600) / 60,
        s % 60
    )
}

fn span(secs: u64) -> String {
    let (days, hours, minutes) = (secs / 86_400, secs / 3600, secs / 60);
    match () {
        _ if days >= 2 => format!("{days} days"),
        _ if hours >= 2 => format!("{hours} hours"),
        _ if minutes >= 2 => format!("{minutes} minutes"),
        _ => format!("{secs} seconds"),
    }
}

/// A span of time as users type it: digits and one unit, `s`, `m`, `h`, `d` or `w`
/// (`90s`, `30m`, `2h`, `3d`, `1w`). `None`: the text is not of that form;
/// `Some(None)`: it is, but too large to count in seconds.
pub fn parse_span(text: &str) -> Option<Option<u64>> {
    let (digits, unit) = text.split_at(text.len() - text.chars().last().map_or(0, char::len_utf8));
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_secs)),
    )
}

/// "just now", "5 minutes ago": how long ago `at` was (a time in the past, e.g. last use).
pub fn ago(at: u64, now: u64) -> String {
    match now.saturating_sub(at) {
        d if d < 60 => "just now".into(),
        d => format!("{} ago", span(d)),
    }
}

/// "in 12 days", "in 5 hours", "3 days ago".
pub fn countdown(at: u64, now: u64) -> String {
    if at >= now {
        format!("in {}", span(at - now))
    } else {
        format!("{} ago", span(now - at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Mon, 01 Mar 2027 00:00:00 GMT"),
            Some(1_803_859_200)
        );
        assert_eq!(parse_http_date("Mon, 01 Mar 2027 00:00:00 UTC"), None);
        assert_eq!(parse_http_date("Mon, 31 Feb 2027 00:00:00 GMT"), None);
    }

    #[test]
    fn dates_are_midnight_utc() {
        assert_eq!(parse_expiry("1970-01-01"), Ok(0));
        assert_eq!(parse_expiry("2027-03-01"), Ok(1_803_859_200));
        assert_eq!(format_date(1_803_859_200), "2027-03-01");
        assert_eq!(parse_expiry("2024-02-29"), Ok(1_709_164_800));
    }

    #[test]
    fn rfc3339_with_zone_and_fraction() {
        assert_eq!(
            parse_expiry("2027-03-01T12:00:00Z"),
            Ok(1_803_859_200 + 43_200)
        );
        assert_eq!(
            parse_expiry("2027-03-01T14:00:00+02:00"),
            Ok(1_803_859_200 + 43_200)
        );
        assert_eq!(
            parse_expiry("2027-03-01T12:00:00.123Z"),
            Ok(1_803_859_200 + 43_200)
        );
        assert_eq!(
            format_rfc3339(1_803_859_200 + 43_200),
            "2027-03-01T12:00:00Z"
        );
        assert_eq!(
            format_datetime(1_803_859_200 + 43_260),
            "2027-03-01 12:01 UTC"
        );
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        for (input, needle) in [
            ("2027-02-30", "does not exist"),
            ("2027-13-01", "month 13"),
            ("27-03-01", "not a date"),
            ("2027-03-01T12:00:00", "time zone"),
            ("2027-03-01T25:00:00Z", "out of range"),
            ("tomorrow", "\"tomorrow\" is not a date"),
            ("today at noon", "not a date"),
            ("1969-12-31", "before 1970"),
        ] {
            let err = parse_expiry(input).unwrap_err();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn round_trip_over_many_days() {
        for day in (0..200_000).step_by(37) {
            let t = day * 86_400;
            assert_eq!(parse_expiry(&format_date(t)), Ok(t));
        }
    }

    #[test]
    fn spans_have_digits_and_one_unit() {
        assert_eq!(parse_span("90s"), Some(Some(90)));
        assert_eq!(parse_span("2h"), Some(Some(7200)));
        assert_eq!(parse_span("1w"), Some(Some(604_800)));
        assert_eq!(parse_span("30"), None);
        assert_eq!(parse_span("5y"), None);
        assert_eq!(parse_span("h"), None);
        assert_eq!(parse_span("99999999999999999999d"), Some(None));
    }

    #[test]
    fn countdowns_read_naturally() {
        assert_eq!(countdown(100 + 12 * 86_400, 100), "in 12 days");
        assert_eq!(countdown(100 + 5 * 3600, 100), "in 5 hours");
        assert_eq!(countdown(100, 100 + 3 * 86_400), "3 days ago");
        assert_eq!(countdown(130, 100), "in 30 seconds");
        assert_eq!(ago(100, 100), "just now");
        assert_eq!(ago(100, 100 + 7200), "2 hours ago");
    }
}

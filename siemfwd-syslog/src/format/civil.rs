//! Unix seconds → calendar date and time of day, and two-digit writers.
//!
//! Both headers print timestamps digit by digit instead of going through
//! `fmt` or a date library's formatter: the header is written for every
//! record, and a second's worth of records share the same date, so the
//! headers cache the rendered prefix and only call this on a new second.
//! The date conversion is the proleptic Gregorian "days from civil" inverse
//! (Howard Hinnant's `civil_from_days`), valid for every `i64` day count that
//! does not overflow; the tests compare it with `jiff` over a wide range.

/// Seconds in a day.
const DAY: i64 = 86_400;

/// A broken-down time: proleptic Gregorian date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    /// Year, may be negative or above 9999.
    pub year: i64,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59 (Unix time has no leap second, so never 60).
    pub second: u8,
}

impl Civil {
    /// The calendar time `secs` seconds after 1970-01-01T00:00:00 (of
    /// whatever zone `secs` is counted in).
    pub(crate) fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(DAY);
        let tod = secs.rem_euclid(DAY);
        let (year, month, day) = civil_from_days(days);
        // tod < 86_400, so the casts below cannot truncate.
        Self {
            year,
            month,
            day,
            hour: (tod / 3600) as u8,
            minute: (tod % 3600 / 60) as u8,
            second: (tod % 60) as u8,
        }
    }

    /// Append the time of day as `hh:mm:ss`, the part both syslog headers
    /// share.
    pub(crate) fn push_clock(&self, out: &mut Vec<u8>) {
        push2(out, self.hour);
        out.push(b':');
        push2(out, self.minute);
        out.push(b':');
        push2(out, self.second);
    }
}

/// (year, month 1–12, day 1–31) of the day `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a
    // "year"; an era is 400 years = 146 097 days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Append `n` (0–99) as two digits.
pub(crate) fn push2(out: &mut Vec<u8>, n: u8) {
    out.push(b'0' + n / 10);
    out.push(b'0' + n % 10);
}

/// The rendering of the last second written, reused while records share a
/// second: both headers print a timestamp per record, most records of a
/// batch share their second, and the calendar (and for RFC 3164 the zone
/// lookup) is the costly part. `N` is the rendering's fixed length.
#[derive(Debug)]
pub(crate) struct SecondCache<const N: usize> {
    secs: i64,
    bytes: [u8; N],
    valid: bool,
}

impl<const N: usize> SecondCache<N> {
    pub(crate) const fn new() -> Self {
        Self {
            secs: 0,
            bytes: [0; N],
            valid: false,
        }
    }

    /// Append the rendering of `secs`: the cached one, or what `render`
    /// appends, kept for the next records when it is `N` bytes long.
    #[inline]
    pub(crate) fn write(
        &mut self,
        secs: i64,
        out: &mut Vec<u8>,
        render: impl FnOnce(&mut Vec<u8>),
    ) {
        if self.valid && self.secs == secs {
            out.extend_from_slice(&self.bytes);
            return;
        }
        // Render straight into `out`, then keep a copy.
        let start = out.len();
        render(out);
        let rendered = &out[start..];
        debug_assert_eq!(rendered.len(), N, "a second's rendering has a fixed length");
        self.valid = rendered.len() == N;
        if self.valid {
            self.bytes.copy_from_slice(rendered);
            self.secs = secs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn epoch_is_1970_01_01() {
        let c = Civil::from_unix(0);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (1970, 1, 1, 0, 0, 0)
        );
    }

    #[test]
    fn before_epoch_and_leap_days() {
        let c = Civil::from_unix(-1);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (1969, 12, 31, 23, 59, 59)
        );
        // 2024-02-29T12:00:00Z
        let c = Civil::from_unix(1_709_208_000);
        assert_eq!((c.year, c.month, c.day, c.hour), (2024, 2, 29, 12));
    }

    #[test]
    fn push2_pads_with_zero() {
        let mut out = Vec::new();
        push2(&mut out, 5);
        push2(&mut out, 42);
        assert_eq!(out, b"0542");
    }

    proptest! {
        #[test]
        fn civil_matches_jiff(secs in -377_705_116_800i64..253_402_300_799) {
            let c = Civil::from_unix(secs);
            let ts = jiff::Timestamp::from_second(secs);
            prop_assert!(ts.is_ok());
            if let Ok(ts) = ts {
                let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
                prop_assert_eq!(
                    (c.year, c.month, c.day, c.hour, c.minute, c.second),
                    (
                        i64::from(dt.year()),
                        dt.month() as u8,
                        dt.day() as u8,
                        dt.hour() as u8,
                        dt.minute() as u8,
                        dt.second() as u8
                    )
                );
            }
        }
    }

    #[test]
    fn second_cache_renders_once_per_second() {
        let mut cache = SecondCache::<2>::new();
        let mut renders = 0;
        let mut out = Vec::new();
        for secs in [5, 5, 6, 6, 5] {
            cache.write(secs, &mut out, |o| {
                renders += 1;
                push2(o, (secs % 100) as u8);
            });
        }
        assert_eq!(out, b"0505060605");
        assert_eq!(renders, 3);
    }
}

//! Values as users write them in the config file: durations (`10s`,
//! `250ms`, `1m 30s`), sizes (`64KiB`, `2048`, `1MB`) and secrets (never
//! printed). Every component's config uses them; they depend on nothing of
//! the crate.
//!
//! Both also accept a bare integer: seconds for durations, bytes for sizes, so
//! a value from an environment variable or an old config still reads.

use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer};

/// A duration written as `10s`, `250ms`, `1m 30s` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

/// The longest duration any key accepts. Every duration is added to clock
/// readings and multiplied (a timeout is twice an interval, backoffs
/// double): `18446744073709551615s` passed `check` and then panicked. No
/// setting needs more than this.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The largest size any key accepts, for the same reason (sizes are
/// multiplied and added).
pub const MAX_SIZE: u64 = 1 << 40;

impl HumanDuration {
    /// Parse the text form.
    ///
    /// # Errors
    /// A message saying what is allowed.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let d = match t.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => humantime::parse_duration(t).map_err(|e| {
                format!("{s:?} is not a duration ({e}); write e.g. \"10s\", \"250ms\", \"1m\"")
            })?,
        };
        Self::bounded(d).map_err(|()| format!("{s:?} is longer than a year (365d)"))
    }

    fn bounded(d: Duration) -> Result<Self, ()> {
        (d <= MAX_DURATION).then_some(Self(d)).ok_or(())
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"10s\", \"250ms\" or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                HumanDuration::bounded(Duration::from_secs(v))
                    .map_err(|()| E::custom(format!("{v} seconds is longer than a year (365d)")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative"))?;
                self.visit_u64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                HumanDuration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes written as `2048`, `64KiB`, `1MiB`, `10MB`, `1 KB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parse the text form. Binary (`KiB`, `MiB`, `GiB`) and decimal (`KB`,
    /// `MB`, `GB`) suffixes are both accepted, case-insensitively; `K`, `M`,
    /// `G` alone are binary.
    ///
    /// # Errors
    /// A message saying what is allowed.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || format!("{s:?} is not a size; write e.g. \"2048\", \"64KiB\", \"1MiB\"");
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(mult)
            .filter(|b| *b <= MAX_SIZE)
            .map(Self)
            .ok_or_else(|| format!("{s:?} is larger than 1TiB"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64KiB\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                (v <= MAX_SIZE)
                    .then_some(ByteSize(v))
                    .ok_or_else(|| E::custom(format!("{v} bytes is larger than 1TiB")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a size cannot be negative"))?;
                self.visit_u64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A secret string (an AccessKey secret, a password). Its `Debug` and
/// `Display` print `<redacted>`; only [`Secret::expose`] gives the text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text, for the one place that needs it (request signing).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Deserialize through `toml::Value` so a wrong type never echoes the
        // value in the error message.
        match toml::Value::deserialize(d) {
            Ok(toml::Value::String(s)) => Ok(Secret(s)),
            _ => Err(serde::de::Error::custom(
                "expected a string (value not shown)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_that_would_overflow_are_refused() {
        for text in [
            "18446744073709551615s",
            "18446744073709551615",
            "366d",
            "400days",
        ] {
            let e = HumanDuration::parse(text).unwrap_err();
            assert!(e.contains("longer than a year"), "{text}: {e}");
        }
        assert!(HumanDuration::parse("365d").is_ok());
        for text in ["100000TiB", "2TiB", "18446744073709551615"] {
            let e = ByteSize::parse(text).unwrap_err();
            assert!(e.contains("larger than 1TiB"), "{text}: {e}");
        }
        assert_eq!(ByteSize::parse("1TiB").unwrap().0, 1 << 40);
        // As TOML integers too.
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)] // only whether it deserializes matters
        struct T {
            d: HumanDuration,
            b: ByteSize,
        }
        let e = toml::from_str::<T>("d = 9223372036854775807\nb = 1").unwrap_err();
        assert!(e.message().contains("longer than a year"), "{e}");
        let e = toml::from_str::<T>("d = 1\nb = 9223372036854775807").unwrap_err();
        assert!(e.message().contains("larger than 1TiB"), "{e}");
    }

    #[test]
    fn durations_in_human_form_and_bare_seconds() {
        assert_eq!(
            HumanDuration::parse("10s").unwrap().0,
            Duration::from_secs(10)
        );
        assert_eq!(
            HumanDuration::parse("250ms").unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            HumanDuration::parse("1m 30s").unwrap().0,
            Duration::from_secs(90)
        );
        assert_eq!(HumanDuration::parse("7").unwrap().0, Duration::from_secs(7));
        assert!(HumanDuration::parse("ten seconds").is_err());
    }

    #[test]
    fn sizes_binary_decimal_and_bare() {
        assert_eq!(ByteSize::parse("2048").unwrap().0, 2048);
        assert_eq!(ByteSize::parse("64KiB").unwrap().0, 65536);
        assert_eq!(ByteSize::parse("64 kib").unwrap().0, 65536);
        assert_eq!(ByteSize::parse("1MB").unwrap().0, 1_000_000);
        assert_eq!(ByteSize::parse("1M").unwrap().0, 1 << 20);
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("-1").is_err());
        assert!(ByteSize::parse("99999999999999GiB").is_err());
    }
}

use std::{fmt, num::NonZeroU32, str::FromStr, time::Duration};

/// How a [`Limit`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// An exact sliding window: never more than `count` admitted in any
    /// interval of one `period`, wherever it starts. The period is cut into 9
    /// slots with one counter each, a slot partly inside the window counting in
    /// full (so a request may wait up to one slot longer than strictly needed);
    /// O(1) state per key (48 bytes); no burst beyond `count`.
    #[default]
    SlidingWindow,
    /// GCRA (through `governor`): one request every `period / count`, with up
    /// to `burst` at once (default: `count`).
    Gcra,
}

/// A rate: `count` requests per `period`, counted by an [`Algorithm`].
///
/// Written `"100/min"`, `"10/s"`, `"5000/h"`, `"5/10s"`, optionally followed by
/// `gcra` (or `sliding`) and, for GCRA, `burst=N`:
///
/// ```
/// use std::time::Duration;
/// use mcp_bastion::ratelimit::{Algorithm, Limit};
///
/// let l: Limit = "100/min".parse().unwrap();
/// assert_eq!((l.count(), l.period(), l.algorithm()), (100, Duration::from_secs(60), Algorithm::SlidingWindow));
///
/// let l: Limit = "10/s gcra burst=20".parse().unwrap();
/// assert_eq!((l.algorithm(), l.burst()), (Algorithm::Gcra, 20));
/// assert_eq!(l.to_string(), "10/s gcra burst=20");
///
/// assert!("ten/min".parse::<Limit>().is_err());
/// assert!("0/min".parse::<Limit>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    count: NonZeroU32,
    period: Duration,
    algorithm: Algorithm,
    burst: Option<NonZeroU32>,
}

impl Limit {
    /// `count` per `period` (sliding window). `None` if either is zero.
    pub fn new(count: u32, period: Duration) -> Option<Self> {
        let count = NonZeroU32::new(count)?;
        (!period.is_zero()).then_some(Self {
            count,
            period,
            algorithm: Algorithm::SlidingWindow,
            burst: None,
        })
    }

    /// `count` per second.
    pub fn per_second(count: NonZeroU32) -> Self {
        Self::of(count, Duration::from_secs(1))
    }

    /// `count` per minute.
    pub fn per_minute(count: NonZeroU32) -> Self {
        Self::of(count, Duration::from_secs(60))
    }

    /// `count` per hour.
    pub fn per_hour(count: NonZeroU32) -> Self {
        Self::of(count, Duration::from_secs(3600))
    }

    fn of(count: NonZeroU32, period: Duration) -> Self {
        Self {
            count,
            period,
            algorithm: Algorithm::SlidingWindow,
            burst: None,
        }
    }

    /// Counts with GCRA instead.
    pub fn gcra(mut self) -> Self {
        self.algorithm = Algorithm::Gcra;
        self
    }

    /// Counts with the sliding window (the default).
    pub fn sliding_window(mut self) -> Self {
        self.algorithm = Algorithm::SlidingWindow;
        self.burst = None;
        self
    }

    /// GCRA's burst: how many requests may arrive at once. Implies GCRA.
    pub fn with_burst(mut self, burst: NonZeroU32) -> Self {
        self.algorithm = Algorithm::Gcra;
        self.burst = Some(burst);
        self
    }

    /// Requests allowed per period.
    pub fn count(&self) -> u32 {
        self.count.get()
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// GCRA's burst (the count when not set; the count for a sliding window).
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.count).get()
    }

    /// GCRA's emission interval: the time one request "costs".
    pub fn emission_interval(&self) -> Duration {
        self.period / self.count.get()
    }
}

/// Why a limit string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate limit `{input}`: {why} (expected e.g. `100/min`, `10/s`, `5000/h`, `5/10s`, `10/s gcra burst=20`)"
)]
pub struct LimitParseError {
    input: String,
    why: &'static str,
}

impl FromStr for Limit {
    type Err = LimitParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| LimitParseError {
            input: s.to_owned(),
            why,
        };
        let mut words = s.split([' ', ',', ';']).filter(|w| !w.is_empty());
        let rate = words.next().ok_or_else(|| err("empty"))?;
        let (count, per) = rate.split_once('/').ok_or_else(|| err("missing `/`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| err("the count is not a whole number"))?;
        let period = parse_period(per.trim()).ok_or_else(|| err("unknown period"))?;
        let mut limit =
            Limit::new(count, period).ok_or_else(|| err("count and period must be above zero"))?;
        for word in words {
            match word.to_ascii_lowercase().as_str() {
                "gcra" => limit = limit.gcra(),
                "sliding" | "window" | "sliding-window" => limit = limit.sliding_window(),
                w => {
                    let burst = w
                        .strip_prefix("burst=")
                        .ok_or_else(|| err("unknown option (gcra, sliding, burst=N)"))?;
                    let burst = burst
                        .parse::<NonZeroU32>()
                        .map_err(|_| err("burst must be a whole number above zero"))?;
                    limit = limit.with_burst(burst);
                }
            }
        }
        Ok(limit)
    }
}

/// `s`, `min`, `h`, `d` (and long forms), optionally with a multiplier: `10s`.
fn parse_period(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = if n.is_empty() { 1 } else { n.parse().ok()? };
    let secs = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "ms" => return Some(Duration::from_millis(n)),
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        let unit = if self.period.subsec_nanos() != 0 {
            format!("{}ms", self.period.as_millis())
        } else {
            match secs {
                1 => "s".to_owned(),
                60 => "min".to_owned(),
                3600 => "h".to_owned(),
                86_400 => "d".to_owned(),
                s => format!("{s}s"),
            }
        };
        write!(f, "{}/{unit}", self.count)?;
        if self.algorithm == Algorithm::Gcra {
            f.write_str(" gcra")?;
            if let Some(b) = self.burst {
                write!(f, " burst={b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_documented_spelling() {
        for (s, count, secs) in [
            ("100/min", 100, 60),
            ("10/s", 10, 1),
            ("5000/h", 5000, 3600),
            ("5/10s", 5, 10),
            ("1/day", 1, 86_400),
            ("3/minute", 3, 60),
        ] {
            let l: Limit = s.parse().unwrap();
            assert_eq!(
                (l.count(), l.period()),
                (count, Duration::from_secs(secs)),
                "{s}"
            );
        }
        let l: Limit = "10/s,gcra,burst=3".parse().unwrap();
        assert_eq!((l.algorithm(), l.burst()), (Algorithm::Gcra, 3));
        assert_eq!("5/10s".parse::<Limit>().unwrap().to_string(), "5/10s");
    }

    #[test]
    fn refuses_what_is_not_a_limit() {
        for bad in [
            "",
            "100",
            "x/min",
            "10/fortnight",
            "0/s",
            "10/0s",
            "10/s burst=0",
            "10/s fast",
            "-1/s",
        ] {
            assert!(bad.parse::<Limit>().is_err(), "{bad}");
        }
    }
}

//! How one option's value is read: the same text rules whether it came from
//! the file, a variable or a flag.
//!
//! Flags and variables are text; the file has TOML strings, numbers and
//! booleans. Every option that takes a value is a [`Parsed<T>`]: its text
//! (numbers and booleans of the file written out) parsed by `T`'s
//! [`FromText`], the text kept for `check-config`. A list is a [`List<T>`]:
//! an array, or one value alone. A switch is a `bool`, `true` or `false`
//! (the environment's `1`/`yes`/`on`… are turned into booleans where the
//! variables are read).

use std::{fmt, marker::PhantomData, net::SocketAddr, ops::Deref, path::PathBuf, time::Duration};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, SeqAccess, Visitor},
};

/// A value read from the text an operator wrote.
pub trait FromText: Sized {
    /// Parses `text`, or says what is wrong with it (never quoting a secret).
    ///
    /// # Errors
    ///
    /// What the text should have been.
    fn from_text(text: &str) -> Result<Self, String>;
}

/// One option's value and the text it was read from.
#[derive(Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    text: String,
    value: T,
}

impl<T> Parsed<T> {
    /// A value known to be what `text` means (for the defaults).
    pub fn known(text: impl Into<String>, value: T) -> Self {
        Self {
            text: text.into(),
            value,
        }
    }

    /// The text it was read from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value.
    pub fn get(&self) -> &T {
        &self.value
    }
}

impl<T: FromText> Parsed<T> {
    /// Parses `text`; the error reads `invalid value 'TEXT': WHY`.
    ///
    /// # Errors
    ///
    /// When `T` does not accept `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        T::from_text(text)
            .map(|value| Self::known(text, value))
            .map_err(|why| format!("invalid value '{text}': {why}"))
    }
}

impl<T> Deref for Parsed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Shows the text only: a parsed value may hold a connection or a secret.
impl<T> fmt::Debug for Parsed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl<T> Serialize for Parsed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Reads a scalar (string, number or boolean) as the text a flag would carry.
struct TextVisitor<T>(PhantomData<T>);

impl<T: FromText> TextVisitor<T> {
    fn parsed<E: de::Error>(text: &str) -> Result<Parsed<T>, E> {
        Parsed::parse(text).map_err(E::custom)
    }
}

impl<'de, T: FromText> Visitor<'de> for TextVisitor<T> {
    type Value = Parsed<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value (string or number)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Self::parsed(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Self::parsed(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Self::parsed(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Self::parsed(&v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Self::parsed(&v.to_string())
    }
}

impl<'de, T: FromText> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor(PhantomData))
    }
}

/// A repeatable option: an array of values, or one value alone.
#[derive(Clone, PartialEq, Eq)]
pub struct List<T>(Vec<Parsed<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> List<T> {
    /// The values, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(Parsed::get)
    }

    /// The texts the values were read from.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Parsed::text)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values, owned.
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.iter().cloned().collect()
    }
}

impl<T: FromText> List<T> {
    /// A list of these texts (for tests and defaults).
    ///
    /// # Errors
    ///
    /// The first text `T` does not accept.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        texts
            .into_iter()
            .map(Parsed::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl<T> fmt::Debug for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl<T> Serialize for List<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: FromText> Visitor<'de> for ListVisitor<T> {
    type Value = List<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or an array of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Parsed<T>>()? {
            out.push(v);
        }
        Ok(List(out))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        TextVisitor::<T>::parsed(v).map(|p| List(vec![p]))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }
}

impl<'de, T: FromText> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor(PhantomData))
    }
}

/// A switch: `true` or `false`, nothing else.
pub fn switch<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Switch;
    impl Visitor<'_> for Switch {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true or false")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
    }
    d.deserialize_any(Switch)
}

/// The server command: a non-empty array of strings, the program first.
pub fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Command;
    impl<'de> Visitor<'de> for Command {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-empty array of strings: the program and its arguments")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<Parsed<String>>()? {
                out.push(v.text().to_owned());
            }
            if out.is_empty() {
                return Err(de::Error::custom(
                    "expected a non-empty array of strings: the program and its arguments",
                ));
            }
            Ok(out)
        }
    }
    d.deserialize_any(Command)
}

/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`, as the environment writes switches.
pub fn bool_word(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl FromText for String {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

impl FromText for PathBuf {
    fn from_text(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("expected a path".into());
        }
        Ok(PathBuf::from(text))
    }
}

impl FromText for SocketAddr {
    fn from_text(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|e: std::net::AddrParseError| format!("{e} (expected HOST:PORT)"))
    }
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl FromText for $t {
            fn from_text(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|e: std::num::ParseIntError| e.to_string())
            }
        }
    )*};
}
numbers!(u32, u64, usize);

/// A duration that can be off: `90s`, `30m`, `1h`, `500ms`, `2d`, a bare
/// number of seconds; `0`, `off`, `none`, `never`: off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeDuration(pub Option<Duration>);

impl FromText for MaybeDuration {
    fn from_text(text: &str) -> Result<Self, String> {
        parse_duration(text).map(MaybeDuration)
    }
}

/// `90s`, `30m`, `1h`, `250ms`, `2d` or seconds; `None` for off.
///
/// # Errors
///
/// A malformed number or unit.
pub fn parse_duration(s: &str) -> Result<Option<Duration>, String> {
    let s = s.trim();
    if matches!(s, "0" | "off" | "none" | "never") {
        return Ok(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: want e.g. 90s, 30m, 1h"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration {s:?} is too long"))
    };
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => secs(60)?,
        "h" => secs(3600)?,
        "d" => secs(86_400)?,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?}: use ms, s, m, h or d"
            ));
        }
    };
    Ok((!d.is_zero()).then_some(d))
}

/// Implements [`FromText`] for a `clap::ValueEnum`, naming the possible values on error.
macro_rules! from_text_by_value_enum {
    ($($t:ty),*) => {$(
        impl $crate::config::value::FromText for $t {
            fn from_text(text: &str) -> Result<Self, String> {
                <$t as clap::ValueEnum>::from_str(text.trim(), false).map_err(|_| {
                    let names: Vec<String> = <$t as clap::ValueEnum>::value_variants()
                        .iter()
                        .filter_map(clap::ValueEnum::to_possible_value)
                        .map(|p| p.get_name().to_owned())
                        .collect();
                    format!("possible values: {}", names.join(", "))
                })
            }
        }
    )*};
}
pub(crate) use from_text_by_value_enum;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn durations_parse_with_units_and_off() {
        assert_eq!(
            parse_duration("90s").unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("30m").unwrap(),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            parse_duration("1h").unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_duration("250ms").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("0").unwrap(), None);
        assert_eq!(parse_duration("off").unwrap(), None);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn a_value_error_quotes_the_text_and_says_why() {
        let e = Parsed::<u64>::parse("lots").unwrap_err();
        assert_eq!(e, "invalid value 'lots': invalid digit found in string");
    }
}

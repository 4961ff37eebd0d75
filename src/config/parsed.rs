//! A value written as text in `tayori.yaml` and parsed once, when the file is read.
//!
//! Deserialising never fails on the value itself: the text and what parsing it gave are both
//! kept, so [`super::Config::validate`] can report every bad value of a file at once (with the
//! others), and every user takes the parsed value instead of parsing the text again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// The text of a setting and its parsed value (or why it does not parse).
#[derive(Clone)]
pub struct Parsed<T> {
    text: String,
    value: Result<T, String>,
}

impl<T: FromStr> Parsed<T>
where
    T::Err: fmt::Display,
{
    /// Parses `text` now.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let value = text.parse::<T>().map_err(|e| e.to_string());
        Parsed { text, value }
    }
}

impl<T> Parsed<T> {
    /// The value; `None` only in a configuration that did not pass [`super::Config::validate`]
    /// (as `status` reads it, whatever is wrong with the file).
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref().ok()
    }

    /// The value, or why the text is not one (for users that may see an unvalidated file).
    pub fn value(&self) -> Result<&T, String> {
        self.value.as_ref().map_err(Clone::clone)
    }

    /// Why the text is not a value of its kind.
    pub fn problem(&self) -> Option<&str> {
        self.value.as_ref().err().map(String::as_str)
    }

    /// The text as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl<'de, T: FromStr> Deserialize<'de> for Parsed<T>
where
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Parsed::new)
    }
}

impl<T: fmt::Debug> fmt::Debug for Parsed<T> {
    // The parsed value's own `Debug`: a URL with a password shows it redacted there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Ok(v) => v.fmt(f),
            Err(e) => write!(f, "invalid ({e})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text_and_the_value_or_the_reason() {
        let good = Parsed::<u16>::new("25");
        assert_eq!(
            (good.get(), good.problem(), good.text()),
            (Some(&25), None, "25")
        );
        let bad = Parsed::<u16>::new("port");
        assert_eq!(bad.get(), None);
        assert!(bad.problem().unwrap().contains("invalid digit"));
    }
}

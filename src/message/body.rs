//! Message bodies base64-encoded once per issue (RFC 2045 §6.8), with only the personal fields
//! encoded per recipient.
//!
//! A body is split at its placeholders. Each static stretch is encoded ahead of time up to a
//! multiple of 3 bytes (the 0–2 bytes left over are carried into the next personal field), and
//! each personal field is padded to a multiple of 3 bytes, so the encoded stretches join
//! without `=` padding in between. The padding is invisible where the fields stand: an empty
//! HTML comment after the greeting in the HTML part (a comment of 7 or 8 bytes gives 1 or 2
//! modulo 3), and trailing spaces after the greeting's text line and after the URL in a text
//! line or inside an `href` (HTML strips surrounding spaces from URLs). Lines are at most 76
//! characters, each a multiple of 4.

use base64::Engine;

use crate::render::email::{personal_fields, GREETING, UNSUBSCRIBE_URL};

#[derive(Debug, Clone, Copy)]
enum Field {
    Greeting,
    Unsubscribe,
}

#[derive(Debug, Clone)]
enum Segment {
    /// Pre-encoded base64 lines, each ending in CRLF.
    Encoded(String),
    /// Bytes carried over from the stretch before, then the field.
    Personal { carry: Vec<u8>, field: Field },
}

/// One MIME part's body, ready to be completed per recipient.
#[derive(Debug, Clone)]
pub(super) struct EncodedPart {
    segments: Vec<Segment>,
    html: bool,
    len: usize,
}

impl EncodedPart {
    /// Splits `body` at the placeholders and encodes the static stretches.
    pub(super) fn new(body: &str, html: bool) -> EncodedPart {
        let mut segments = Vec::new();
        let mut carry: Vec<u8> = Vec::new();
        let mut rest = body;
        loop {
            let next = [
                (GREETING, Field::Greeting),
                (UNSUBSCRIBE_URL, Field::Unsubscribe),
            ]
            .into_iter()
            .filter_map(|(p, f)| rest.find(p).map(|i| (i, p.len(), f)))
            .min_by_key(|(i, _, _)| *i);
            let (text, field) = match next {
                Some((i, len, f)) => {
                    let t = &rest[..i];
                    rest = &rest[i + len..];
                    (t, Some(f))
                }
                None => (rest, None),
            };
            let mut bytes = std::mem::take(&mut carry);
            bytes.extend_from_slice(text.as_bytes());
            let aligned = if field.is_some() {
                bytes.len() / 3 * 3
            } else {
                bytes.len()
            };
            segments.push(Segment::Encoded(encode_lines(&bytes[..aligned])));
            match field {
                Some(field) => segments.push(Segment::Personal {
                    carry: bytes[aligned..].to_vec(),
                    field,
                }),
                None => break,
            }
        }
        let len = segments
            .iter()
            .map(|s| match s {
                Segment::Encoded(e) => e.len(),
                Segment::Personal { .. } => 256,
            })
            .sum();
        EncodedPart {
            segments,
            html,
            len,
        }
    }

    /// About how long the encoded part is.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Appends the encoded part for one recipient.
    pub(super) fn write(&self, name: &str, unsubscribe_url: &str, out: &mut String) {
        let (greeting, url) = personal_fields(name, unsubscribe_url, self.html);
        for s in &self.segments {
            match s {
                Segment::Encoded(e) => out.push_str(e),
                Segment::Personal { carry, field } => {
                    let value = match field {
                        Field::Greeting => &greeting,
                        Field::Unsubscribe => &url,
                    };
                    let mut bytes = Vec::with_capacity(carry.len() + value.len() + 8);
                    bytes.extend_from_slice(carry);
                    bytes.extend_from_slice(value.as_bytes());
                    if self.html && matches!(field, Field::Greeting) {
                        match bytes.len() % 3 {
                            1 => bytes.extend_from_slice(b"<!-- -->"), // 8 bytes: 2 mod 3
                            2 => bytes.extend_from_slice(b"<!---->"),  // 7 bytes: 1 mod 3
                            _ => {}
                        }
                    }
                    while bytes.len() % 3 != 0 {
                        bytes.push(b' ');
                    }
                    out.push_str(&encode_lines(&bytes));
                }
            }
        }
    }
}

/// Base64 in lines of at most 76 characters, each ending in CRLF.
fn encode_lines(data: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    let mut rest = encoded.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(76));
        out.push_str(line);
        out.push_str("\r\n");
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(encoded: &str) -> String {
        assert!(
            encoded
                .split("\r\n")
                .all(|l| l.len() <= 76 && l.len() % 4 == 0),
            "{encoded}"
        );
        let joined: String = encoded.split("\r\n").collect();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(joined)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn decodes_to_the_personalised_body_whatever_the_alignment() {
        for prefix in ["", "a", "ab", "あ", "abcd"] {
            for name in ["", "佐藤 花子", "X", "<&>"] {
                let body = format!("{prefix}{GREETING}\r\n本文{UNSUBSCRIBE_URL}\r\n末尾");
                for html in [false, true] {
                    let part = EncodedPart::new(&body, html);
                    let mut out = String::new();
                    part.write(name, "https://n.example.jp/u/t?a=1&b=2", &mut out);
                    let (g, u) = personal_fields(name, "https://n.example.jp/u/t?a=1&b=2", html);
                    let want = body.replace(GREETING, &g).replace(UNSUBSCRIBE_URL, &u);
                    let got = decode(&out);
                    // Only spaces (and, after the HTML greeting, an empty comment) are added,
                    // and only right after a field.
                    let strip = |s: &str| {
                        s.replace("<!-- -->", "")
                            .replace("<!---->", "")
                            .replace(' ', "")
                    };
                    assert_eq!(strip(&got), strip(&want), "{prefix:?} {name:?}");
                    assert!(got.starts_with(&format!("{prefix}{g}")));
                    if html {
                        let after = &got[prefix.len() + g.len()..];
                        assert!(
                            after.starts_with("<!--") || after.starts_with("\r\n"),
                            "{after:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn encodes_long_static_text_in_76_character_lines() {
        let body = "x".repeat(10_000);
        let part = EncodedPart::new(&body, false);
        let mut out = String::new();
        part.write("", "", &mut out);
        assert_eq!(decode(&out), body);
    }
}

//! Bytes of a post file → text: binary detection, encoding detection, line endings.
//!
//! Accepted encodings are UTF-8 (with or without BOM, RFC 3629), Shift_JIS/CP932 and EUC-JP,
//! per the WHATWG Encoding Standard as implemented by `encoding_rs`; `chardetng` ranks the
//! legacy candidates. A file is decoded only when a candidate decodes it without a single
//! malformed sequence, so a wrong guess is rejected instead of becoming mojibake.

use encoding_rs::{Encoding, EUC_JP, SHIFT_JIS, UTF_8};

/// Why bytes could not become text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// NUL or other control bytes: an image, archive or word-processor file.
    #[error("binary file (byte 0x{byte:02x} at offset {offset}), not text")]
    Binary { byte: u8, offset: usize },
    /// Not valid in any accepted encoding.
    #[error("cannot decode the text: not valid UTF-8, Shift_JIS or EUC-JP")]
    Undecodable,
}

/// Text and the encoding it was read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text with every line ending (`CRLF`, `CR`) turned into `LF`, without BOM.
    pub text: String,
    /// The encoding's WHATWG name (`UTF-8`, `Shift_JIS`, `EUC-JP`).
    pub encoding: &'static str,
}

/// Decodes a post file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    // Tab, LF, FF, CR are text; ESC appears in ISO-2022-JP. Every other C0 byte (NUL above all)
    // means the file is not text: no accepted encoding uses those bytes inside characters.
    decode_unless(bytes, |b| {
        (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | 0x1b)) || b == 0x7f
    })
}

/// Decodes a subscriber list. Only NUL makes it binary (a spreadsheet saved under the wrong
/// name); a stray control character stays in the text, so the one row holding it is rejected
/// and the rest of the list is used.
pub fn decode_list(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    decode_unless(bytes, |b| b == 0)
}

/// [`decode_list`] of bytes it may keep: UTF-8 without carriage returns (the usual list)
/// becomes the text without a copy, so a list of 200,000 rows is held once, not twice.
pub fn decode_list_owned(mut bytes: Vec<u8>) -> Result<Decoded, DecodeError> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    if !bytes.contains(&b'\r') && !bytes.contains(&0) {
        match String::from_utf8(bytes) {
            Ok(text) => {
                return Ok(Decoded {
                    text,
                    encoding: UTF_8.name(),
                })
            }
            Err(e) => bytes = e.into_bytes(),
        }
    }
    decode_list(&bytes)
}

fn decode_unless(bytes: &[u8], binary: impl Fn(u8) -> bool) -> Result<Decoded, DecodeError> {
    if let Some((offset, &byte)) = bytes.iter().enumerate().find(|(_, &b)| binary(b)) {
        return Err(DecodeError::Binary { byte, offset });
    }
    let (encoding, body): (&'static Encoding, &[u8]) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (UTF_8, rest),
        None => (guess(bytes), bytes),
    };
    let text = encoding
        .decode_without_bom_handling_and_without_replacement(body)
        .ok_or(DecodeError::Undecodable)?;
    Ok(Decoded {
        text: normalize_newlines(&text),
        encoding: encoding.name(),
    })
}

fn guess(bytes: &[u8]) -> &'static Encoding {
    if std::str::from_utf8(bytes).is_ok() {
        return UTF_8;
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    let guessed = detector.guess(Some(b"jp"), chardetng::Utf8Detection::Deny);
    let decodes = |e: &'static Encoding| {
        e.decode_without_bom_handling_and_without_replacement(bytes)
            .is_some()
    };
    [guessed, SHIFT_JIS, EUC_JP]
        .into_iter()
        .filter(|e| *e == SHIFT_JIS || *e == EUC_JP)
        .find(|e| decodes(e))
        .unwrap_or(UTF_8)
}

fn normalize_newlines(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_string();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREETING: &str = "年末のご挨拶\n\n本年も大変お世話になりました。\n";

    #[test]
    fn reads_utf8_with_and_without_bom() {
        let plain = decode(GREETING.as_bytes()).unwrap();
        assert_eq!((plain.text.as_str(), plain.encoding), (GREETING, "UTF-8"));
        let bom = [b"\xEF\xBB\xBF".as_slice(), GREETING.as_bytes()].concat();
        assert_eq!(decode(&bom).unwrap().text, GREETING);
    }

    #[test]
    fn reads_shift_jis_and_euc_jp() {
        for enc in [SHIFT_JIS, EUC_JP] {
            let (bytes, _, _) = enc.encode(GREETING);
            let d = decode(&bytes).unwrap();
            assert_eq!(d.text, GREETING, "{}", enc.name());
            assert_eq!(d.encoding, enc.name());
        }
    }

    #[test]
    fn turns_crlf_and_cr_into_lf() {
        assert_eq!(decode(b"a\r\nb\rc\n").unwrap().text, "a\nb\nc\n");
    }

    #[test]
    fn rejects_binary_content() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert!(matches!(decode(png), Err(DecodeError::Binary { .. })));
        assert!(matches!(
            decode("本文\0".as_bytes()),
            Err(DecodeError::Binary { byte: 0, .. })
        ));
    }

    #[test]
    fn rejects_bytes_valid_in_no_accepted_encoding() {
        assert_eq!(decode(b"\xff\xfe\xff\xfe"), Err(DecodeError::Undecodable));
    }

    #[test]
    fn a_list_read_without_a_copy_decodes_as_a_list_read_with_one() {
        let sjis = encoding_rs::SHIFT_JIS
            .encode("email,name\nhanako@example.jp,佐藤 花子\n")
            .0;
        for bytes in [
            b"email,name\nhanako@example.jp,Hanako\n".to_vec(),
            b"\xEF\xBB\xBFemail,name\r\nhanako@example.jp,Hanako\r\n".to_vec(),
            "email,name\nhanako@example.jp,佐藤 花子\n"
                .as_bytes()
                .to_vec(),
            sjis.into_owned(),
        ] {
            let copied = decode_list(&bytes).unwrap();
            let kept = decode_list_owned(bytes).unwrap();
            assert_eq!((kept.text, kept.encoding), (copied.text, copied.encoding));
        }
        assert!(decode_list_owned(b"email\n\0".to_vec()).is_err());
    }
}

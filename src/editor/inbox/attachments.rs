//! What becomes a post: each `.docx`, `.md` or `.txt` attachment as
//! `posts/<YYYY-MM-DD>-<its name>`, or — no attachment — the message itself as
//! `posts/<YYYY-MM-DD>-mail-<n>.txt` (the subject its title, the text part its body, quoted
//! replies and the signature dropped). Every limit of `posts/` is checked before anything is
//! written: the size (2 MiB, `.docx` 20 MiB) and the content parser itself (a `.docx` is opened
//! as a zip the way the Word reader opens it, so a zip bomb is refused without being inflated).

use std::borrow::Cow;
use std::path::Path;

use mail_parser::{Encoding, Message, MessagePart, MimeHeaders};

use crate::content::{IngestOptions, MAX_DOCX_BYTES, MAX_POST_BYTES};

/// One file a message offers for `posts/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// The file's name in `posts/` (made safe, dated).
    pub name: String,
    pub bytes: Vec<u8>,
    /// The slug of the post it makes.
    pub slug: String,
}

/// What the files of one message came to before anything is written.
#[derive(Debug, Default)]
pub struct Sorted {
    /// Good files for `posts/`.
    pub files: Vec<Offered>,
    /// Attachments refused: (its name as mailed, why).
    pub refused: Vec<(String, String)>,
}

/// Where the files go and what is there already.
pub struct Target<'a> {
    /// `posts/`.
    pub posts: &'a Path,
    /// Today in the site's zone, `YYYY-MM-DD`.
    pub date: &'a str,
    pub opts: &'a IngestOptions,
    /// The file of another post using this slug, if any (a second post under one address
    /// would be refused by the publish: it is refused here, before it is written).
    pub slug_taken: &'a dyn Fn(&str) -> Option<String>,
}

/// Sorts the attachments of `message` (or the message itself, without any) into files for
/// `posts/` and refusals.
pub fn sort(message: &Message, t: &Target) -> Sorted {
    let mut sorted = Sorted::default();
    let mut any = false;
    for part in message.attachments() {
        let ctype = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default()
            .to_ascii_lowercase();
        // A picture inside the HTML body (a signature logo, `cid:`) is part of the text, not
        // an attachment she meant to post.
        if part.content_id().is_some() && ctype.starts_with("image/") {
            continue;
        }
        any = true;
        let mailed = part
            .attachment_name()
            .map(str::to_string)
            .unwrap_or_else(|| format!("（名前のない {ctype}）"));
        let offered = offer(&mailed, &file_bytes(message, part), t).and_then(|f| {
            // Two files of one message for one post: the second would replace the first, or
            // be refused by the publish once written.
            match sorted.files.iter().find(|o| o.name == f.name || o.slug == f.slug) {
                Some(first) => Err(format!(
                    "another attachment of this mail is the same post `{}` (posts/{}): send one file per post",
                    f.slug, first.name
                )),
                None => Ok(f),
            }
        });
        match offered {
            Ok(f) => sorted.files.push(f),
            Err(why) => sorted
                .refused
                .push((crate::content::one_line(&mailed), why)),
        }
    }
    if !any {
        match from_body(message, t) {
            Ok(f) => sorted.files.push(f),
            Err(why) => sorted.refused.push(("（本文）".into(), why)),
        }
    }
    sorted
}

/// An attachment's file as she saved it. mail-parser turns a text part into UTF-8 by its
/// `charset`, and without one decodes it as UTF-8 lossily, which would replace every byte of
/// a Shift_JIS or EUC-JP file by U+FFFD: such a part is taken as it was sent (transfer
/// encoding undone) and `posts/` recognises its encoding as for a file dropped in.
fn file_bytes<'a>(message: &Message, part: &'a MessagePart) -> Cow<'a, [u8]> {
    use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};
    let charset = part.content_type().and_then(|c| c.attribute("charset"));
    if !part.is_text() || charset.is_some() {
        return Cow::Borrowed(part.contents());
    }
    let raw = message
        .raw_message()
        .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize);
    let sent = raw.and_then(|raw| match part.encoding {
        Encoding::Base64 => base64_decode(raw),
        Encoding::QuotedPrintable => quoted_printable_decode(raw),
        Encoding::None => Some(raw.to_vec()),
    });
    sent.map_or(Cow::Borrowed(part.contents()), Cow::Owned)
}

/// One attachment, checked as `posts/` would check it.
fn offer(mailed: &str, bytes: &[u8], t: &Target) -> Result<Offered, String> {
    let name = safe_name(mailed, t.date)
        .ok_or("only .docx, .md and .txt files become posts (this one is left out)")?;
    let slug = check(&name, bytes, t)?;
    Ok(Offered {
        name,
        bytes: bytes.to_vec(),
        slug,
    })
}

/// The limits of `posts/`, then the content parser: the file would be a valid post; its slug.
fn check(name: &str, bytes: &[u8], t: &Target) -> Result<String, String> {
    let docx = name.to_ascii_lowercase().ends_with(".docx");
    let (limit, what) = if docx {
        (MAX_DOCX_BYTES, "a Word file")
    } else {
        (MAX_POST_BYTES, "a text file")
    };
    let size = bytes.len() as u64;
    if size > limit {
        return Err(format!(
            "too big: {:.1} MiB; {what} may be at most {} MiB",
            size as f64 / 1048576.0,
            limit >> 20
        ));
    }
    // Where it will be written: its pictures are looked for beside it, inside posts/ only.
    let path = t.posts.join(name);
    let post =
        crate::content::parse(&path, bytes, false, t.posts, t.opts).map_err(|e| e.to_string())?;
    match (t.slug_taken)(&post.slug) {
        Some(other) if other != name => Err(format!(
            "another post already has the address `{}` (posts/{other}): rename the file, or set slug: in it",
            post.slug
        )),
        _ => Ok(post.slug),
    }
}

/// `posts/<date>-mail-<n>.txt` from the subject and the text part.
fn from_body(message: &Message, t: &Target) -> Result<Offered, String> {
    let body = message
        .body_text(0)
        .map(|b| clean_body(&b))
        .unwrap_or_default();
    let subject = crate::content::one_line(message.subject().unwrap_or(""))
        .trim()
        .to_string();
    let text = match (subject.is_empty(), body.is_empty()) {
        (_, true) => return Err("the mail has neither an attachment nor any text".into()),
        (true, false) => format!("{body}\n"),
        (false, false) => format!("{subject}\n\n{body}\n"),
    };
    // The slug is `mail-<n>` whatever the date: a number no post has used.
    let date = t.date;
    let n = (1..10_000)
        .find(|n| {
            (t.slug_taken)(&format!("mail-{n}")).is_none()
                && !t.posts.join(format!("{date}-mail-{n}.txt")).exists()
        })
        .ok_or("too many mailed posts (mail-1 … mail-9999 are all used)")?;
    let name = format!("{date}-mail-{n}.txt");
    let slug = check(&name, text.as_bytes(), t)?;
    Ok(Offered {
        name,
        bytes: text.into_bytes(),
        slug,
    })
}

/// The body without what is not hers: quoted replies (`>` lines and the line introducing them,
/// "On … wrote:" or "2026年11月30日(月) … <…>:") and the signature (from a line `-- `).
pub fn clean_body(body: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line == "-- " || line == "--" {
            break;
        }
        if line.trim_start().starts_with('>') {
            // The attribution before a quote: the last non-blank line kept, ending in a colon.
            while kept.last().is_some_and(|l| l.trim().is_empty()) {
                kept.pop();
            }
            if kept.last().is_some_and(|l| introduces_quote(l.trim_end())) {
                kept.pop();
            }
            continue;
        }
        kept.push(line);
    }
    let text = kept.join("\n");
    text.trim_matches(|c: char| c == '\n' || c.is_whitespace() && c != '\u{3000}')
        .to_string()
}

fn introduces_quote(line: &str) -> bool {
    line.ends_with("wrote:")
        || line.ends_with("書きました:")
        || line.ends_with("書きました：")
        || (line.ends_with(':') || line.ends_with('：')) && line.contains('@')
}

/// The name in `posts/` for an attachment mailed as `mailed`: its last path component, without
/// control characters, leading dots or characters file systems refuse; Japanese kept; prefixed
/// with `date-` unless it already starts with a date (`2026-12-01-…`, her choice). `None` when
/// it is not a `.docx`, `.md` or `.txt` file.
pub fn safe_name(mailed: &str, date: &str) -> Option<String> {
    let last = mailed.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c => c,
        })
        .collect();
    let cleaned = cleaned
        .trim()
        .trim_start_matches(['.', '~', '$', ' ', '\u{3000}'])
        .to_string();
    let (stem, ext) = cleaned.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    if !matches!(ext.as_str(), "docx" | "md" | "txt") {
        return None;
    }
    let mut stem = stem.trim().to_string();
    if stem.is_empty() {
        stem = "mail".into();
    }
    // Long names: file systems allow 255 bytes.
    while stem.len() > 180 {
        stem.pop();
    }
    let name = if starts_with_date(&stem) {
        format!("{stem}.{ext}")
    } else {
        format!("{date}-{stem}.{ext}")
    };
    crate::content::is_post_file(Path::new(&name)).then_some(name)
}

fn starts_with_date(stem: &str) -> bool {
    let b = stem.as_bytes();
    stem.get(..10)
        .is_some_and(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
        && (b.len() == 10 || b[10] == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailed_name_is_made_safe_and_dated_once() {
        let d = "2026-11-30";
        assert_eq!(
            safe_name("原稿.docx", d).as_deref(),
            Some("2026-11-30-原稿.docx")
        );
        assert_eq!(safe_name("../../tayori.yaml", d), None);
        assert_eq!(
            safe_name("../../evil.md", d).as_deref(),
            Some("2026-11-30-evil.md")
        );
        assert_eq!(
            safe_name("..\\..\\a.TXT", d).as_deref(),
            Some("2026-11-30-a.txt")
        );
        assert_eq!(
            safe_name(".hidden.md", d).as_deref(),
            Some("2026-11-30-hidden.md")
        );
        assert_eq!(
            safe_name("a\u{0}b\r\n.md", d).as_deref(),
            Some("2026-11-30-ab.md")
        );
        assert_eq!(
            safe_name("2026-12-01-お知らせ.md", d).as_deref(),
            Some("2026-12-01-お知らせ.md")
        );
        assert_eq!(safe_name("photo.jpg", d), None);
        assert_eq!(safe_name(".md", d), None);
        assert_eq!(
            safe_name("面会交流.md", d).as_deref(),
            Some("2026-11-30-面会交流.md")
        );
    }

    #[test]
    fn quoted_replies_and_the_signature_are_dropped_from_a_mailed_body() {
        let body = "本文です。\n\n二段落目。\n\nOn Mon, Nov 30, 2026 at 10:00 AM Sakura <s@example.jp> wrote:\n> 前のメール\n> 続き\n\n-- \n山本 さくら\n03-0000-0000\n";
        assert_eq!(clean_body(body), "本文です。\n\n二段落目。");
        let jp = "本文。\n\n2026年11月30日(月) 10:00 山本 さくら <s@example.jp>:\n> 引用\n";
        assert_eq!(clean_body(jp), "本文。");
    }

    /// A message from her with one Markdown attachment per body, named `p<i>.md`.
    fn with_markdown(bodies: &[&str]) -> Vec<u8> {
        let mut raw = String::from("From: s@example.jp\r\nSubject: a\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n");
        for (i, body) in bodies.iter().enumerate() {
            raw.push_str(&format!("--b\r\nContent-Type: text/markdown\r\nContent-Disposition: attachment; filename=\"p{i}.md\"\r\n\r\n# T\r\n\r\n{body}\r\n"));
        }
        raw.push_str("--b--\r\n");
        raw.into_bytes()
    }

    /// What `sort` makes of `raw`, mailed on 2026-11-30 into `posts` where no slug is taken.
    fn sorted(raw: &[u8], posts: &std::path::Path) -> Sorted {
        let message = mail_parser::MessageParser::default().parse(raw).unwrap();
        let opts = IngestOptions::new("https://example.jp/");
        let none = |_: &str| None;
        let t = Target {
            posts,
            date: "2026-11-30",
            opts: &opts,
            slug_taken: &none,
        };
        sort(&message, &t)
    }

    #[test]
    fn a_mailed_posts_pictures_are_read_from_posts_and_never_from_outside_it() {
        let root = tempfile::tempdir().unwrap();
        let posts = root.path().join("posts");
        std::fs::create_dir(&posts).unwrap();
        image::RgbImage::new(8, 8)
            .save(posts.join("entrance.png"))
            .unwrap();
        image::RgbImage::new(8, 8)
            .save(root.path().join("secret.png"))
            .unwrap();
        let raw = with_markdown(&["![入口](entrance.png)", "![x](../secret.png)"]);
        let sorted = sorted(&raw, &posts);
        let names: Vec<&str> = sorted.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["2026-11-30-p0.md"], "{:?}", sorted.refused);
        assert_eq!(sorted.refused.len(), 1);
        assert_eq!(sorted.refused[0].0, "p1.md");
        assert!(
            sorted.refused[0].1.contains("outside posts/"),
            "{}",
            sorted.refused[0].1
        );
    }

    #[test]
    fn a_shift_jis_text_file_mailed_without_a_charset_keeps_its_bytes() {
        let sjis: &[u8] = b"\x97\x7b\x88\xe7\x94\xef\x82\xc9\x82\xc2\x82\xa2\x82\xc4\n\n\x96\x7b\x95\xb6\x82\xc5\x82\xb7\x81\x42\n"; // 養育費について / 本文です。
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sjis);
        let raw = format!("From: s@example.jp\r\nSubject: a\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"sjis.txt\"\r\n\r\n{b64}\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\nContent-Disposition: attachment; filename=\"utf8.txt\"\r\n\r\n面会交流\r\n\r\n本文。\r\n--b--\r\n");
        let dir = tempfile::tempdir().unwrap();
        let sorted = sorted(raw.as_bytes(), dir.path());
        assert!(sorted.refused.is_empty(), "{:?}", sorted.refused);
        assert_eq!(sorted.files[0].name, "2026-11-30-sjis.txt");
        assert_eq!(sorted.files[0].bytes, sjis);
        let utf8 = String::from_utf8(sorted.files[1].bytes.clone()).unwrap();
        assert_eq!(utf8.trim_end(), "面会交流\r\n\r\n本文。");
    }

    #[test]
    fn two_attachments_for_one_post_are_not_both_written() {
        let raw = with_markdown(&["一つ目", "二つ目"]);
        let raw = String::from_utf8(raw)
            .unwrap()
            .replace("filename=\"p1.md\"", "filename=\"2026-11-29-p0.md\"");
        let twice = with_markdown(&["A", "B"]);
        let twice = String::from_utf8(twice)
            .unwrap()
            .replace("filename=\"p1.md\"", "filename=\"p0.md\"");
        let dir = tempfile::tempdir().unwrap();
        for raw in [raw, twice] {
            let sorted = sorted(raw.as_bytes(), dir.path());
            let names: Vec<&str> = sorted.files.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(names, ["2026-11-30-p0.md"]);
            assert_eq!(sorted.refused.len(), 1, "{:?}", sorted.refused);
            assert!(sorted.refused[0].1.contains("same post `p0`"));
        }
    }

    #[test]
    fn text_after_a_file_stays_body_and_a_picture_of_the_html_is_no_attachment() {
        let raw = "From: s@example.jp\r\nSubject: a\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello</p>\r\n--a--\r\n--b\r\nContent-Type: text/markdown; name=\"x.md\"\r\nContent-Disposition: attachment; filename=\"x.md\"\r\n\r\n# T\r\n\r\nbody\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nmore of the body\r\n--b\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\nContent-Disposition: inline\r\n\r\nPNG\r\n--b--\r\n";
        let dir = tempfile::tempdir().unwrap();
        let sorted = sorted(raw.as_bytes(), dir.path());
        let names: Vec<&str> = sorted.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["2026-11-30-x.md"]);
        assert!(sorted.refused.is_empty(), "{:?}", sorted.refused);
    }
}

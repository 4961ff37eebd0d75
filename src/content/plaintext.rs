//! The attorney's plain text, as copied from the blog page (docs/configuration.md, "Posts", `.txt`).
//!
//! Line rules: `posts.strip_lines` are dropped; lines of only spaces (ASCII, U+3000, U+00A0)
//! are blank; the first line left is the title; `<目次>` opens the table of contents; `1.見出し`
//! starts a section and `(1)見出し` a sub-section (full-width digits and brackets too); lines of
//! `・・・・` and the like are separators; `【編集後記】` to the end is the editor's note.
//! Consecutive text lines form one paragraph, their line breaks kept.

use unicode_normalization::UnicodeNormalization;

use super::html::linkify_line;
use super::{Body, IngestOptions, Parsed, Section, SectionIds, TocEntry};

/// Longest line (in characters) still read as a heading; longer ones are prose.
const MAX_HEADING_CHARS: usize = 60;

#[derive(Debug, PartialEq)]
enum Line<'a> {
    Blank,
    TocMarker,
    Separator,
    NoteMarker(&'a str),
    Heading(u8, &'a str),
    Text(&'a str),
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{3000}' || c == '\u{a0}' || c == '\u{feff}'
}

fn line_kind(line: &str) -> Line<'_> {
    let t = line.trim_matches(is_space);
    if t.is_empty() {
        return Line::Blank;
    }
    if matches!(
        t,
        "<目次>" | "＜目次＞" | "【目次】" | "〈目次〉" | "≪目次≫" | "目次"
    ) {
        return Line::TocMarker;
    }
    if let Some(rest) = t.strip_prefix("【編集後記】") {
        return Line::NoteMarker(rest.trim_matches(is_space));
    }
    if is_separator(t) {
        return Line::Separator;
    }
    if let Some(level) = heading_level(t) {
        return Line::Heading(level, t);
    }
    Line::Text(t)
}

/// Three or more of the same rule character (`・・・`, `----`, `＝＝＝`, `━━━`, `＊＊＊`…).
fn is_separator(t: &str) -> bool {
    const RULE: &str = "・･-－ー―─━=＝*＊~〜～_＿#＃+＋";
    let chars: Vec<char> = t.chars().filter(|c| !is_space(*c)).collect();
    chars.len() >= 3 && RULE.contains(chars[0]) && chars.iter().all(|c| *c == chars[0])
}

/// `1.見出し` → 1, `(1)見出し` → 2; a long line or one ending in `。` is prose, not a heading.
fn heading_level(t: &str) -> Option<u8> {
    if t.chars().count() > MAX_HEADING_CHARS || t.ends_with('。') {
        return None;
    }
    let digits = |s: &str| {
        s.chars()
            .take_while(|c| c.is_ascii_digit() || ('０'..='９').contains(c))
            .count()
    };
    let after = |s: &str, n: usize| s.char_indices().nth(n).map(|(i, _)| i).unwrap_or(s.len());
    let title_ok = |rest: &str| {
        let rest = rest.trim_start_matches(is_space);
        !rest.is_empty()
            && !rest.starts_with(|c: char| c.is_ascii_digit() || ('０'..='９').contains(&c))
    };
    let n = digits(t);
    if n > 0 && n <= 2 {
        let rest = &t[after(t, n)..];
        if let Some(r) = rest.strip_prefix(['.', '．', '、']) {
            return title_ok(r).then_some(1);
        }
        return None;
    }
    let inner = t.strip_prefix(['(', '（'])?;
    let n = digits(inner);
    if n == 0 || n > 2 {
        return None;
    }
    let rest = inner[after(inner, n)..].strip_prefix([')', '）'])?;
    title_ok(rest).then_some(2)
}

/// The key a TOC entry and a heading are matched by: NFKC, no spaces.
fn match_key(t: &str) -> String {
    t.nfkc().filter(|c| !is_space(*c)).collect()
}

#[derive(Default)]
struct BodyBuilder {
    paragraphs: Vec<Vec<String>>,
    open: bool,
}

impl BodyBuilder {
    fn push_line(&mut self, t: &str) {
        if !self.open {
            self.paragraphs.push(Vec::new());
            self.open = true;
        }
        if let Some(p) = self.paragraphs.last_mut() {
            p.push(t.to_string());
        }
    }
    fn close(&mut self) {
        self.open = false;
    }
    fn finish(&self) -> Body {
        let mut html = String::new();
        let mut text = String::new();
        for p in &self.paragraphs {
            html.push_str("<p>");
            html.push_str(
                &p.iter()
                    .map(|l| linkify_line(l))
                    .collect::<Vec<_>>()
                    .join("<br>\n"),
            );
            html.push_str("</p>\n");
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&p.join("\n"));
            text.push('\n');
        }
        Body { html, text }
    }
}

enum Target {
    Lead,
    Section(usize),
    Note,
}

/// Parses the body of a plain-text post.
pub(super) fn parse(body: &str, opts: &IngestOptions) -> Parsed {
    let strip: Vec<&str> = opts
        .strip_lines
        .iter()
        .map(|s| s.trim_matches(is_space))
        .collect();
    let lines = body
        .lines()
        .filter(|l| !strip.contains(&l.trim_matches(is_space)))
        .map(line_kind);
    let mut reader = Reader::default();
    for line in lines {
        if reader.title(&line) || reader.toc(&line) {
            continue;
        }
        reader.line(line);
    }
    reader.finish()
}

/// The post as read so far.
struct Reader {
    parsed: Parsed,
    /// The lead, then one per section.
    bodies: Vec<BodyBuilder>,
    note: BodyBuilder,
    target: Target,
    in_toc: bool,
    ids: SectionIds,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            parsed: Parsed::default(),
            bodies: vec![BodyBuilder::default()],
            note: BodyBuilder::default(),
            target: Target::Lead,
            in_toc: false,
            ids: SectionIds::default(),
        }
    }
}

impl Reader {
    /// Takes the first line of text as the title; whether the line is used up (a blank line
    /// before the title is).
    fn title(&mut self, line: &Line<'_>) -> bool {
        if self.parsed.title.is_some() {
            return false;
        }
        match line {
            Line::Blank => true,
            Line::Text(t) | Line::Heading(_, t) => {
                self.parsed.title = Some(t.to_string());
                true
            }
            _ => false,
        }
    }

    /// Inside a `<目次>` block, takes its headings as entries; whether the line is used up.
    /// The block ends at a separator or at the first line that is not a new entry.
    fn toc(&mut self, line: &Line<'_>) -> bool {
        if !self.in_toc {
            return false;
        }
        let toc = &mut self.parsed.toc;
        match line {
            Line::Blank => true,
            Line::Separator => {
                self.in_toc = false;
                true
            }
            Line::Heading(level, t) if !toc.iter().any(|e| match_key(&e.title) == match_key(t)) => {
                toc.push(TocEntry {
                    title: t.to_string(),
                    level: *level,
                    target: None,
                });
                true
            }
            _ => {
                self.in_toc = false;
                false
            }
        }
    }

    /// Any other line: into the lead, the current section or the editor's note.
    fn line(&mut self, line: Line<'_>) {
        let in_note = matches!(self.target, Target::Note);
        let current = match self.target {
            Target::Note => &mut self.note,
            Target::Lead => &mut self.bodies[0],
            Target::Section(i) => &mut self.bodies[i + 1],
        };
        match line {
            Line::Blank | Line::Separator => current.close(),
            Line::TocMarker if in_note => current.push_line("<目次>"),
            Line::TocMarker => {
                current.close();
                self.in_toc = true;
            }
            Line::NoteMarker(rest) => {
                current.close();
                self.target = Target::Note;
                if !rest.is_empty() {
                    self.note.push_line(rest);
                }
            }
            Line::Heading(_, t) | Line::Text(t) if in_note => current.push_line(t),
            Line::Heading(level, t) => {
                current.close();
                let id = self.ids.next(level);
                self.parsed.sections.push(Section {
                    id,
                    level,
                    title: t.to_string(),
                    body: Body::default(),
                });
                self.bodies.push(BodyBuilder::default());
                self.target = Target::Section(self.parsed.sections.len() - 1);
            }
            Line::Text(t) => current.push_line(t),
        }
    }

    /// The bodies built, and each table-of-contents entry pointed at its section.
    fn finish(self) -> Parsed {
        let mut parsed = self.parsed;
        parsed.lead = self.bodies[0].finish();
        for (section, b) in parsed.sections.iter_mut().zip(&self.bodies[1..]) {
            section.body = b.finish();
        }
        let note = self.note.finish();
        if !note.is_empty() {
            parsed.editors_note = Some(note);
        }
        for entry in &mut parsed.toc {
            let key = match_key(&entry.title);
            entry.target = parsed
                .sections
                .iter()
                .find(|s| match_key(&s.title) == key)
                .map(|s| s.id.clone());
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> IngestOptions {
        IngestOptions {
            strip_lines: vec!["PREVIOUS / NEXT".into()],
            ..IngestOptions::new("https://example.jp/")
        }
    }

    #[test]
    fn classifies_headings_in_half_and_full_width() {
        assert_eq!(heading_level("1.養育費の相場"), Some(1));
        assert_eq!(heading_level("１．養育費の相場"), Some(1));
        assert_eq!(heading_level("(2)支払日を決める"), Some(2));
        assert_eq!(heading_level("（２）支払日を決める"), Some(2));
        assert_eq!(heading_level("1.5倍になることもあります"), None);
        assert_eq!(heading_level("2019年に改定されました"), None);
        assert_eq!(
            heading_level("1.算定表を見てから話し合うことが大切です。"),
            None
        );
    }

    #[test]
    fn recognises_separators_and_space_only_lines() {
        assert_eq!(line_kind("・・・・・・"), Line::Separator);
        assert_eq!(line_kind("\u{3000}\u{a0} "), Line::Blank);
        assert_eq!(line_kind("ー"), Line::Text("ー"));
    }

    #[test]
    fn parses_toc_and_sections_and_note() {
        let text = "題名\n\n前書き一\n前書き二\n\n<目次>\n1.一つ目\n(1)小見出し\n2.二つ目\n・・・・\n1.一つ目\n本文\n(1)小見出し\n小本文 https://example.jp/a を参照\n2.二つ目\n本文二\n【編集後記】今週は\n\u{3000}\n週末は\nPREVIOUS / NEXT\n";
        let p = parse(text, &opts());
        assert_eq!(p.title.as_deref(), Some("題名"));
        assert_eq!(p.lead.text, "前書き一\n前書き二\n");
        let toc: Vec<_> = p
            .toc
            .iter()
            .map(|e| (e.title.as_str(), e.target.as_deref()))
            .collect();
        assert_eq!(
            toc,
            [
                ("1.一つ目", Some("s1")),
                ("(1)小見出し", Some("s1-1")),
                ("2.二つ目", Some("s2"))
            ]
        );
        let ids: Vec<_> = p.sections.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["s1", "s1-1", "s2"]);
        assert!(p.sections[1]
            .body
            .html
            .contains("<a href=\"https://example.jp/a\">"));
        assert_eq!(p.editors_note.unwrap().text, "今週は\n\n週末は\n");
    }
}

//! Markdown posts: CommonMark with tables (pulldown-cmark), split at headings into sections.
//!
//! A leading `#` heading is the title. `#`/`##` headings start sections and deeper ones
//! sub-sections; a heading reading `編集後記` (any level) starts the editor's note, which runs
//! to the end. Each part's HTML comes from pulldown-cmark and is sanitised; its text comes from
//! the same events through [`TextWriter`], never from the HTML.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::html::{safe_url, sanitize_with};
use super::nesting::Excess;
use super::pictures::Resolver;
use super::{
    is_editors_note_heading, nesting, one_line, Body, IngestOptions, Parsed, Section, SectionIds,
    TocEntry,
};

/// Parses the body of a Markdown post; `Err` is the limit crossed (see [`nesting`]) and the
/// 1-based line of `body` where, checked before anything walks the post's tree.
pub(super) fn parse(body: &str, opts: &IngestOptions) -> Result<Parsed, (Excess, usize)> {
    if let Some(line) = nesting::markdown_lines(body) {
        return Err((Excess::Depth, line));
    }
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let line_at = |offset: usize| body[..offset].matches('\n').count() + 1;
    let mut events = Vec::new();
    let mut last_offset = 0;
    // Collected only up to the limit: a table of a million cells is refused, not kept.
    for (ev, range) in Parser::new_ext(body, options).into_offset_iter() {
        if events.len() == nesting::MAX_PIECES {
            return Err((Excess::Pieces, line_at(range.start)));
        }
        last_offset = range.start;
        events.push(ev);
    }
    if let Some((i, excess)) = nesting::first_excess(&events) {
        // Where: the offsets again, only for a post that is refused.
        let offset = Parser::new_ext(body, options)
            .into_offset_iter()
            .nth(i)
            .map_or(last_offset, |(_, range)| range.start);
        return Err((excess, line_at(offset)));
    }
    Ok(parse_events(events, opts))
}

/// Splits Markdown events (from the parser, or made from a Word document) into the post model.
pub(super) fn parse_events<'a>(events: Vec<Event<'a>>, opts: &IngestOptions) -> Parsed {
    // Split the event stream into parts: (heading level, heading text, events).
    let mut parts: Vec<(Option<HeadingLevel>, String, Vec<Event<'a>>)> =
        vec![(None, String::new(), vec![])];
    let mut heading: Option<(HeadingLevel, String)> = None;
    for ev in events {
        match (&mut heading, ev) {
            (None, Event::Start(Tag::Heading { level, .. })) => {
                heading = Some((level, String::new()))
            }
            (Some((level, text)), Event::End(TagEnd::Heading(_))) => {
                parts.push((Some(*level), one_line(text), vec![]));
                heading = None;
            }
            (Some((_, text)), Event::Text(t) | Event::Code(t)) => text.push_str(&t),
            (Some((_, text)), Event::SoftBreak | Event::HardBreak) => text.push(' '),
            (Some(_), _) => {}
            (None, ev) => {
                if let Some(last) = parts.last_mut() {
                    last.2.push(ev);
                }
            }
        }
    }

    let mut parsed = Parsed::default();
    let mut parts = parts.into_iter().peekable();
    let (_, _, lead_events) = parts.next().unwrap_or((None, String::new(), vec![]));
    let mut lead = lead_events;
    // A first-level heading before any text is the title.
    if lead.iter().all(is_blank_event) {
        if let Some((Some(HeadingLevel::H1), _, _)) = parts.peek() {
            if let Some((_, title, events)) = parts.next() {
                parsed.title = Some(title);
                lead = events;
            }
        }
    }
    parsed.lead = body_of(&lead, opts);
    if parsed.title.is_none() {
        parsed.title = parsed
            .lead
            .text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string);
    }

    let mut ids = SectionIds::default();
    let mut note: Option<Vec<Event>> = None;
    for (level, title, events) in parts {
        if let Some(n) = note.as_mut() {
            // Inside the note, later headings are kept as bold lines of the note.
            n.push(Event::Start(Tag::Paragraph));
            n.push(Event::Start(Tag::Strong));
            n.push(Event::Text(title.into()));
            n.push(Event::End(TagEnd::Strong));
            n.push(Event::End(TagEnd::Paragraph));
            n.extend(events);
            continue;
        }
        if is_editors_note_heading(&title) {
            note = Some(events);
            continue;
        }
        let level = if matches!(level, Some(HeadingLevel::H1 | HeadingLevel::H2)) {
            1
        } else {
            2
        };
        let id = ids.next(level);
        parsed.sections.push(Section {
            id,
            level,
            title,
            body: body_of(&events, opts),
        });
    }
    parsed.editors_note = note.map(|e| body_of(&e, opts)).filter(|b| !b.is_empty());
    // Markdown has no written table of contents: one is made when there are two or more sections.
    if parsed.sections.iter().filter(|s| s.level == 1).count() >= 2 {
        parsed.toc = parsed
            .sections
            .iter()
            .map(|s| TocEntry {
                title: s.title.clone(),
                level: s.level,
                target: Some(s.id.clone()),
            })
            .collect();
    }
    parsed
}

fn is_blank_event(ev: &Event) -> bool {
    matches!(ev, Event::SoftBreak | Event::HardBreak)
        || matches!(ev, Event::Text(t) if t.trim().is_empty())
}

/// Whether a character belongs to a script written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3000}'..='\u{30FF}' | '\u{3400}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{FF00}'..='\u{FFEF}')
}

/// Links and images through [`safe_url`]: the URL both parts get, or — for one it refuses —
/// no link or image at all, its text kept. Done on the events, before either part is
/// written, so the HTML and the text part cannot read a URL differently. The post's own
/// pictures are left for the sanitiser, which publishes them (see `pictures`).
fn safe_links<'a>(
    events: &[Event<'a>],
    base_url: &str,
    pictures: Option<&Resolver>,
) -> Vec<Event<'a>> {
    let mut dropped: Vec<bool> = Vec::new();
    events
        .iter()
        .filter_map(|ev| match ev {
            Event::Start(Tag::Image { dest_url, .. })
                if pictures.is_some_and(|r| r.claims(dest_url)) =>
            {
                dropped.push(false);
                Some(ev.clone())
            }
            Event::Start(
                tag @ (Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }
                | Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                }),
            ) => {
                let safe = safe_url(dest_url, base_url);
                dropped.push(safe.is_none());
                let (link_type, title, id) = (*link_type, title.clone(), id.clone());
                safe.map(|url| {
                    let dest_url = url.into();
                    Event::Start(match tag {
                        Tag::Image { .. } => Tag::Image {
                            link_type,
                            dest_url,
                            title,
                            id,
                        },
                        _ => Tag::Link {
                            link_type,
                            dest_url,
                            title,
                            id,
                        },
                    })
                })
            }
            Event::End(TagEnd::Link | TagEnd::Image) if dropped.pop() == Some(true) => None,
            other => Some(other.clone()),
        })
        .collect()
}

fn body_of(events: &[Event], opts: &IngestOptions) -> Body {
    let events = &safe_links(events, &opts.base_url, opts.pictures.as_deref())[..];
    // A line break inside a Japanese paragraph is not a space: browsers would show one. The
    // characters of text on either side of each event, found in one pass each way (a search
    // from every break would take time growing with the square of the post).
    let mut before: Vec<Option<char>> = Vec::with_capacity(events.len());
    let mut last = None;
    for ev in events {
        before.push(last);
        if let Event::Text(t) = ev {
            last = t.chars().last().or(last);
        }
    }
    let mut after: Vec<Option<char>> = vec![None; events.len()];
    let mut next = None;
    for (i, ev) in events.iter().enumerate().rev() {
        after[i] = next;
        if let Event::Text(t) = ev {
            next = t.chars().next().or(next);
        }
    }
    let joined = events.iter().enumerate().filter_map(|(i, ev)| match ev {
        Event::SoftBreak if before[i].is_some_and(is_cjk) && after[i].is_some_and(is_cjk) => None,
        other => Some(other.clone()),
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, joined);
    Body {
        html: sanitize_with(&html, &opts.base_url, opts.pictures.as_ref()),
        text: TextWriter {
            base_url: &opts.base_url,
            pictures: opts.pictures.as_deref(),
            ..TextWriter::default()
        }
        .write(events),
    }
}

/// Renders Markdown events as readable plain text: blank lines between blocks, `・`/`1.` list
/// markers, `> ` quotes, tables as `a | b` rows, links as `text (URL)` — the URL as
/// [`safe_url`] gives it, the same one the HTML part links to, or none.
#[derive(Default)]
struct TextWriter<'a> {
    base_url: &'a str,
    pictures: Option<&'a Resolver>,
    out: String,
    lists: Vec<Option<u64>>,
    quote: usize,
    link: Vec<String>,
    link_text_start: Vec<usize>,
    cell: usize,
}

impl TextWriter<'_> {
    fn write(mut self, events: &[Event]) -> String {
        for ev in events {
            self.event(ev);
        }
        let mut text = self.out.trim_end().to_string();
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    fn line_start(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        for _ in 0..self.quote {
            self.out.push_str("> ");
        }
    }

    fn block_end(&mut self) {
        if !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        if self.lists.is_empty() {
            self.out.push('\n');
        }
    }

    fn event(&mut self, ev: &Event) {
        match ev {
            // A paragraph inside a list item continues the item's line.
            Event::Start(Tag::Paragraph)
                if !self.out.ends_with(". ") && !self.out.ends_with('・') =>
            {
                self.line_start()
            }
            Event::End(TagEnd::Paragraph | TagEnd::CodeBlock | TagEnd::Table) => self.block_end(),
            Event::Start(Tag::BlockQuote(_)) => self.quote += 1,
            Event::End(TagEnd::BlockQuote(_)) => self.quote = self.quote.saturating_sub(1),
            Event::Start(Tag::List(start)) => self.lists.push(*start),
            Event::End(TagEnd::List(_)) => {
                self.lists.pop();
                self.block_end();
            }
            Event::Start(Tag::Item) => {
                self.line_start();
                let depth = self.lists.len().saturating_sub(1);
                self.out.push_str(&"  ".repeat(depth));
                match self.lists.last_mut() {
                    Some(Some(n)) => {
                        self.out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => self.out.push('・'),
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_) | CodeBlockKind::Indented)) => {
                self.line_start()
            }
            Event::Start(Tag::TableRow | Tag::TableHead) => {
                self.line_start();
                self.cell = 0;
            }
            Event::Start(Tag::TableCell) => {
                if self.cell > 0 {
                    self.out.push_str(" | ");
                }
                self.cell += 1;
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                self.link.push(dest_url.to_string());
                self.link_text_start.push(self.out.len());
            }
            Event::End(TagEnd::Link) => {
                let url = self.link.pop().unwrap_or_default();
                let start = self.link_text_start.pop().unwrap_or(self.out.len());
                let text = self.out[start..].trim();
                if let Some(safe) = safe_url(&url, self.base_url) {
                    if text != url && text != safe {
                        self.out.push_str(&format!(" ({safe})"));
                    }
                }
            }
            Event::Start(Tag::Image { dest_url, .. }) => {
                let url = match self.pictures.filter(|r| r.claims(dest_url)) {
                    Some(r) => r.url(dest_url),
                    None => safe_url(dest_url, self.base_url),
                };
                if let Some(safe) = url {
                    self.out.push_str(&format!("[画像: {safe}] "))
                }
            }
            Event::Text(t) | Event::Code(t) => {
                let quote = "> ".repeat(self.quote);
                self.out.push_str(&t.replace('\n', &format!("\n{quote}")));
            }
            Event::SoftBreak | Event::HardBreak => {
                self.out.push('\n');
                for _ in 0..self.quote {
                    self.out.push_str("> ");
                }
            }
            Event::Rule => {
                self.line_start();
                self.out.push_str("――――――――\n\n");
            }
            Event::Html(h) | Event::InlineHtml(h) => {
                // Raw HTML keeps only its visible text (no script or style content).
                let visible = ammonia::Builder::empty().clean(h).to_string();
                let visible = visible
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
                    .replace("&quot;", "\"");
                self.out.push_str(visible.trim_end_matches('\n'));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> IngestOptions {
        IngestOptions::new("https://example.jp/blog/")
    }

    #[test]
    fn splits_sections_and_editors_note() {
        let p = parse("前書き\n\n## 一\n\n本文\n\n### 小\n\n小本文\n\n## 二\n\nx\n\n### 【編集後記】\n\n今週は\n", &opts())
        .unwrap();
        assert_eq!(p.title.as_deref(), Some("前書き"));
        let s: Vec<_> = p
            .sections
            .iter()
            .map(|s| (s.id.as_str(), s.level, s.title.as_str()))
            .collect();
        assert_eq!(s, [("s1", 1, "一"), ("s1-1", 2, "小"), ("s2", 1, "二")]);
        assert_eq!(p.editors_note.unwrap().text, "今週は\n");
        assert_eq!(p.toc.len(), 3);
    }

    #[test]
    fn takes_a_leading_h1_as_title() {
        let p = parse("# 題名\n\n本文\n", &opts()).unwrap();
        assert_eq!(p.title.as_deref(), Some("題名"));
        assert_eq!(p.lead.text, "本文\n");
    }

    #[test]
    fn writes_lists_tables_links_and_quotes_as_text() {
        let p = parse("1. **頻度** — 月1回\n2. 時間\n\n| 項目 | 例 |\n| --- | --- |\n| 頻度 | 月1回 |\n\n[案内](https://www.courts.go.jp/)\n\n> 引用\n", &opts())
        .unwrap();
        let t = p.lead.text;
        for want in [
            "1. 頻度 — 月1回\n2. 時間",
            "項目 | 例\n頻度 | 月1回",
            "案内 (https://www.courts.go.jp/)",
            "> 引用",
        ] {
            assert!(t.contains(want), "{want:?} not in {t:?}");
        }
        assert!(p.lead.html.contains("<table>"));
    }

    #[test]
    fn joins_japanese_lines_without_a_space() {
        let p = parse(
            "変わりません。\n面会交流の取り決め\nand English\ncontinues\n",
            &opts(),
        )
        .unwrap();
        assert!(
            p.lead
                .html
                .contains("変わりません。面会交流の取り決め\nand English\ncontinues"),
            "{}",
            p.lead.html
        );
    }

    #[test]
    fn makes_relative_links_absolute() {
        let p = parse("[前回](../posts/a.html)\n", &opts()).unwrap();
        assert!(
            p.lead
                .html
                .contains("href=\"https://example.jp/posts/a.html\""),
            "{}",
            p.lead.html
        );
    }
}

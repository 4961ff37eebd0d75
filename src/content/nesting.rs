//! Nesting limits: a post nested deeper than [`MAX_DEPTH`] levels is an invalid post.
//!
//! Parsers, sanitisers, CSS inliners and serialisers walk a document's tree, some of them by
//! recursion and some in time that grows with the depth on every line; no real article is
//! nested more than a handful of levels, so a deeper file is refused at ingest — the one door
//! to the email, `/preview`, `send` and the feeds — instead of aborting or stalling them.
//! Two checks: [`markdown_lines`] on the source, before pulldown-cmark (whose block parser
//! revisits every open container on each line), and [`first_too_deep`] on the events, which
//! counts Markdown blocks and inline spans together with the HTML elements inside the post
//! (tokenised by html5ever, as the sanitiser will read them).

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::LocalName;
use pulldown_cmark::Event;

/// The deepest nesting a post may have, Markdown and HTML levels counted together.
pub const MAX_DEPTH: usize = 48;

/// The most pieces a post may have: Markdown events (each paragraph, line, list item, table
/// cell, link… opens, closes or holds one) and HTML start tags in its raw HTML. A long article
/// has a few thousand; every renderer keeps some hundred bytes per piece (a sanitiser's tree
/// node, an event), so this bounds memory however small the file's bytes per piece are.
pub const MAX_PIECES: usize = 200_000;

/// What makes a post too big to render within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Excess {
    /// Nested deeper than [`MAX_DEPTH`].
    Depth,
    /// More than [`MAX_PIECES`] pieces.
    Pieces,
}

/// The 1-based line of the first Markdown line whose container prefix (block quote markers,
/// list markers, and indentation at two columns a level) is deeper than [`MAX_DEPTH`].
pub(super) fn markdown_lines(body: &str) -> Option<usize> {
    body.lines()
        .position(|line| prefix_depth(line) > MAX_DEPTH)
        .map(|i| i + 1)
}

/// An upper bound of the containers a line can open or continue: each `>` and list marker is
/// one level, and list items nest by indentation (at least two columns a level).
fn prefix_depth(line: &str) -> usize {
    let b = line.as_bytes();
    let (mut i, mut markers, mut columns) = (0, 0, 0);
    loop {
        match b.get(i) {
            Some(b' ') => columns += 1,
            Some(b'\t') => columns += 4,
            Some(b'>') => {
                markers += 1;
                // One space after a marker belongs to it, not to the indentation.
                i += usize::from(b.get(i + 1) == Some(&b' '));
            }
            Some(b'-' | b'+' | b'*') if matches!(b.get(i + 1), None | Some(b' ' | b'\t')) => {
                markers += 1;
                i += usize::from(b.get(i + 1) == Some(&b' '));
            }
            Some(c) if c.is_ascii_digit() => {
                let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                let after = b.get(i + digits);
                if digits > 9
                    || !matches!(after, Some(b'.' | b')'))
                    || !matches!(b.get(i + digits + 1), None | Some(b' ' | b'\t'))
                {
                    break;
                }
                markers += 1;
                i += digits + usize::from(b.get(i + digits + 1) == Some(&b' '));
            }
            _ => break,
        }
        i += 1;
    }
    // `* * * * …` and `- - - …` alone on a line are a thematic break, not lists.
    let rest = &line[i..];
    if rest.trim().is_empty() && line.trim_start().starts_with(['-', '*']) {
        return 1;
    }
    markers + columns / 2
}

/// The index of the first event nested deeper than [`MAX_DEPTH`] (counting Markdown
/// containers and spans, Start/End, with the HTML elements of raw HTML in the post) or past
/// [`MAX_PIECES`] (events and HTML start tags), and which limit it crossed.
pub(super) fn first_excess(events: &[Event]) -> Option<(usize, Excess)> {
    if events.len() > MAX_PIECES {
        return Some((MAX_PIECES, Excess::Pieces));
    }
    let mut markdown = 0usize;
    let html = HtmlDepth::default();
    for (i, ev) in events.iter().enumerate() {
        match ev {
            Event::Start(_) => markdown += 1,
            Event::End(_) => markdown = markdown.saturating_sub(1),
            Event::Html(h) | Event::InlineHtml(h) => {
                html.feed(h, MAX_DEPTH.saturating_sub(markdown));
            }
            _ => {}
        }
        if markdown + html.peak() > MAX_DEPTH {
            return Some((i, Excess::Depth));
        }
        if i + html.tags() > MAX_PIECES {
            return Some((i, Excess::Pieces));
        }
    }
    None
}

/// The HTML elements open in a post's raw HTML, as a tree builder would nest them: elements
/// that close themselves (`p`, `li`, `td`…) and void ones (`br`, `img`…) are not counted, as
/// they cannot hold another of their kind; an end tag closes up to its element.
#[derive(Default)]
struct HtmlDepth {
    open: RefCell<Vec<LocalName>>,
    /// The most elements open at once during the last [`HtmlDepth::feed`]: one HTML block
    /// can open and close ten thousand `div`s.
    peak: RefCell<usize>,
    /// Stop counting past this depth: the post is refused anyway.
    room: RefCell<usize>,
    /// Start tags seen, every kind counted.
    tags: RefCell<usize>,
}

impl HtmlDepth {
    fn peak(&self) -> usize {
        *self.peak.borrow()
    }

    fn tags(&self) -> usize {
        *self.tags.borrow()
    }

    fn feed(&self, html: &str, room: usize) {
        *self.room.borrow_mut() = room;
        *self.peak.borrow_mut() = self.open.borrow().len();
        let tokenizer = Tokenizer::new(self, TokenizerOpts::default());
        let input = BufferQueue::default();
        input.push_back(StrTendril::from_slice(html));
        let _ = tokenizer.feed(&input);
        tokenizer.end();
    }
}

/// Elements that never nest in themselves or close implicitly, and void elements.
const NOT_COUNTED: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead", "tbody",
    "tfoot", "caption", "colgroup", "rb", "rt", "rp", "rtc", "html", "head", "body",
];

impl TokenSink for &HtmlDepth {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let Token::TagToken(tag) = token else {
            return TokenSinkResult::Continue;
        };
        if tag.kind == TagKind::StartTag {
            *self.tags.borrow_mut() += 1;
        }
        let name = &*tag.name;
        if NOT_COUNTED.contains(&name) {
            return TokenSinkResult::Continue;
        }
        let mut open = self.open.borrow_mut();
        match tag.kind {
            TagKind::StartTag if open.len() <= *self.room.borrow() => {
                open.push(tag.name.clone());
                let mut peak = self.peak.borrow_mut();
                *peak = (*peak).max(open.len());
                // The content of these is text to the tokenizer, not markup.
                match name {
                    "script" | "style" | "xmp" | "iframe" | "noembed" | "noframes" => {
                        return TokenSinkResult::RawData(RawKind::Rawtext)
                    }
                    "textarea" | "title" => return TokenSinkResult::RawData(RawKind::Rcdata),
                    _ => {}
                }
            }
            TagKind::StartTag => {}
            TagKind::EndTag => {
                if let Some(at) = open.iter().rposition(|n| *n == tag.name) {
                    open.truncate(at);
                }
            }
        }
        TokenSinkResult::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulldown_cmark::{Options, Parser};

    fn events(md: &str) -> Vec<Event<'_>> {
        Parser::new_ext(md, Options::ENABLE_TABLES).collect()
    }

    #[test]
    fn a_line_of_many_quote_or_list_markers_is_too_deep() {
        assert_eq!(
            markdown_lines(&format!("本文\n{} 深い\n", ">".repeat(3000))),
            Some(2)
        );
        assert_eq!(
            markdown_lines(&format!("{}x\n", "- ".repeat(5000))),
            Some(1)
        );
        assert_eq!(markdown_lines(&format!("{}x\n", "1. ".repeat(60))), Some(1));
        let indented: String = (0..200)
            .map(|i| format!("{}- x\n", "  ".repeat(i)))
            .collect();
        assert_eq!(markdown_lines(&indented), Some(49));
    }

    #[test]
    fn ordinary_markdown_and_thematic_breaks_pass_the_line_check() {
        let md = "> 引用\n> > 引用の引用\n- 一\n  - 二\n    1. 三\n\n* * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * *\n2026年、3.5倍\n";
        assert_eq!(markdown_lines(md), None);
    }

    #[test]
    fn deep_html_emphasis_and_links_are_too_deep() {
        let divs = format!("{}x{}", "<div>".repeat(60), "</div>".repeat(60));
        assert!(first_excess(&events(&divs)).is_some());
        let split = format!("{}\n\nx\n\n{}", "<div>".repeat(60), "</div>".repeat(60));
        assert!(first_excess(&events(&split)).is_some());
        let spans = format!("x {}x", "<span>".repeat(60));
        assert!(first_excess(&events(&spans)).is_some());
        let strong = format!("{}x{}", "**a ".repeat(60), " b**".repeat(60));
        assert!(first_excess(&events(&strong)).is_some());
    }

    #[test]
    fn closed_siblings_self_closing_elements_and_script_text_do_not_add_up() {
        let siblings = "<div>x</div>\n".repeat(200);
        assert_eq!(first_excess(&events(&siblings)), None);
        let list = format!("<ul>{}</ul>", "<li>x".repeat(200));
        assert_eq!(first_excess(&events(&list)), None);
        let script = format!("<script>{}</script>\n\n本文", "<div>".repeat(200));
        assert_eq!(first_excess(&events(&script)), None);
        let nested = "<div><table><tr><td><b>x</b></td></tr></table></div>\n\n> - **[a](b)**\n";
        assert_eq!(first_excess(&events(nested)), None);
    }

    #[test]
    fn more_pieces_than_any_article_are_too_many_in_markdown_or_html() {
        let paragraphs = "a\n\n".repeat(MAX_PIECES / 3 + 1);
        assert_eq!(
            first_excess(&events(&paragraphs)).map(|e| e.1),
            Some(Excess::Pieces)
        );
        let html = format!("<div>\n{}</div>\n", "<p>a</p>".repeat(MAX_PIECES + 1));
        assert_eq!(
            first_excess(&events(&html)).map(|e| e.1),
            Some(Excess::Pieces)
        );
        let article = "段落\n\n".repeat(5000);
        assert_eq!(first_excess(&events(&article)), None);
    }
}

//! maud components shared by the email and the web archive, so both show a post alike.

use maud::{html, Markup, PreEscaped};

use super::{display_date, Entry};
use crate::content::{Kind, TocEntry};

/// How a post is placed in the page around it.
pub struct Placement<'a> {
    /// Level of the post's own title (1 when it is the page's only post).
    pub title_level: u8,
    /// Prefix of section anchors, unique within the page (`""` on a post's own page).
    pub anchor_prefix: &'a str,
    /// Prepended to `#anchor` links: empty in a page, the permalink in a feed.
    pub link_base: &'a str,
    /// Link the title to this URL.
    pub title_link: Option<&'a str>,
    /// Show only this many sections, then a link to the rest at this URL (long issues).
    pub keep_sections: Option<(usize, &'a str)>,
}

/// A heading of the given level (clamped to h1–h6).
pub fn heading(level: u8, id: Option<&str>, class: Option<&str>, content: Markup) -> Markup {
    let inner = html! {
        @match level {
            0 | 1 => h1 id=[id] class=[class] { (content) },
            2 => h2 id=[id] class=[class] { (content) },
            3 => h3 id=[id] class=[class] { (content) },
            4 => h4 id=[id] class=[class] { (content) },
            5 => h5 id=[id] class=[class] { (content) },
            _ => h6 id=[id] class=[class] { (content) },
        }
    };
    inner
}

/// A post: title, date, lead, table of contents, sections, editor's note.
pub fn post(entry: &Entry, tz: &chrono_tz::Tz, place: &Placement) -> Markup {
    let p = &entry.post;
    let title = html! {
        @if let Some(link) = place.title_link { a href=(link) { (p.title) } } @else { (p.title) }
    };
    let class = if p.kind == Kind::Note {
        "post note"
    } else {
        "post"
    };
    html! {
        div class=(class) {
            (heading(place.title_level, None, Some("post-title"), title))
            p class="date" { (display_date(&entry.published, tz)) }
            (post_body(entry, place))
        }
    }
}

/// A post without its title and date: lead, table of contents, sections, editor's note.
pub fn post_body(entry: &Entry, place: &Placement) -> Markup {
    let p = &entry.post;
    let anchor = |id: &str| format!("{}{id}", place.anchor_prefix);
    html! {
        (PreEscaped(&p.lead.html))
        @if !p.toc.is_empty() {
            (toc(&p.toc, place))
        }
        @for s in p.sections.iter().take(place.keep_sections.map_or(usize::MAX, |k| k.0)) {
            (heading(place.title_level + s.level, Some(&anchor(&s.id)), None, html! { (s.title) }))
            (PreEscaped(&s.body.html))
        }
        @if let Some((k, url)) = place.keep_sections {
            @if k < p.sections.len() {
                p class="read-more" { "この記事の続きはウェブでお読みいただけます: " a href=(url) { "「" (p.title) "」の続きを読む" } }
            }
        }
        @if let Some(note) = &p.editors_note {
            (editors_note(&note.html, place.title_level + 1))
        }
    }
}

fn toc(entries: &[TocEntry], place: &Placement) -> Markup {
    // Sub-section entries nest under the section before them.
    let mut groups: Vec<(&TocEntry, Vec<&TocEntry>)> = Vec::new();
    for e in entries {
        match groups.last_mut() {
            Some((_, subs)) if e.level > 1 => subs.push(e),
            _ => groups.push((e, Vec::new())),
        }
    }
    let item = |e: &TocEntry| match &e.target {
        Some(id) => {
            html! { a href={ (place.link_base) "#" (place.anchor_prefix) (id) } { (e.title) } }
        }
        None => html! { (e.title) },
    };
    // Headings that carry their own numbers (`1.養育費…`) go in a list without numbers, or
    // readers would see "1. 1.養育費…".
    let numbered = entries.iter().all(|e| carries_number(&e.title));
    let list = |items: Markup| {
        if numbered {
            html! { ul class="toc-list" { (items) } }
        } else {
            html! { ol { (items) } }
        }
    };
    html! {
        div class="toc" {
            p class="toc-title" { "目次" }
            (list(html! {
                @for (e, subs) in &groups {
                    li {
                        (item(e))
                        @if !subs.is_empty() {
                            (list(html! { @for s in subs { li { (item(s)) } } }))
                        }
                    }
                }
            }))
        }
    }
}

/// Whether a heading starts with its own number: `1.`, `１．`, `(1)`, `（１）`.
fn carries_number(title: &str) -> bool {
    let t = title.trim_start_matches(['(', '（']);
    t.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || ('０'..='９').contains(&c))
}

/// The editor's note as a visibly separate block.
pub fn editors_note(body_html: &str, level: u8) -> Markup {
    html! {
        div class="editors-note" {
            (heading(level, None, Some("editors-note-title"), html! { "編集後記" }))
            (PreEscaped(body_html))
        }
    }
}

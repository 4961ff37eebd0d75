//! Word documents (`.docx`, ECMA-376 / ISO/IEC 29500 WordprocessingML) → the post model.
//!
//! The package is read with `zip` and its parts with quick-xml; the body becomes the same
//! pulldown-cmark events a Markdown post gives, so sections, the table of contents, the editor's
//! note, sanitising and the text part are made by exactly the code that makes them for Markdown.
//! Title: the Title style, else the first Heading 1, else the first paragraph. Heading 1 and 2
//! (by style *name*, see [`styles`]) are sections and sub-sections; a paragraph `【編集後記】` or a
//! heading `編集後記` starts the editor's note. Tags come from the document's keywords.

mod body;
mod pictures;
mod styles;
mod xml;

use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;

use pulldown_cmark::{Alignment, CowStr, Event, HeadingLevel, LinkType, Tag, TagEnd};

use body::{Block, Para, Run};
use styles::{Numbering, Role, Styles};

/// The largest `.docx` read (docs/configuration.md, "Posts"): Word files carry fonts and pictures.
pub const MAX_DOCX_BYTES: u64 = 20 * 1024 * 1024;
/// The most unpacked from the parts read, all together: a 20 MiB package that inflates past
/// this is not an article (pictures and fonts, the bulk of a real one, are never unpacked).
const MAX_UNPACKED_BYTES: u64 = 32 * 1024 * 1024;
/// The most text and link targets the document may turn into, all link copies counted:
/// twice what it may hold ([`body::MAX_KEPT_BYTES`]), so one long link cannot be repeated
/// into gigabytes.
const MAX_CONVERTED_BYTES: usize = 2 * body::MAX_KEPT_BYTES;

/// What a Word document gives before the shared Markdown stage.
pub(super) struct Docx {
    pub title: Option<String>,
    pub tags: Vec<String>,
    /// A custom document property `date` (or `公開日`), as written.
    pub date: Option<String>,
    pub events: Vec<Event<'static>>,
    /// The image parts its pictures show, by part name (each image's `dest_url`), or why one
    /// could not be read.
    pub pictures: HashMap<String, Result<Vec<u8>, String>>,
}

/// Reads a `.docx` package. Errors name what is wrong in words an office can act on.
pub(super) fn read(bytes: &[u8]) -> Result<Docx, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        format!("not a readable Word document (.docx is a zip package; is it still being saved, or damaged?): {e}")
    })?;
    let mut unpacked = 0;
    let mut part = |name: &str| part(&mut zip, name, &mut unpacked);
    let document = part("word/document.xml")?
        .ok_or("not a Word document: the package has no word/document.xml")?;
    let styles = match part("word/styles.xml")? {
        Some(x) => Styles::parse(&x).map_err(|e| format!("word/styles.xml: {e}"))?,
        None => Styles::default(),
    };
    let numbering = match part("word/numbering.xml")? {
        Some(x) => Numbering::parse(&x).map_err(|e| format!("word/numbering.xml: {e}"))?,
        None => Numbering::default(),
    };
    let (rels, images) = match part("word/_rels/document.xml.rels")? {
        Some(x) => (
            external_links(&x).map_err(|e| format!("word/_rels/document.xml.rels: {e}"))?,
            pictures::image_parts(&x).map_err(|e| format!("word/_rels/document.xml.rels: {e}"))?,
        ),
        None => (HashMap::new(), HashMap::new()),
    };
    let tags = match part("docProps/core.xml")? {
        Some(x) => keywords(&x).unwrap_or_default(),
        None => Vec::new(),
    };
    let date = match part("docProps/custom.xml")? {
        Some(x) => custom_date(&x).unwrap_or_default(),
        None => None,
    };
    let blocks =
        body::read(&document, &styles, &rels).map_err(|e| format!("word/document.xml: {e}"))?;
    let pictures = pictures::picture_parts(&mut zip, &blocks, &images);
    let (title, events) = Converter {
        styles: &styles,
        numbering: &numbering,
        images: &images,
        left: std::cell::Cell::new(MAX_CONVERTED_BYTES),
    }
    .convert(blocks)?;
    Ok(Docx {
        title,
        tags,
        date,
        events,
        pictures,
    })
}

/// One part of the package, `None` when absent. `unpacked` counts what the parts read so far
/// unpacked to, capped at [`MAX_UNPACKED_BYTES`] all together.
fn part(
    zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    unpacked: &mut u64,
) -> Result<Option<Vec<u8>>, String> {
    let file = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("{name}: {e}")),
    };
    let room = MAX_UNPACKED_BYTES - *unpacked;
    let mut out = Vec::new();
    file.take(room + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{name}: {e}"))?;
    if out.len() as u64 > room {
        return Err(format!(
            "{name}: the document's parts unpack to more than {} MiB",
            MAX_UNPACKED_BYTES >> 20
        ));
    }
    *unpacked += out.len() as u64;
    Ok(Some(out))
}

/// Relationship id → URL, for external hyperlinks (OPC, ECMA-376 Part 2 §9.3). Each URL is
/// kept once and shared by every run that links to it.
fn external_links(xml: &[u8]) -> Result<HashMap<String, Rc<str>>, String> {
    let mut links = HashMap::new();
    xml::walk(xml, |node| {
        if let xml::Node::Open(e) = node {
            let hyperlink = e.attr("Type").is_some_and(|t| t.ends_with("/hyperlink"));
            if e.local == "Relationship" && hyperlink {
                if let (Some(id), Some(target)) = (e.attr("Id"), e.attr("Target")) {
                    links.insert(id.to_string(), Rc::from(target));
                }
            }
        }
    })?;
    Ok(links)
}

/// `cp:keywords` from the core properties, split at commas, semicolons and `、`.
fn keywords(xml: &[u8]) -> Result<Vec<String>, String> {
    let mut inside = false;
    let mut text = String::new();
    xml::walk(xml, |node| match node {
        xml::Node::Open(e) if e.local == "keywords" => inside = true,
        xml::Node::Close(e) if e.local == "keywords" => inside = false,
        xml::Node::Text(t) if inside => text.push_str(t),
        _ => {}
    })?;
    Ok(text
        .split([',', ';', '、', '，', '；'])
        .map(super::one_line)
        .filter(|t| !t.is_empty())
        .collect())
}

/// The custom property `date` or `公開日` (File → Properties → Custom), for scheduled posts.
/// The built-in "created" date is not used: a document made from an old template or copied
/// from last year's article carries that one's.
fn custom_date(xml: &[u8]) -> Result<Option<String>, String> {
    let mut inside = false;
    let mut value = None;
    xml::walk(xml, |node| match node {
        xml::Node::Open(e) if e.local == "property" => {
            inside = e
                .attr("name")
                .is_some_and(|n| n.eq_ignore_ascii_case("date") || n == "公開日");
        }
        xml::Node::Close(e) if e.local == "property" => inside = false,
        xml::Node::Text(t) if inside && value.is_none() && !t.trim().is_empty() => {
            value = Some(t.trim().to_string())
        }
        _ => {}
    })?;
    Ok(value)
}

struct Converter<'a> {
    styles: &'a Styles,
    numbering: &'a Numbering,
    /// Relationship id → image part name.
    images: &'a HashMap<String, String>,
    /// Bytes of text and link targets the events may still carry.
    left: std::cell::Cell<usize>,
}

impl Converter<'_> {
    /// Blocks → the title and Markdown-equivalent events; fails past [`MAX_CONVERTED_BYTES`].
    fn convert(&self, blocks: Vec<Block>) -> Result<(Option<String>, Vec<Event<'static>>), String> {
        let role = |b: &Block| match b {
            Block::Para(p) => self.styles.role(p.style.as_deref()),
            Block::Table(_) => Role::Body,
        };
        let has_title = blocks.iter().any(|b| {
            role(b) == Role::Title && matches!(b, Block::Para(p) if !p.text().trim().is_empty())
        });
        let mut title: Option<String> = None;
        let mut events = Vec::new();
        // Open lists, innermost last: (level, numbered).
        let mut lists: Vec<(u8, bool)> = Vec::new();
        for block in &blocks {
            let list = match block {
                Block::Para(p)
                    if role(block) == Role::Body && !super::is_editors_note_heading(&p.text()) =>
                {
                    self.list_of(p)
                }
                _ => None,
            };
            if list.is_none() {
                close_lists(&mut events, &mut lists, None);
            }
            match (block, role(block)) {
                (Block::Table(rows), _) => self.table(&mut events, rows)?,
                (Block::Para(p), _)
                    if p.text().trim().is_empty() && p.runs.iter().all(|r| r.picture.is_none()) => {
                }
                (Block::Para(p), Role::Title) if title.is_none() => {
                    title = Some(super::one_line(&p.text()))
                }
                (Block::Para(p), Role::Heading(1)) if !has_title && title.is_none() => {
                    title = Some(super::one_line(&p.text()))
                }
                (Block::Para(p), Role::Heading(n)) => heading(&mut events, n, &p.text()),
                (Block::Para(p), _) if super::is_editors_note_heading(&p.text()) => {
                    heading(&mut events, 1, "編集後記")
                }
                (Block::Para(p), _) => match list {
                    Some((level, numbered)) => {
                        open_item(&mut events, &mut lists, level, numbered);
                        self.inline(&mut events, &p.runs)?;
                    }
                    None => {
                        events.push(Event::Start(Tag::Paragraph));
                        self.inline(&mut events, &p.runs)?;
                        events.push(Event::End(TagEnd::Paragraph));
                    }
                },
            }
        }
        close_lists(&mut events, &mut lists, None);
        Ok((title, events))
    }

    /// Counts `bytes` more text or link target into the events.
    fn spend(&self, bytes: usize) -> Result<(), String> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(format!(
                "the document's text and links come to more than {} MiB (each link counted as often as it is used)",
                MAX_CONVERTED_BYTES >> 20
            )),
        }
    }

    /// The list level and kind of a paragraph: its own numbering, else its style's.
    fn list_of(&self, p: &Para) -> Option<(u8, bool)> {
        let style = p.style.as_deref();
        let (id, level) = match &p.num {
            Some((id, level)) => (id.clone(), *level),
            None => (style.and_then(|s| self.styles.num_id(s))?.to_string(), 0),
        };
        if id == "0" || p.text().trim().is_empty() {
            return None;
        }
        let by_name = style.is_some_and(|s| self.styles.is_numbered_name(s));
        match self.numbering.is_numbered(&id, level) {
            Some(numbered) => Some((level, numbered)),
            None if self.numbering.exists(&id) => None,
            None => Some((level, by_name)),
        }
    }
}

/// Heading 1 → `##`, Heading 2 → `###`, deeper → `####`: the Markdown stage reads `#`/`##`
/// as sections and deeper as sub-sections.
fn heading(events: &mut Vec<Event<'static>>, level: u8, text: &str) {
    let level = match level {
        1 => HeadingLevel::H2,
        2 => HeadingLevel::H3,
        _ => HeadingLevel::H4,
    };
    let tag = Tag::Heading {
        level,
        id: None,
        classes: Vec::new(),
        attrs: Vec::new(),
    };
    events.push(Event::Start(tag));
    events.push(Event::Text(CowStr::from(super::one_line(text))));
    events.push(Event::End(TagEnd::Heading(level)));
}

/// Opens a list item at `level`, closing deeper lists and the previous item at this level. A
/// deeper item opens its list inside the item still open above it.
fn open_item(
    events: &mut Vec<Event<'static>>,
    lists: &mut Vec<(u8, bool)>,
    level: u8,
    numbered: bool,
) {
    close_lists(events, lists, Some(level));
    match lists.last() {
        Some(&(l, n)) if l == level && n == numbered => events.push(Event::End(TagEnd::Item)),
        Some(&(l, _)) if l == level => {
            lists.pop();
            events.push(Event::End(TagEnd::Item));
            events.push(Event::End(TagEnd::List(!numbered)));
            events.push(Event::Start(Tag::List(numbered.then_some(1))));
            lists.push((level, numbered));
        }
        _ => {
            events.push(Event::Start(Tag::List(numbered.then_some(1))));
            lists.push((level, numbered));
        }
    }
    events.push(Event::Start(Tag::Item));
}

/// Closes lists deeper than `level` (all of them for `None`), each with its open item.
fn close_lists(events: &mut Vec<Event<'static>>, lists: &mut Vec<(u8, bool)>, level: Option<u8>) {
    while let Some(&(l, numbered)) = lists.last() {
        if level.is_some_and(|want| l <= want) {
            break;
        }
        lists.pop();
        events.push(Event::End(TagEnd::Item));
        events.push(Event::End(TagEnd::List(numbered)));
    }
}

impl Converter<'_> {
    fn table(
        &self,
        events: &mut Vec<Event<'static>>,
        rows: &[Vec<Vec<Run>>],
    ) -> Result<(), String> {
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
        if columns == 0 {
            return Ok(());
        }
        events.push(Event::Start(Tag::Table(vec![Alignment::None; columns])));
        for (i, row) in rows.iter().enumerate() {
            // The first row is the head, as pandoc and most readers take it.
            events.push(Event::Start(if i == 0 {
                Tag::TableHead
            } else {
                Tag::TableRow
            }));
            for c in 0..columns {
                events.push(Event::Start(Tag::TableCell));
                // A short row's missing cells still cost their events.
                self.spend(8)?;
                self.inline(events, row.get(c).map_or(&[][..], Vec::as_slice))?;
                events.push(Event::End(TagEnd::TableCell));
            }
            events.push(Event::End(if i == 0 {
                TagEnd::TableHead
            } else {
                TagEnd::TableRow
            }));
        }
        events.push(Event::End(TagEnd::Table));
        Ok(())
    }

    /// Runs → inline events: consecutive runs in one link share it; bold and italic per run.
    /// White space at either end of the paragraph is dropped (importers leave it there).
    fn inline(&self, events: &mut Vec<Event<'static>>, runs: &[Run]) -> Result<(), String> {
        let mut runs = runs.to_vec();
        let is_text = |r: &&mut Run| !r.brk && r.picture.is_none();
        if let Some(first) = runs.iter_mut().find(is_text) {
            first.text = first.text.trim_start().to_string();
        }
        if let Some(last) = runs.iter_mut().rev().find(is_text) {
            last.text = last.text.trim_end().to_string();
        }
        runs.retain(|r| r.brk || r.picture.is_some() || !r.text.is_empty());
        let mut i = 0;
        while i < runs.len() {
            let link = runs[i].link.clone();
            let end = runs[i..]
                .iter()
                .position(|r| r.link != link)
                .map_or(runs.len(), |n| i + n);
            if let Some(url) = &link {
                self.spend(url.len())?;
                events.push(Event::Start(Tag::Link {
                    link_type: LinkType::Inline,
                    dest_url: CowStr::from(url.to_string()),
                    title: CowStr::from(""),
                    id: CowStr::from(""),
                }));
            }
            for run in &runs[i..end] {
                if run.brk {
                    events.push(Event::HardBreak);
                    continue;
                }
                if let Some(d) = &run.picture {
                    self.picture(events, d)?;
                    continue;
                }
                if run.bold {
                    events.push(Event::Start(Tag::Strong));
                }
                if run.italic {
                    events.push(Event::Start(Tag::Emphasis));
                }
                self.spend(run.text.len())?;
                events.push(Event::Text(CowStr::from(run.text.clone())));
                if run.italic {
                    events.push(Event::End(TagEnd::Emphasis));
                }
                if run.bold {
                    events.push(Event::End(TagEnd::Strong));
                }
            }
            if link.is_some() {
                events.push(Event::End(TagEnd::Link));
            }
            i = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_date_property_is_the_date_and_others_are_not() {
        let xml = r#"<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">
          <property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="担当"><vt:lpwstr>佐藤</vt:lpwstr></property>
          <property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="3" name="公開日"><vt:filetime>2026-11-29T23:00:00Z</vt:filetime></property>
        </Properties>"#;
        assert_eq!(
            custom_date(xml.as_bytes()).unwrap().as_deref(),
            Some("2026-11-29T23:00:00Z")
        );
        let none =
            r#"<Properties><property name="担当"><lpwstr>佐藤</lpwstr></property></Properties>"#;
        assert_eq!(custom_date(none.as_bytes()).unwrap(), None);
    }
}

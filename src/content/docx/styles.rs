//! What a paragraph's style means: `word/styles.xml` and `word/numbering.xml`.
//!
//! Style ids are not names: Japanese Word writes Heading 1 with the id `1` and English Word with
//! `Heading1`, but both name it `heading 1` (ECMA-376 Part 1, §17.7.4.9, built-in style names are
//! stored in English). A localised or custom name (`見出し 1`), the outline level (§17.3.1.20) and
//! the `basedOn` chain are honoured too, so a house style derived from a heading is a heading.

use std::collections::HashMap;

use super::xml::{walk, Node};

/// What a paragraph is, by its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Title,
    /// Heading 1, 2, … (1-based).
    Heading(u8),
    Body,
}

#[derive(Debug, Default, Clone)]
struct Style {
    name: String,
    based_on: Option<String>,
    outline: Option<u8>,
    /// A list the style puts its paragraphs in (`List Bullet`, `List Number`).
    num_id: Option<String>,
    bold: Option<bool>,
    italic: Option<bool>,
}

/// The styles of one document.
#[derive(Debug, Default)]
pub(super) struct Styles {
    by_id: HashMap<String, Style>,
}

impl Styles {
    /// Reads `word/styles.xml`.
    pub fn parse(xml: &[u8]) -> Result<Styles, String> {
        const MAX_NAME: usize = 256;
        let mut by_id = HashMap::new();
        let mut current: Option<(String, Style)> = None;
        let mut in_rpr = false;
        walk(xml, |node| match node {
            Node::Open(e) if e.is("style") => {
                current = e
                    .attr("styleId")
                    .map(|id| (id.to_string(), Style::default()));
            }
            Node::Close(e) if e.is("style") => {
                if let Some((id, style)) = current.take() {
                    by_id.insert(id, style);
                }
            }
            Node::Open(e) if e.is("rPr") => in_rpr = true,
            Node::Close(e) if e.is("rPr") => in_rpr = false,
            Node::Open(e) => {
                let Some((_, style)) = current.as_mut() else {
                    return;
                };
                let val = e.attr("val").map(str::to_string);
                match e.local.as_str() {
                    _ if !e.w => {}
                    // A style name is a short label; a long one is read against every
                    // paragraph in that style, so it is not a heading's name.
                    "name" => style.name = val.filter(|v| v.len() <= MAX_NAME).unwrap_or_default(),
                    "basedOn" => style.based_on = val,
                    "outlineLvl" => style.outline = val.and_then(|v| v.parse().ok()),
                    "numId" => style.num_id = val,
                    "b" if in_rpr => style.bold = Some(e.on()),
                    "i" if in_rpr => style.italic = Some(e.on()),
                    _ => {}
                }
            }
            _ => {}
        })?;
        Ok(Styles { by_id })
    }

    /// The style and the styles it is based on, nearest first (a cycle ends the chain).
    fn chain<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Style> + 'a {
        let mut next = self.by_id.get(id);
        let mut seen = 0;
        std::iter::from_fn(move || {
            let style = next?;
            seen += 1;
            next = match &style.based_on {
                Some(b) if seen < 16 => self.by_id.get(b),
                _ => None,
            };
            Some(style)
        })
    }

    /// What a paragraph styled `id` is. An unknown id is read as a name: some writers
    /// (and hand-made files) put the name where the id belongs.
    pub fn role(&self, id: Option<&str>) -> Role {
        let Some(id) = id else { return Role::Body };
        if !self.by_id.contains_key(id) {
            return role_by_name(id).unwrap_or(Role::Body);
        }
        for style in self.chain(id) {
            if let Some(role) = role_by_name(&style.name) {
                return role;
            }
        }
        match self.chain(id).find_map(|s| s.outline) {
            Some(level) if level < 9 => Role::Heading(level + 1),
            _ => Role::Body,
        }
    }

    /// The list a paragraph style puts its paragraphs in, if any.
    pub fn num_id(&self, id: &str) -> Option<&str> {
        self.chain(id).find_map(|s| s.num_id.as_deref())
    }

    /// Whether a style's name says it is a numbered list (`List Number`), for lists whose
    /// numbering part is missing.
    pub fn is_numbered_name(&self, id: &str) -> bool {
        self.chain(id)
            .any(|s| s.name.to_ascii_lowercase().starts_with("list number"))
    }

    /// Bold and italic a character style gives (`Strong`, `Emphasis`).
    pub fn run_format(&self, id: &str) -> (bool, bool) {
        let bold = self.chain(id).find_map(|s| s.bold).unwrap_or(false);
        let italic = self.chain(id).find_map(|s| s.italic).unwrap_or(false);
        (bold, italic)
    }
}

/// A role from a style name in any case and width: `Title`, `表題`, `タイトル`,
/// `heading 2`, `Heading2`, `見出し 2`, `見出し２`.
fn role_by_name(name: &str) -> Option<Role> {
    let norm: String = name
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            _ => c.to_ascii_lowercase(),
        })
        .collect();
    if matches!(norm.as_str(), "title" | "表題" | "タイトル") {
        return Some(Role::Title);
    }
    let level = norm
        .strip_prefix("heading")
        .or_else(|| norm.strip_prefix("見出し"))?;
    match level.parse::<u8>() {
        Ok(n @ 1..=9) => Some(Role::Heading(n)),
        _ => None,
    }
}

/// `word/numbering.xml`: whether each list level is bulleted or numbered (§17.9).
#[derive(Debug, Default)]
pub(super) struct Numbering {
    /// `numId` → `abstractNumId`.
    nums: HashMap<String, String>,
    /// (`abstractNumId`, level) → `numFmt`.
    formats: HashMap<(String, u8), String>,
}

impl Numbering {
    /// Reads `word/numbering.xml`.
    pub fn parse(xml: &[u8]) -> Result<Numbering, String> {
        let mut n = Numbering::default();
        let mut abstract_id: Option<String> = None;
        let mut num_id: Option<String> = None;
        let mut level: Option<u8> = None;
        walk(xml, |node| match node {
            Node::Open(e) if e.is("abstractNum") => {
                abstract_id = e.attr("abstractNumId").map(str::to_string)
            }
            Node::Close(e) if e.is("abstractNum") => abstract_id = None,
            Node::Open(e) if e.is("lvl") => level = e.attr("ilvl").and_then(|v| v.parse().ok()),
            Node::Close(e) if e.is("lvl") => level = None,
            Node::Open(e) if e.is("numFmt") => {
                if let (Some(a), Some(l), Some(v)) = (&abstract_id, level, e.attr("val")) {
                    n.formats.insert((a.clone(), l), v.to_string());
                }
            }
            Node::Open(e) if e.is("num") => num_id = e.attr("numId").map(str::to_string),
            Node::Close(e) if e.is("num") => num_id = None,
            Node::Open(e) if e.is("abstractNumId") => {
                if let (Some(id), Some(v)) = (&num_id, e.attr("val")) {
                    n.nums.insert(id.clone(), v.to_string());
                }
            }
            _ => {}
        })?;
        Ok(n)
    }

    /// `Some(true)` for a numbered level, `Some(false)` for bullets, `None` when unknown or
    /// when the list is switched off (`numId` 0, `numFmt` none).
    pub fn is_numbered(&self, num_id: &str, level: u8) -> Option<bool> {
        let abs = self.nums.get(num_id)?;
        match self.formats.get(&(abs.clone(), level))?.as_str() {
            "bullet" => Some(false),
            "none" => None,
            _ => Some(true),
        }
    }

    /// Whether `num_id` names a list at all (`0` removes a style's numbering).
    pub fn exists(&self, num_id: &str) -> bool {
        num_id != "0" && self.nums.contains_key(num_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_names_are_recognised_in_japanese_and_english_spellings() {
        for (name, role) in [
            ("heading 1", Role::Heading(1)),
            ("Heading2", Role::Heading(2)),
            ("見出し 1", Role::Heading(1)),
            ("見出し２", Role::Heading(2)),
            ("Title", Role::Title),
            ("表題", Role::Title),
        ] {
            assert_eq!(role_by_name(name), Some(role), "{name}");
        }
        assert_eq!(role_by_name("Normal"), None);
        assert_eq!(role_by_name("heading 10"), None);
    }

    #[test]
    fn a_japanese_style_id_is_read_by_its_name_and_derived_styles_inherit() {
        let xml = r#"<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
          <w:style w:type="paragraph" w:styleId="1"><w:name w:val="heading 1"/></w:style>
          <w:style w:type="paragraph" w:styleId="a5"><w:name w:val="事務所見出し"/><w:basedOn w:val="1"/></w:style>
          <w:style w:type="paragraph" w:styleId="x"><w:name w:val="Outline"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
          <w:style w:type="character" w:styleId="s"><w:name w:val="Strong"/><w:rPr><w:b/></w:rPr></w:style>
        </w:styles>"#;
        let s = Styles::parse(xml.as_bytes()).unwrap();
        assert_eq!(s.role(Some("1")), Role::Heading(1));
        assert_eq!(s.role(Some("a5")), Role::Heading(1));
        assert_eq!(s.role(Some("x")), Role::Heading(2));
        assert_eq!(s.role(Some("nothing")), Role::Body);
        assert_eq!(s.run_format("s"), (true, false));
    }
}

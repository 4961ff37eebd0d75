//! `word/document.xml` → paragraphs and tables (ECMA-376 Part 1, §17.3 and §17.4).
//!
//! Runs keep their text with bold, italic and the link they sit in — a `w:hyperlink` (its target
//! from the relationships part) or a `HYPERLINK` field, simple or complex (§17.16). Deleted text
//! (tracked changes), the fallback copy of alternate content and drawings are left out, so
//! nothing is read twice.

use std::collections::HashMap;
use std::rc::Rc;

use super::styles::Styles;
use super::xml::{walk, Element, Node};

/// A piece of a paragraph with one formatting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Run {
    pub text: String,
    pub bold: bool,
    pub italic: bool,
    /// Shared by every run of the link: one copy of the target, however many runs it spans.
    pub link: Option<Rc<str>>,
    /// A line break (`w:br`, `w:cr`) rather than text.
    pub brk: bool,
    /// A picture (`w:drawing`) rather than text.
    pub picture: Option<Drawing>,
}

/// A picture in the text (`w:drawing` → `pic:pic` → `a:blip`, ECMA-376 Part 1 §20.4, §20.1.8.13).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Drawing {
    /// The relationship id of its image part (`a:blip/@r:embed`).
    pub embed: Option<String>,
    /// Its text alternative: `wp:docPr/@descr`, else `@title`.
    pub alt: String,
    title: String,
    /// A chart object (`c:chart`, §21.2) rather than a picture: tayori cannot draw one.
    pub chart: bool,
}

impl Drawing {
    fn see(&mut self, e: &Element) {
        match e.local.as_str() {
            "docPr" if !e.w => {
                self.alt = e.attr("descr").unwrap_or("").trim().to_string();
                self.title = e.attr("title").unwrap_or("").trim().to_string();
            }
            "blip" if !e.w && self.embed.is_none() => {
                self.embed = e.attr("embed").map(str::to_string)
            }
            "chart" if !e.w => self.chart = true,
            _ => {}
        }
    }
}

/// A paragraph: its style id, its list (`numId`, level) and its runs.
#[derive(Debug, Clone, Default)]
pub(super) struct Para {
    pub style: Option<String>,
    pub num: Option<(String, u8)>,
    pub runs: Vec<Run>,
}

impl Para {
    /// The paragraph's text, line breaks as spaces.
    pub fn text(&self) -> String {
        self.runs
            .iter()
            .map(|r| if r.brk { " " } else { r.text.as_str() })
            .collect()
    }
}

/// A block of the document body.
#[derive(Debug, Clone)]
pub(super) enum Block {
    Para(Para),
    /// Rows of cells; each cell's paragraphs joined by line breaks. Nested tables are flattened
    /// into their cell.
    Table(Vec<Vec<Vec<Run>>>),
}

/// A field being read: its instruction, then its result (§17.16.18).
#[derive(Debug, Default)]
struct Field {
    instr: String,
    link: Option<Rc<str>>,
    in_result: bool,
}

#[derive(Default)]
struct Reader<'a> {
    styles: Option<&'a Styles>,
    rels: Option<&'a HashMap<String, Rc<str>>>,
    blocks: Vec<Block>,
    para: Para,
    table: Option<Vec<Vec<Vec<Run>>>>,
    table_depth: usize,
    skip_depth: usize,
    in_ppr: bool,
    in_rpr: bool,
    in_t: bool,
    in_instr: bool,
    bold: bool,
    italic: bool,
    hyperlink: Vec<Option<Rc<str>>>,
    fields: Vec<Field>,
    /// The picture being read (its content is otherwise skipped).
    drawing: Option<Drawing>,
    /// What is kept so far (text, and [`PIECE_BYTES`] per paragraph, cell, run or break),
    /// against [`MAX_KEPT_BYTES`].
    kept: usize,
}

/// The most a document may hold once read, text and structure together: as much as a
/// Markdown post (`MAX_POST_BYTES`). Beyond it the document is refused, so what is kept (and
/// everything made from it) stays in proportion to a post, however well the package packs.
pub(super) const MAX_KEPT_BYTES: usize = crate::content::MAX_POST_BYTES as usize;
/// What one paragraph, table cell, run or line break counts for: an empty `<w:p/>` is six
/// bytes of XML but a paragraph kept in memory.
const PIECE_BYTES: usize = 32;

/// Reads the body of `word/document.xml`.
pub(super) fn read(
    xml: &[u8],
    styles: &Styles,
    rels: &HashMap<String, Rc<str>>,
) -> Result<Vec<Block>, String> {
    let mut r = Reader {
        styles: Some(styles),
        rels: Some(rels),
        ..Reader::default()
    };
    walk(xml, |node| r.node(node))?;
    if r.kept > MAX_KEPT_BYTES {
        return Err(format!(
            "the document holds more than {} MiB of text and structure (paragraphs, table cells, runs); a post may hold that much",
            MAX_KEPT_BYTES >> 20
        ));
    }
    Ok(r.blocks)
}

/// Elements whose content is never shown: deletions, the fallback copy of alternate content,
/// drawings and embedded objects, footnote and comment marks.
fn skipped(e: &Element) -> bool {
    (!e.w && e.local == "Fallback")
        || (e.w
            && matches!(
                e.local.as_str(),
                "del" | "moveFrom" | "drawing" | "pict" | "object"
            ))
}

impl Reader<'_> {
    fn node(&mut self, node: Node) {
        match node {
            Node::Open(e) if self.skip_depth > 0 || skipped(e) => {
                if self.skip_depth == 0 && e.is("drawing") {
                    self.drawing = Some(Drawing::default());
                }
                if let Some(d) = self.drawing.as_mut() {
                    d.see(e);
                }
                self.skip_depth += 1
            }
            Node::Close(e) if self.skip_depth > 0 => {
                let _ = e;
                self.skip_depth -= 1;
                if self.skip_depth == 0 {
                    if let Some(d) = self.drawing.take() {
                        self.push_picture(d);
                    }
                }
            }
            Node::Open(e) if e.w => self.open(e),
            Node::Close(e) if e.w => self.close(e),
            Node::Text(t) if self.skip_depth == 0 => self.text(t),
            _ => {}
        }
    }

    fn open(&mut self, e: &Element) {
        match e.local.as_str() {
            "tbl" => {
                self.table_depth += 1;
                if self.table_depth == 1 {
                    self.table = Some(Vec::new());
                }
            }
            "tr" | "tc" | "p" if !self.keep(PIECE_BYTES) => {}
            "tr" if self.table_depth == 1 => self.table_mut().push(Vec::new()),
            "tc" if self.table_depth == 1 => {
                if let Some(row) = self.table_mut().last_mut() {
                    row.push(Vec::new());
                }
            }
            "p" => self.para = Para::default(),
            "pPr" => self.in_ppr = true,
            "rPr" => self.in_rpr = true,
            "pStyle" if self.in_ppr && !self.in_rpr => {
                self.para.style = e.attr("val").map(str::to_string)
            }
            "ilvl" if self.in_ppr => {
                // Levels are 0–8 (§17.9.3); a deeper one is read as the deepest.
                let level = e
                    .attr("val")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
                    .min(8);
                let id = self.para.num.take().map(|(id, _)| id).unwrap_or_default();
                self.para.num = Some((id, level));
            }
            "numId" if self.in_ppr => {
                let level = self.para.num.take().map(|(_, l)| l).unwrap_or(0);
                let id = e.attr("val").unwrap_or("0").to_string();
                self.para.num = Some((id, level));
            }
            "r" => (self.bold, self.italic) = (false, false),
            "rStyle" if self.in_rpr && !self.in_ppr => {
                let styles = self.styles;
                if let (Some(styles), Some(id)) = (styles, e.attr("val")) {
                    let (b, i) = styles.run_format(id);
                    self.bold |= b;
                    self.italic |= i;
                }
            }
            "b" if self.in_rpr && !self.in_ppr => self.bold = e.on(),
            "i" if self.in_rpr && !self.in_ppr => self.italic = e.on(),
            "t" => self.in_t = true,
            "instrText" => self.in_instr = true,
            "tab" if !self.in_ppr => self.push_text(" "),
            "noBreakHyphen" => self.push_text("-"),
            "br" | "cr" if !matches!(e.attr("type"), Some("page" | "column")) => self.push_break(),
            "hyperlink" => {
                let target = e
                    .attr("id")
                    .and_then(|id| self.rels.and_then(|r| r.get(id)))
                    .cloned();
                self.hyperlink.push(target);
            }
            "fldSimple" => self.fields.push(Field {
                link: hyperlink_target(e.attr("instr").unwrap_or("")),
                in_result: true,
                ..Field::default()
            }),
            "fldChar" => match e.attr("fldCharType") {
                Some("begin") => self.fields.push(Field::default()),
                Some("separate") => {
                    if let Some(f) = self.fields.last_mut() {
                        f.link = hyperlink_target(&f.instr);
                        f.in_result = true;
                    }
                }
                Some("end") => {
                    self.fields.pop();
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn close(&mut self, e: &Element) {
        match e.local.as_str() {
            "tbl" => {
                self.table_depth = self.table_depth.saturating_sub(1);
                if self.table_depth == 0 {
                    if let Some(t) = self.table.take() {
                        self.blocks.push(Block::Table(t));
                    }
                }
            }
            "p" => {
                let para = std::mem::take(&mut self.para);
                if self.kept > MAX_KEPT_BYTES {
                    return;
                }
                match self.table.as_mut() {
                    Some(t) => {
                        if let Some(cell) = t.last_mut().and_then(|row| row.last_mut()) {
                            if !cell.is_empty() && !para.runs.is_empty() {
                                cell.push(Run {
                                    brk: true,
                                    ..Run::default()
                                });
                            }
                            cell.extend(para.runs);
                        }
                    }
                    None => self.blocks.push(Block::Para(para)),
                }
            }
            "pPr" => self.in_ppr = false,
            "rPr" => self.in_rpr = false,
            "t" => self.in_t = false,
            "instrText" => self.in_instr = false,
            "hyperlink" => {
                self.hyperlink.pop();
            }
            "fldSimple" => {
                self.fields.pop();
            }
            _ => {}
        }
    }

    fn table_mut(&mut self) -> &mut Vec<Vec<Vec<Run>>> {
        self.table.get_or_insert_with(Vec::new)
    }

    fn text(&mut self, t: &str) {
        if self.in_instr {
            if let Some(f) = self.fields.last_mut() {
                f.instr.push_str(t);
            }
        } else if self.in_t && self.fields.iter().all(|f| f.in_result) {
            self.push_text(t);
        }
    }

    fn link(&self) -> Option<Rc<str>> {
        let field = self.fields.iter().rev().find_map(|f| f.link.clone());
        field.or_else(|| self.hyperlink.iter().rev().find_map(|l| l.clone()))
    }

    /// Counts `bytes` more kept; false once past [`MAX_KEPT_BYTES`] (the document is refused,
    /// so nothing more is kept).
    fn keep(&mut self, bytes: usize) -> bool {
        self.kept = self.kept.saturating_add(bytes);
        self.kept <= MAX_KEPT_BYTES
    }

    fn push_text(&mut self, t: &str) {
        if !self.keep(t.len()) {
            return;
        }
        let (bold, italic, link) = (self.bold, self.italic, self.link());
        if let Some(last) = self.para.runs.last_mut() {
            if !last.brk
                && (last.bold, last.italic) == (bold, italic)
                && same_link(&last.link, &link)
            {
                last.text.push_str(t);
                return;
            }
        }
        if self.keep(PIECE_BYTES) {
            self.para.runs.push(Run {
                text: t.to_string(),
                bold,
                italic,
                link,
                brk: false,
                picture: None,
            });
        }
    }

    fn push_picture(&mut self, mut d: Drawing) {
        let shown = d.embed.is_some() || d.chart;
        if !shown || !self.keep(PIECE_BYTES + d.alt.len() + d.title.len()) {
            return;
        }
        if d.alt.is_empty() {
            d.alt = std::mem::take(&mut d.title);
        }
        let link = self.link();
        self.para.runs.push(Run {
            picture: Some(d),
            link,
            ..Run::default()
        });
    }

    fn push_break(&mut self) {
        if !self.keep(PIECE_BYTES) {
            return;
        }
        let link = self.link();
        self.para.runs.push(Run {
            brk: true,
            link,
            ..Run::default()
        });
    }
}

/// The URL of a `HYPERLINK "url"` field instruction; `\l` (a place in this document) gives none.
/// Whether two runs sit in the same link. Runs of one `w:hyperlink` share one `Rc`, so the
/// pointer answers at once; comparing the text would cost the target's length for every run
/// (a 2 MB target × 450,000 runs took 27 s). Different relationships with the same short
/// target still merge.
fn same_link(a: &Option<Rc<str>>, b: &Option<Rc<str>>) -> bool {
    const SHORT: usize = 2048;
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Rc::ptr_eq(a, b) || (a.len() <= SHORT && a == b),
        _ => false,
    }
}

fn hyperlink_target(instr: &str) -> Option<Rc<str>> {
    let rest = instr.trim().strip_prefix("HYPERLINK")?.trim();
    if rest.starts_with("\\l") {
        return None;
    }
    let url = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split_whitespace().next()?,
    };
    (!url.is_empty()).then(|| Rc::from(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperlink_fields_give_their_url_but_not_internal_places() {
        assert_eq!(
            hyperlink_target(r#" HYPERLINK "https://www.courts.go.jp/" \o "裁判所" "#).as_deref(),
            Some("https://www.courts.go.jp/")
        );
        assert_eq!(hyperlink_target(r#"HYPERLINK \l "_Toc1""#), None);
        assert_eq!(hyperlink_target("PAGE"), None);
    }

    #[test]
    fn drawings_and_charts_are_picture_runs_with_their_description_or_title() {
        let xml = r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><w:body>
          <w:p><w:r><w:drawing><wp:inline><wp:docPr id="1" name="Picture 1" descr="算定表"/><a:graphic><a:graphicData><a:blip r:embed="rId7"/></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>
          <w:p><w:r><w:drawing><wp:inline><wp:docPr id="2" name="Picture 2" title="入口"/><a:graphic><a:graphicData><a:blip r:embed="rId8"/></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>
          <w:p><w:r><w:drawing><wp:inline><wp:docPr id="4" descr="グラフ"/><a:graphic><a:graphicData><c:chart xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" r:id="rId5"/></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>
          <w:p><w:del><w:r><w:drawing><wp:inline><wp:docPr id="3" descr="消した"/><a:blip r:embed="rId9"/></wp:inline></w:drawing></w:r></w:del></w:p>
        </w:body></w:document>"#;
        let blocks = read(xml.as_bytes(), &Styles::default(), &HashMap::new()).unwrap();
        let pictures: Vec<(Option<&str>, &str)> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Para(p) => p.runs.first(),
                _ => None,
            })
            .filter_map(|r| r.picture.as_ref())
            .map(|d| (d.embed.as_deref(), d.alt.as_str()))
            .collect();
        assert_eq!(
            pictures,
            [
                (Some("rId7"), "算定表"),
                (Some("rId8"), "入口"),
                (None, "グラフ")
            ]
        );
    }

    #[test]
    fn runs_keep_bold_links_and_skip_deleted_text() {
        let xml = r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><w:body>
          <w:p><w:r><w:t xml:space="preserve">転居は </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>学期</w:t></w:r>
          <w:del><w:r><w:delText>消した</w:delText></w:r></w:del>
          <w:hyperlink r:id="rId9"><w:r><w:t>裁判所</w:t></w:r></w:hyperlink>
          <w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>HYPERLINK "https://a.example/"</w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>A &amp; B</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>
        </w:body></w:document>"#;
        let rels = HashMap::from([("rId9".to_string(), Rc::from("https://www.courts.go.jp/"))]);
        let blocks = read(xml.as_bytes(), &Styles::default(), &rels).unwrap();
        let Block::Para(p) = &blocks[0] else { panic!() };
        let runs: Vec<_> = p
            .runs
            .iter()
            .map(|r| (r.text.as_str(), r.bold, r.link.as_deref()))
            .collect();
        assert_eq!(
            runs,
            [
                ("転居は ", false, None),
                ("学期", true, None),
                ("裁判所", false, Some("https://www.courts.go.jp/")),
                ("A & B", false, Some("https://a.example/")),
            ]
        );
    }
}

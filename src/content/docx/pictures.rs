//! Pictures in a Word document: `w:drawing` → `a:blip r:embed` → the image part named by
//! `word/_rels/document.xml.rels` (ECMA-376 Part 1 §20.4, Part 2 §9.3). Each becomes a
//! Markdown image whose source is its part name, and the part's bytes go with the document
//! to `content::pictures`, which publishes them like a picture beside a post.

use std::collections::HashMap;
use std::io::Read;

use pulldown_cmark::{CowStr, Event, LinkType, Tag, TagEnd};

use super::body::{self, Block};
use super::{xml, Converter, MAX_DOCX_BYTES};

/// The source a chart object gets: no part holds a picture of it.
const CHART: &str = "word/chart";

/// The most the pictures of one document unpack to, all together: every picture of a
/// 20 MiB document, stored as they are.
const MAX_PICTURE_PARTS_BYTES: u64 = 2 * MAX_DOCX_BYTES;

/// Relationship id → image part name (`word/media/image1.png`), for embedded pictures (a
/// picture linked to a file on the writer's computer has none: it is not in the package).
pub(super) fn image_parts(xml: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut images = HashMap::new();
    xml::walk(xml, |node| {
        if let xml::Node::Open(e) = node {
            let image = e.attr("Type").is_some_and(|t| t.ends_with("/image"));
            let external = e.attr("TargetMode") == Some("External");
            if e.local == "Relationship" && image && !external {
                if let (Some(id), Some(target)) = (e.attr("Id"), e.attr("Target")) {
                    images.insert(id.to_string(), part_name(target));
                }
            }
        }
    })?;
    Ok(images)
}

/// A relationship target of `word/document.xml` as a part name: relative to `word/`, or
/// from the package root when it starts with `/` (OPC, ECMA-376 Part 2 §9.3.2).
fn part_name(target: &str) -> String {
    let mut parts: Vec<&str> = match target.strip_prefix('/') {
        Some(_) => Vec::new(),
        None => vec!["word"],
    };
    for piece in target.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The image parts the blocks' pictures show, each read up to the picture limit; all of
/// them together at most [`MAX_PICTURE_PARTS_BYTES`] unpacked.
pub(super) fn picture_parts(
    zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    blocks: &[Block],
    images: &HashMap<String, String>,
) -> HashMap<String, Result<Vec<u8>, String>> {
    let runs = blocks.iter().flat_map(|b| match b {
        Block::Para(p) => p.runs.iter().collect::<Vec<_>>(),
        Block::Table(rows) => rows.iter().flatten().flatten().collect(),
    });
    let mut out = HashMap::new();
    let mut left = MAX_PICTURE_PARTS_BYTES;
    for run in runs {
        if run
            .picture
            .as_ref()
            .is_some_and(|d| d.chart && d.embed.is_none())
        {
            out.insert(
                CHART.to_string(),
                Err("a chart object, which tayori cannot draw: in Word, copy the chart and paste it as a picture (Paste Special → Picture (PNG))".into()),
            );
            continue;
        }
        let Some(name) = run
            .picture
            .as_ref()
            .and_then(|d| d.embed.as_ref())
            .and_then(|id| images.get(id))
        else {
            continue;
        };
        if out.contains_key(name) {
            continue;
        }
        let limit = crate::media::MAX_PICTURE_BYTES.min(left);
        let read = match zip.by_name(name) {
            Ok(file) => {
                let mut bytes = Vec::new();
                match file.take(limit + 1).read_to_end(&mut bytes) {
                    Ok(_) if bytes.len() as u64 > limit => Err(format!(
                        "over {} MiB unpacked: make the picture smaller",
                        limit >> 20
                    )),
                    Ok(_) => {
                        left -= bytes.len() as u64;
                        Ok(bytes)
                    }
                    Err(e) => Err(format!("cannot be unpacked: {e}")),
                }
            }
            Err(e) => Err(format!("the document has no part {name}: {e}")),
        };
        out.insert(name.clone(), read);
    }
    out
}

impl Converter<'_> {
    /// A picture → a Markdown image whose source is its part name (published by `pictures`).
    pub(super) fn picture(
        &self,
        events: &mut Vec<Event<'static>>,
        d: &body::Drawing,
    ) -> Result<(), String> {
        let id = d.embed.as_deref().unwrap_or("");
        let part = match self.images.get(id) {
            Some(part) => part.clone(),
            None if d.chart => CHART.to_string(),
            None => format!("word/{id}"),
        };
        self.spend(part.len() + d.alt.len())?;
        events.push(Event::Start(Tag::Image {
            link_type: LinkType::Inline,
            dest_url: CowStr::from(part),
            title: CowStr::from(""),
            id: CowStr::from(""),
        }));
        if !d.alt.is_empty() {
            events.push(Event::Text(CowStr::from(d.alt.clone())));
        }
        events.push(Event::End(TagEnd::Image));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_relationships_name_their_parts() {
        let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
          <Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="media/image1.png"/>
          <Relationship Id="rId5" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="/word/media/b.jpeg"/>
          <Relationship Id="rId6" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="file:///C:/a.jpg" TargetMode="External"/>
        </Relationships>"#;
        let images = image_parts(rels.as_bytes()).unwrap();
        assert_eq!(
            images.get("rId4").map(String::as_str),
            Some("word/media/image1.png")
        );
        assert_eq!(
            images.get("rId5").map(String::as_str),
            Some("word/media/b.jpeg")
        );
        assert_eq!(images.get("rId6"), None);
        assert_eq!(part_name("../media/x.png"), "media/x.png");
    }
}

//! A thin walk over one XML part of a Word package (quick-xml's namespace-aware reader).
//!
//! Word, LibreOffice, pandoc and Google Docs all bind the WordprocessingML namespace to `w:`,
//! but nothing obliges them to: elements are matched by namespace and local name, never by
//! prefix. Attributes are matched by local name (`w:val`, `r:id`).

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;
use quick_xml::XmlVersion;

/// ECMA-376 transitional and ISO/IEC 29500 strict WordprocessingML namespaces.
const W_NAMESPACES: [&[u8]; 2] = [
    b"http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    b"http://purl.oclc.org/ooxml/wordprocessingml/main",
];

/// The deepest element nesting read: a WordprocessingML body with tables ten deep is some 60
/// elements deep; a deeper part is not a document anyone wrote.
const MAX_XML_DEPTH: usize = 256;

/// One step of the walk.
#[derive(Debug)]
pub(super) enum Node<'a> {
    /// An element opens (an empty element gives `Open` then `Close`).
    Open(&'a Element),
    Close(&'a Element),
    Text(&'a str),
}

/// An element's name and attributes.
#[derive(Debug, Default)]
pub(super) struct Element {
    /// True for WordprocessingML (`w:`) elements.
    pub w: bool,
    pub local: String,
    attrs: Vec<(String, String)>,
}

impl Element {
    /// Whether this is the WordprocessingML element `local`.
    pub fn is(&self, local: &str) -> bool {
        self.w && self.local == local
    }

    /// An attribute's value by local name.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == local)
            .map(|(_, v)| v.as_str())
    }

    /// An on/off property (`<w:b/>`, `<w:b w:val="0"/>`): absent `val` means on.
    pub fn on(&self) -> bool {
        !matches!(self.attr("val"), Some("0" | "false" | "off" | "none"))
    }
}

/// Walks `xml`, calling `f` for each element and text; fails on malformed XML and on elements
/// nested deeper than [`MAX_XML_DEPTH`].
pub(super) fn walk(xml: &[u8], mut f: impl FnMut(Node)) -> Result<(), String> {
    let mut reader = NsReader::from_reader(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut text = String::new();
    loop {
        let (is_w, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (
                matches!(ns, ResolveResult::Bound(Namespace(n)) if W_NAMESPACES.contains(&n)),
                event,
            ),
            Err(e) => {
                return Err(format!(
                    "XML error at byte {}: {e}",
                    reader.buffer_position()
                ))
            }
        };
        match event {
            Event::Start(_) | Event::Empty(_) | Event::End(_) | Event::Eof if !text.is_empty() => {
                f(Node::Text(&text));
                text.clear();
            }
            _ => {}
        }
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let mut el = Element {
                    w: is_w,
                    local: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    attrs: Vec::new(),
                };
                for a in e.attributes().flatten() {
                    let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                    let value = a
                        .decoded_and_normalized_value(XmlVersion::Implicit1_0, reader.decoder())
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    el.attrs.push((key, value));
                }
                if !empty && stack.len() >= MAX_XML_DEPTH {
                    return Err(format!(
                        "elements nested more than {MAX_XML_DEPTH} deep at byte {}",
                        reader.buffer_position()
                    ));
                }
                f(Node::Open(&el));
                if empty {
                    f(Node::Close(&el));
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                if let Some(el) = stack.pop() {
                    f(Node::Close(&el));
                }
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| e.to_string())?;
                match r.resolve_char_ref() {
                    Ok(Some(c)) => text.push(c),
                    _ => {
                        let entity = format!("&{name};");
                        let resolved = quick_xml::escape::unescape(&entity)
                            .map(|c| c.into_owned())
                            .unwrap_or_default();
                        text.push_str(&resolved);
                    }
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

//! HTML helpers shared by the format parsers: escaping, sanitising, linking URLs in text.

use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = maud::Escaper::new(&mut out).write_str(text);
    out
}

/// Sanitises HTML from a post (raw HTML is allowed in Markdown): no `script`/`style`, no event
/// handlers, no `javascript:` URLs, relative URLs made absolute against `base_url`.
pub fn sanitize(html: &str, base_url: &str) -> String {
    let mut builder = ammonia::Builder::default();
    builder.add_generic_attributes(["id"]);
    builder
        .add_tag_attributes("td", ["align"])
        .add_tag_attributes("th", ["align"]);
    if let Ok(base) = ammonia::Url::parse(base_url) {
        builder.url_relative(ammonia::UrlRelative::RewriteWithBase(base));
    }
    let clean = builder.clean(html).to_string();
    // An image without text alternative gets an empty one (decorative), as HTML requires.
    let mut out = String::with_capacity(clean.len());
    let mut rest = clean.as_str();
    while let Some(i) = rest.find("<img ") {
        let end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
        out.push_str(&rest[..i + 5]);
        if !rest[i..end].contains(" alt=\"") {
            out.push_str("alt=\"\" ");
        }
        rest = &rest[i + 5..];
    }
    out.push_str(rest);
    out
}

/// Escapes a line of plain text and turns its http(s) URLs into links. URLs end at the first
/// non-ASCII character, since Japanese text usually follows a URL without a space.
pub fn linkify_line(line: &str) -> String {
    let mut finder = linkify::LinkFinder::new();
    finder
        .kinds(&[linkify::LinkKind::Url])
        .url_can_be_iri(false);
    let mut out = String::with_capacity(line.len());
    for span in finder.spans(line) {
        match span.kind() {
            Some(linkify::LinkKind::Url)
                if span.as_str().starts_with("https://")
                    || span.as_str().starts_with("http://") =>
            {
                let u = escape(span.as_str());
                let _ = write!(out, "<a href=\"{u}\">{u}</a>");
            }
            _ => out.push_str(&escape(span.as_str())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_script_handlers_and_javascript_urls() {
        let dirty = "<script>alert('x')</script><img src=\"x\" onerror=\"alert(1)\"><a href=\"javascript:alert(1)\">a</a><p style=\"color:red\">赤</p>";
        let clean = sanitize(dirty, "https://example.jp/blog/");
        for bad in ["<script", "onerror", "javascript:", "alert("] {
            assert!(!clean.contains(bad), "{bad} in {clean}");
        }
        assert!(
            clean.contains("src=\"https://example.jp/blog/x\""),
            "{clean}"
        );
        assert!(clean.contains("赤"));
    }

    #[test]
    fn links_urls_but_not_the_japanese_after_them() {
        let html = linkify_line("詳しくはhttps://www.courts.go.jp/をご覧ください <b>");
        assert_eq!(
            html,
            "詳しくは<a href=\"https://www.courts.go.jp/\">https://www.courts.go.jp/</a>をご覧ください &lt;b&gt;"
        );
    }
}

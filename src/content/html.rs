//! HTML helpers shared by the format parsers: escaping, sanitising, linking URLs in text, and
//! the one policy on which links a post may carry ([`safe_url`]), for the HTML and the text part.

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::Arc;

use super::pictures::Resolver;

/// The URL schemes a link or image in a post may use; anything else (`javascript:`, `data:`,
/// `file:`, `vbscript:`…) is dropped from both parts of the email, the archive and the feeds.
pub const ALLOWED_SCHEMES: [&str; 4] = ["http", "https", "mailto", "tel"];

/// A post's link target as readers will get it, or `None` when it may not be linked: read as a
/// browser reads it (WHATWG URL: surrounding spaces and C0 controls and every tab or line break
/// inside dropped, the scheme case-insensitive, so `JaVa\tScRiPt:` is `javascript:`), a scheme
/// in [`ALLOWED_SCHEMES`], and a relative link resolved against `base_url` (`site.url`).
pub fn safe_url(url: &str, base_url: &str) -> Option<String> {
    let cleaned: String = url
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let allowed = |u: &url::Url| ALLOWED_SCHEMES.contains(&u.scheme());
    match url::Url::parse(&cleaned) {
        Ok(u) if allowed(&u) => Some(match u.scheme() {
            // `mailto:`/`tel:` as written: the parser would percent-encode Japanese names.
            "mailto" | "tel" => cleaned,
            _ => u.to_string(),
        }),
        Ok(_) => None,
        Err(url::ParseError::RelativeUrlWithoutBase) => url::Url::parse(base_url)
            .and_then(|base| base.join(&cleaned))
            .ok()
            .filter(allowed)
            .map(|u| u.to_string()),
        Err(_) => None,
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = maud::Escaper::new(&mut out).write_str(text);
    out
}

/// Sanitises HTML from a post (raw HTML is allowed in Markdown): no `script`/`style`, no event
/// handlers, every URL through [`safe_url`] (relative ones made absolute against `base_url`).
pub fn sanitize(html: &str, base_url: &str) -> String {
    sanitize_with(html, base_url, None)
}

/// [`sanitize`], with the post's pictures: an `<img>` whose source is a file of the post
/// points at its published copy, with the size it is shown at.
pub(super) fn sanitize_with(
    html: &str,
    base_url: &str,
    pictures: Option<&Arc<Resolver>>,
) -> String {
    let mut builder = ammonia::Builder::default();
    builder.add_generic_attributes(["id"]);
    builder
        .add_tag_attributes("td", ["align"])
        .add_tag_attributes("th", ["align"]);
    builder.url_schemes(ALLOWED_SCHEMES.into_iter().collect());
    if let Ok(base) = ammonia::Url::parse(base_url) {
        builder.url_relative(ammonia::UrlRelative::RewriteWithBase(base));
    }
    let base = base_url.to_string();
    let resolver = pictures.cloned();
    builder.attribute_filter(move |element, attribute, value| {
        if let Some(r) = resolver
            .as_ref()
            .filter(|r| element == "img" && attribute == "src" && r.claims(value))
        {
            r.url(value).map(Cow::Owned)
        } else if matches!(
            attribute,
            "href" | "src" | "cite" | "longdesc" | "poster" | "action"
        ) {
            safe_url(value, &base).map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(value))
        }
    });
    let clean = builder.clean(html).to_string();
    // An image without text alternative gets an empty one (decorative), as HTML requires.
    let mut out = String::with_capacity(clean.len());
    let mut rest = clean.as_str();
    while let Some(i) = rest.find("<img ") {
        let end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
        out.push_str(&rest[..i]);
        let mut tag = rest[i..=end.min(rest.len() - 1)].to_string();
        if !tag.contains(" alt=\"") {
            tag.insert_str(5, "alt=\"\" ");
        }
        match pictures {
            Some(r) => out.push_str(&r.size_img(&tag)),
            None => out.push_str(&tag),
        }
        rest = &rest[(end + 1).min(rest.len())..];
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

    /// The escaping of the patched html5ever (vendor/html5ever/PATCHED.md) writes what 0.40.1
    /// wrote: `&`, `<`, `>` and no-break spaces as references, other U+0080–U+00BF characters
    /// whole, quotes escaped in attributes only — also with brackets far apart or none at all.
    #[test]
    fn sanitize_escapes_ampersands_brackets_and_latin_signs_byte_for_byte() {
        let base = "https://example.jp/";
        assert_eq!(
            sanitize("<p title=\"a&amp;b ° \u{a0}&quot;\">A&amp;B ° · \u{a0} x &lt; y &gt; z \"q\" ©</p>", base),
            "<p title=\"a&amp;b ° &nbsp;&quot;\">A&amp;B ° · &nbsp; x &lt; y &gt; z \"q\" ©</p>"
        );
        let flood = "&°\u{a0}·".repeat(10_000);
        assert_eq!(
            sanitize(&format!("<p>{}</p>", escape(&flood)), base),
            format!("<p>{}</p>", "&amp;°&nbsp;·".repeat(10_000))
        );
        assert_eq!(
            sanitize("&amp;&lt;&amp;&gt;&amp;", base),
            "&amp;&lt;&amp;&gt;&amp;"
        );
    }

    #[test]
    fn only_web_mail_and_phone_links_pass_however_they_are_written() {
        let base = "https://example.jp/blog/";
        for bad in [
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "\u{1}javascript:alert(1)",
            "data:text/html,<b>x</b>",
            "file:///etc/passwd",
            "vbscript:msgbox(1)",
        ] {
            assert_eq!(safe_url(bad, base), None, "{bad:?}");
            let html = sanitize(&format!("<a href=\"{bad}\">x</a><img src=\"{bad}\">"), base);
            assert!(
                !html.contains("href") && !html.contains("src"),
                "{bad:?}: {html}"
            );
        }
        assert_eq!(
            safe_url("../a.html#s1", base).as_deref(),
            Some("https://example.jp/a.html#s1")
        );
        assert_eq!(
            safe_url(" HTTPS://Example.jp/x ", base).as_deref(),
            Some("https://example.jp/x")
        );
        assert_eq!(
            safe_url("mailto:相談@example.jp", base).as_deref(),
            Some("mailto:相談@example.jp")
        );
        assert_eq!(
            safe_url("tel:03-0000-0000", base).as_deref(),
            Some("tel:03-0000-0000")
        );
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

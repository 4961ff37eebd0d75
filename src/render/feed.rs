//! Feeds: RSS 2.0 (`public/feed.xml`, with `content:encoded` and `atom:link rel="self"`),
//! Atom 1.0 (RFC 4287, `public/atom.xml`) and JSON Feed 1.1 (`public/feed.json`).
//!
//! Ids are the permalinks, from the slug, so they never change; `pubDate`/`published` is the
//! publication time and `updated` moves only when the content changed. Every link is absolute,
//! C0 control characters are dropped, and only the newest [`MAX_ITEMS`] entries are listed.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset};

use super::components::{post_body, Placement};
use super::Entry;
use crate::config::Config;

/// How many entries a feed lists.
pub const MAX_ITEMS: usize = 50;

/// The newest entries first, at most [`MAX_ITEMS`].
fn newest(entries: &[Entry]) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = entries.iter().collect();
    v.sort_by(|a, b| {
        b.published
            .cmp(&a.published)
            .then(a.post.slug.cmp(&b.post.slug))
    });
    v.truncate(MAX_ITEMS);
    v
}

/// The post's HTML for a feed or webhook: absolute links, anchors on the permalink.
pub fn content_html(config: &Config, entry: &Entry) -> String {
    let permalink = config.post_url(&entry.post.slug);
    post_body(
        entry,
        &Placement {
            title_level: 1,
            anchor_prefix: "",
            link_base: &permalink,
            title_link: None,
            keep_sections: None,
        },
    )
    .into_string()
}

fn last_updated(entries: &[&Entry]) -> Option<DateTime<FixedOffset>> {
    entries.iter().map(|e| e.updated.max(e.published)).max()
}

/// Renders `feed.xml` (RSS 2.0).
pub fn rss(config: &Config, entries: &[Entry]) -> String {
    let items: Vec<&Entry> = newest(entries);
    let tz = config.tz();
    let mut channel = rss::Channel::default();
    channel.set_title(config.site.title.clone());
    channel.set_link(config.site.url.clone());
    channel.set_description(format!("{}の新着記事", config.site.title));
    channel.set_language(config.site.language.clone());
    channel.set_generator("tayori".to_string());
    if let Some(icon) = &config.site.icon {
        channel.set_image(rss::Image {
            url: icon.clone(),
            title: config.site.title.clone(),
            link: config.site.url.clone(),
            ..rss::Image::default()
        });
    }
    if let Some(d) = last_updated(&items) {
        channel.set_last_build_date(d.with_timezone(&tz).to_rfc2822());
    }
    let mut ns = BTreeMap::new();
    ns.insert(
        "content".to_string(),
        "http://purl.org/rss/1.0/modules/content/".to_string(),
    );
    ns.insert(
        "atom".to_string(),
        rss::extension::atom::NAMESPACE.to_string(),
    );
    channel.set_namespaces(ns);
    let mut self_link = atom_syndication::Link::default();
    self_link.set_href(format!("{}/feed.xml", config.public_base()));
    self_link.set_rel("self");
    self_link.set_mime_type(Some("application/rss+xml".to_string()));
    let mut links = vec![self_link];
    for hub in config.hubs() {
        let mut l = atom_syndication::Link::default();
        l.set_href(hub.clone());
        l.set_rel("hub");
        links.push(l);
    }
    channel.set_atom_ext(rss::extension::atom::AtomExtension::default());
    if let Some(ext) = channel.atom_ext.as_mut() {
        ext.set_links(links);
    }
    let items = items
        .iter()
        .map(|e| {
            let link = config.post_url(&e.post.slug);
            let mut item = rss::Item::default();
            item.set_title(e.post.title.clone());
            item.set_link(link.clone());
            let mut guid = rss::Guid::default();
            guid.set_value(link);
            guid.set_permalink(true);
            item.set_guid(guid);
            item.set_pub_date(e.published.with_timezone(&tz).to_rfc2822());
            // RSS readers take <description> as HTML: the summary is text, so it is escaped.
            item.set_description(crate::content::escape(&e.post.summary()));
            item.set_content(content_html(config, e));
            item.set_categories(
                e.post
                    .tags
                    .iter()
                    .map(|t| {
                        let mut c = rss::Category::default();
                        c.set_name(t.clone());
                        c
                    })
                    .collect::<Vec<_>>(),
            );
            item
        })
        .collect::<Vec<_>>();
    channel.set_items(items);
    drop_c0(channel.to_string())
}

/// Renders `atom.xml` (Atom 1.0): the newest posts; with older years, a `prev-archive` link to
/// the newest year's archive (RFC 5005 §4), so readers that page back get the full history.
pub fn atom(config: &Config, entries: &[Entry]) -> String {
    let base = config.public_base();
    let newest_year = entries
        .iter()
        .map(|e| e.published.with_timezone(&config.tz()).year())
        .max();
    let mut links = vec![(format!("{base}/atom.xml"), "self")];
    links.extend(newest_year.map(|y| (format!("{base}/archive/{y}.xml"), "prev-archive")));
    atom_document(config, newest(entries), &links, false)
}

/// Renders `archive/<year>.xml`: every post of `year`, an RFC 5005 §4 archive document
/// (`fh:archive`, `current`, and `prev-archive` / `next-archive` to the years around it).
pub fn atom_archive(
    config: &Config,
    year: i32,
    entries: &[&Entry],
    older: Option<i32>,
    newer: Option<i32>,
) -> String {
    let base = config.public_base();
    let mut links = vec![
        (format!("{base}/archive/{year}.xml"), "self"),
        (format!("{base}/atom.xml"), "current"),
    ];
    links.extend(older.map(|y| (format!("{base}/archive/{y}.xml"), "prev-archive")));
    links.extend(newer.map(|y| (format!("{base}/archive/{y}.xml"), "next-archive")));
    atom_document(config, entries.to_vec(), &links, true)
}

/// The namespace of RFC 5005's `fh:archive`.
const FEED_HISTORY: &str = "http://purl.org/syndication/history/1.0";

/// An Atom 1.0 document of `items` with the feed links `links` (href, rel).
fn atom_document(
    config: &Config,
    items: Vec<&Entry>,
    links: &[(String, &str)],
    archive: bool,
) -> String {
    use atom_syndication::{Content, Feed, Link, Person, Text};
    let tz = config.tz();
    let at = |d: &DateTime<FixedOffset>| d.with_timezone(&tz).fixed_offset();
    let author = Person {
        name: config
            .site
            .author
            .clone()
            .unwrap_or_else(|| config.site.title.clone()),
        ..Person::default()
    };
    let link = |href: String, rel: &str, mime: Option<&str>| Link {
        href,
        rel: rel.to_string(),
        mime_type: mime.map(str::to_string),
        ..Link::default()
    };
    let mut feed = Feed::default();
    feed.set_id(config.site.url.clone());
    feed.set_title(Text::plain(config.site.title.clone()));
    feed.set_lang(Some(config.site.language.clone()));
    feed.set_authors(vec![author.clone()]);
    feed.set_icon(config.site.icon.clone());
    let mut all = vec![link(
        config.site.url.clone(),
        "alternate",
        Some("text/html"),
    )];
    for (href, rel) in links {
        all.push(link(href.clone(), rel, Some("application/atom+xml")));
    }
    all.extend(config.hubs().iter().map(|h| link(h.clone(), "hub", None)));
    feed.set_links(all);
    if archive {
        let mut ns = BTreeMap::new();
        ns.insert("fh".to_string(), FEED_HISTORY.to_string());
        feed.set_namespaces(ns);
        let mut fh = BTreeMap::new();
        fh.insert(
            "archive".to_string(),
            vec![atom_syndication::extension::Extension {
                name: "fh:archive".to_string(),
                ..Default::default()
            }],
        );
        let mut ext = BTreeMap::new();
        ext.insert("fh".to_string(), fh);
        feed.set_extensions(ext);
    }
    if let Some(d) = last_updated(&items) {
        feed.set_updated(at(&d));
    }
    let entries = items
        .iter()
        .map(|e| {
            let url = config.post_url(&e.post.slug);
            let mut entry = atom_syndication::Entry::default();
            entry.set_id(url.clone());
            entry.set_title(Text::plain(e.post.title.clone()));
            entry.set_links(vec![link(url, "alternate", Some("text/html"))]);
            entry.set_published(Some(at(&e.published)));
            entry.set_updated(at(&e.updated.max(e.published)));
            entry.set_summary(Some(Text::plain(e.post.summary())));
            let mut content = Content::default();
            content.set_content_type(Some("html".to_string()));
            content.set_value(Some(content_html(config, e)));
            entry.set_content(Some(content));
            entry.set_categories(
                e.post
                    .tags
                    .iter()
                    .map(|t| atom_syndication::Category {
                        term: t.clone(),
                        ..Default::default()
                    })
                    .collect::<Vec<_>>(),
            );
            entry
        })
        .collect::<Vec<_>>();
    feed.set_entries(entries);
    drop_c0(feed.to_string())
}

/// Renders `feed.json` (JSON Feed 1.1, <https://www.jsonfeed.org/version/1.1/>): the same
/// items, ids and dates as the other feeds; summaries are text.
pub fn json(config: &Config, entries: &[Entry]) -> String {
    let base = config.public_base();
    let items: Vec<serde_json::Value> = newest(entries)
        .into_iter()
        .map(|e| {
            let url = config.post_url(&e.post.slug);
            serde_json::json!({
                "id": url,
                "url": url,
                "title": drop_c0(e.post.title.clone()),
                "content_html": drop_c0(content_html(config, e)),
                "summary": drop_c0(e.post.summary()),
                "date_published": e.published.to_rfc3339(),
                "date_modified": e.updated.max(e.published).to_rfc3339(),
                "tags": e.post.tags,
                "language": config.site.language,
            })
        })
        .collect();
    let mut feed = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": config.site.title,
        "home_page_url": config.site.url,
        "feed_url": format!("{base}/feed.json"),
        "description": format!("{}の新着記事", config.site.title),
        "language": config.site.language,
        "items": items,
    });
    if let Some(author) = &config.site.author {
        feed["authors"] = serde_json::json!([{ "name": author }]);
    }
    if let Some(icon) = &config.site.icon {
        feed["icon"] = serde_json::json!(icon);
        feed["favicon"] = serde_json::json!(icon);
    }
    if !config.hubs().is_empty() {
        let hubs: Vec<_> = config
            .hubs()
            .iter()
            .map(|h| serde_json::json!({ "type": "WebSub", "url": h }))
            .collect();
        feed["hubs"] = serde_json::json!(hubs);
    }
    let mut out = serde_json::to_string_pretty(&feed).unwrap_or_default();
    out.push('\n');
    out
}

/// Removes C0 control characters other than tab and line breaks (not allowed in XML 1.0).
fn drop_c0(xml: String) -> String {
    // Bytes below 0x80 are whole characters in UTF-8: a scan of the bytes finds every C0
    // character, and a yearly archive of full posts (megabytes) is copied only when it has one.
    let c0 = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f;
    if !xml.bytes().any(c0) {
        return xml;
    }
    xml.chars()
        .filter(|c| !(c.is_ascii() && c0(*c as u8)))
        .collect()
}

//! Rendered output of every sample: email HTML and text snapshots (insta), the feeds read back
//! by an independent parser (feed-rs), and the message headers.

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use tayori::config::Config;
use tayori::content::{self, IngestOptions};
use tayori::render::{self, Entry};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn config() -> Config {
    let path = fixtures().join("tayori.yaml");
    let mut c = tayori::config::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    assert!(c.validate(&path).is_empty());
    c
}

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

/// A sample as a published entry, with a fixed first-seen time for posts without a date.
fn entry(rel: &str) -> Entry {
    let dir = fixtures();
    let base = if rel.starts_with("bad/") {
        dir.join("bad")
    } else {
        dir.join("posts")
    };
    let post = content::ingest(
        &dir.join(rel),
        &base,
        &IngestOptions::from_config(&config()),
    )
    .unwrap();
    let published = post.date.unwrap_or_else(|| at("2026-11-02T07:30:00+09:00"));
    Entry {
        published,
        updated: published,
        post: post.into(),
    }
}

const SAMPLES: &[&str] = &[
    "posts/2026-11-02-youikuhi-points.txt",
    "posts/2026-11-09-menkai-koryu.md",
    "posts/2026-11-16-sumai.docx",
    "posts/notes/2026-11-12-note.md",
    "bad/sjis-greeting.txt",
];

#[test]
fn email_of_each_sample_matches_its_snapshot() {
    let c = config();
    for rel in SAMPLES {
        let e = entry(rel);
        let r = render::email::render(&c, &[&e], render::DEFAULT_CSS).unwrap();
        let name = e.post.slug.clone();
        assert!(
            r.html.len() <= render::email::MAX_HTML_BYTES,
            "{name}: {} bytes",
            r.html.len()
        );
        insta::assert_snapshot!(format!("{name}.html"), r.html);
        insta::assert_snapshot!(format!("{name}.txt"), r.text);
    }
}

#[test]
fn email_inlines_css_and_keeps_media_queries() {
    let e = entry("posts/2026-11-02-youikuhi-points.txt");
    let r = render::email::render(&config(), &[&e], render::DEFAULT_CSS).unwrap();
    assert!(
        r.html.contains("<td class=\"content\" style=\""),
        "content cell not inlined"
    );
    assert!(r.html.contains("line-height: 1.8"));
    assert!(r.html.contains("@media (prefers-color-scheme: dark)"));
    assert!(r.html.contains("@media only screen and (max-width: 620px)"));
    assert!(!r.html.contains("<link"), "no remote loads");
    // TOC links point at the section anchors in the same message.
    assert!(r.html.contains("href=\"#youikuhi-points-s2\""));
    assert!(r.html.contains("id=\"youikuhi-points-s2\""));
    assert!(r.html.contains("class=\"editors-note\""));
    assert!(r.html.contains("lang=\"ja\""));
    assert_eq!(r.subject, e.post.title);
}

#[test]
fn footer_carries_sender_address_contact_and_unsubscribe() {
    let e = entry("posts/2026-11-09-menkai-koryu.md");
    let r = render::email::render(&config(), &[&e], render::DEFAULT_CSS).unwrap();
    for part in [&r.html, &r.text] {
        for want in [
            "ワーキングマザー離婚相談室",
            "東京都渋谷区道玄坂0-0-0",
            "03-0000-0000",
            "info@example.jp",
            "配信の停止",
            render::email::UNSUBSCRIBE_URL,
        ] {
            assert!(part.contains(want), "{want} missing");
        }
    }
    let html = render::email::personalize(
        &r.html,
        "佐藤 <花子>",
        "https://n.example.jp/unsubscribe/t?a=1&b=2",
        true,
    );
    assert!(html.contains("佐藤 &lt;花子&gt; 様"));
    assert!(html.contains("href=\"https://n.example.jp/unsubscribe/t?a=1&amp;b=2\""));
    assert!(!html.contains(render::email::GREETING));
}

#[test]
fn text_part_keeps_link_urls_and_short_lines() {
    let e = entry("posts/2026-11-09-menkai-koryu.md");
    let r = render::email::render(&config(), &[&e], render::DEFAULT_CSS).unwrap();
    assert!(r
        .text
        .contains("家庭裁判所の案内 (https://www.courts.go.jp/)"));
    assert!(r.text.contains("【編集後記】"));
    assert!(r.text.lines().all(|l| l.len() <= 998));
    assert!(!r.text.contains('<'), "no HTML in the text part");
}

#[test]
fn issue_of_several_posts_puts_articles_first_then_notes() {
    let note = entry("posts/notes/2026-11-12-note.md");
    let a = entry("posts/2026-11-02-youikuhi-points.txt");
    let b = entry("posts/2026-11-09-menkai-koryu.md");
    let r = render::email::render(&config(), &[&note, &b, &a], render::DEFAULT_CSS).unwrap();
    let pos = |s: &str| r.text.find(s).unwrap_or_else(|| panic!("{s} missing"));
    assert!(pos(&a.post.title) < pos(&b.post.title));
    assert!(pos(&b.post.title) < pos(&note.post.title));
    assert_eq!(r.subject, format!("{} ほか2件", a.post.title));
}

#[test]
fn raw_html_never_reaches_any_output() {
    let c = config();
    let e = entry("bad/raw-html.md");
    let r = render::email::render(&c, &[&e], render::DEFAULT_CSS).unwrap();
    let entries = vec![e.clone()];
    let outputs = [
        r.html,
        r.text,
        render::feed::rss(&c, &entries),
        render::feed::atom(&c, &entries),
        render::archive::post_page(&c, &e, render::DEFAULT_CSS),
    ];
    for out in outputs {
        for bad in ["<script", "onerror", "javascript:", "alert("] {
            assert!(!out.contains(bad), "{bad} in output");
        }
    }
}

#[test]
fn header_injection_never_reaches_a_header() {
    let c = config();
    let e = entry("bad/header-injection.md");
    let r = render::email::render(&c, &[&e], render::DEFAULT_CSS).unwrap();
    let to = tayori::message::Recipient {
        email: "hanako.sato@example.jp",
        name: "佐藤 花子",
        unsubscribe_url: "https://n.example.jp/unsubscribe/x",
        message_id: "<1@example.jp>".into(),
    };
    let eml = tayori::message::build(&c, &r, &to, std::time::SystemTime::UNIX_EPOCH).unwrap();
    let eml = String::from_utf8(eml).unwrap();
    let headers = &eml[..eml.find("\r\n\r\n").unwrap()];
    assert!(
        !headers
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "{headers}"
    );
    for want in [
        "List-Unsubscribe: <https://n.example.jp/unsubscribe/x>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "List-Id: <newsletter.example.jp>",
        "Message-ID: <1@example.jp>",
        "Reply-To: info@example.jp",
        "multipart/alternative",
    ] {
        assert!(headers.contains(want), "{want} missing in {headers}");
    }
    assert!(eml.contains("Content-Transfer-Encoding: base64"));
}

#[test]
fn feeds_parse_back_with_titles_links_dates_and_content() {
    let c = config();
    let entries: Vec<Entry> = SAMPLES.iter().map(|r| entry(r)).collect();
    let rss = render::feed::rss(&c, &entries);
    assert!(rss.contains("<atom:link href=\"http://127.0.0.1:8080/feed.xml\" rel=\"self\" type=\"application/rss+xml\"/>"));
    assert!(
        rss.contains("<pubDate>Mon, 9 Nov 2026 08:00:00 +0900</pubDate>"),
        "{rss}"
    );
    assert!(rss.contains("<language>ja</language>"));
    {
        use rss::validation::Validate;
        let channel = rss::Channel::read_from(rss.as_bytes()).expect("rss crate reads it back");
        channel.validate().expect("rss crate's validation passes");
    }
    for xml in [rss, render::feed::atom(&c, &entries)] {
        let feed = feed_rs::parser::parse(xml.as_bytes()).expect("feed parses");
        assert_eq!(feed.entries.len(), SAMPLES.len());
        for e in &entries {
            let link = c.post_url(&e.post.slug);
            let item = feed
                .entries
                .iter()
                .find(|i| i.links.iter().any(|l| l.href == link))
                .unwrap_or_else(|| panic!("{link} missing"));
            assert_eq!(item.title.as_ref().unwrap().content, e.post.title);
            let published = item.published.expect("published date");
            assert_eq!(published, e.published.with_timezone(&chrono::Utc));
            let body = item
                .content
                .as_ref()
                .and_then(|c| c.body.clone())
                .expect("content");
            if let Some(s) = e.post.sections.first() {
                assert!(body.contains(&s.title.replace('&', "&amp;")), "{}", s.title);
            }
            assert!(
                !body.contains("href=\"#"),
                "relative anchor in feed content"
            );
        }
    }
}

#[test]
fn feed_ids_come_from_the_slug_not_the_title() {
    let c = config();
    let mut e = entry("posts/2026-11-09-menkai-koryu.md");
    let before = render::feed::atom(&c, std::slice::from_ref(&e));
    std::sync::Arc::make_mut(&mut e.post).title = "別の題名".into();
    let after = render::feed::atom(&c, std::slice::from_ref(&e));
    let id = |x: &str| {
        x[x.find("<entry>").unwrap()..]
            .split("<id>")
            .nth(1)
            .unwrap()
            .split("</id>")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(id(&before), id(&after));
    assert_eq!(
        id(&before),
        "https://example.jp/blog/posts/menkai-koryu.html"
    );
}

#[test]
fn a_long_article_is_trimmed_under_gmails_clipping_limit_with_the_footer_kept() {
    let mut md = String::from("---\ntitle: 長い記事\n---\n\n前書きです。\n\n");
    for i in 1..=60 {
        md.push_str(&format!("## 第{i}節\n\n"));
        md.push_str(&"養育費の取り決めについて、具体的な例を挙げて説明します。".repeat(30));
        md.push_str("\n\n");
    }
    md.push_str("## 編集後記\n\n今週も読んでいただきありがとうございました。\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.md");
    std::fs::write(&path, md).unwrap();
    let post = content::ingest(&path, dir.path(), &IngestOptions::from_config(&config())).unwrap();
    let e = Entry {
        published: at("2026-11-30T09:00:00+09:00"),
        updated: at("2026-11-30T09:00:00+09:00"),
        post: post.into(),
    };
    let r = render::email::render(&config(), &[&e], render::DEFAULT_CSS).unwrap();
    assert!(r.html.len() < 102 * 1024 - 5_000, "{} bytes", r.html.len());
    assert!(
        r.html.contains(render::email::UNSUBSCRIBE_URL),
        "the footer is kept"
    );
    assert!(
        r.html
            .contains("href=\"https://example.jp/blog/posts/long.html\""),
        "a link to the rest"
    );
    assert!(r.html.contains("続きを読む"));
    assert!(
        r.html.contains("id=\"long-s1\"") && !r.html.contains("id=\"long-s60\""),
        "later sections left for the web"
    );
    assert!(
        r.html.contains("今週も読んでいただき"),
        "the editor's note stays"
    );
    assert!(r.text.contains(
        "この記事の続きはウェブでお読みいただけます: https://example.jp/blog/posts/long.html"
    ));
}

//! The web archive at scale: the index shows the newest posts and links a page per year; a
//! build that remembers what it wrote renders only what changed; year pages are served.

mod support;

use std::path::Path;

use chrono::{TimeZone, Utc};
use tayori::content::IngestOptions;
use tayori::publish::{self, Written};
use tayori::store::Store;

fn config(root: &Path) -> tayori::config::Config {
    let path = root.join("tayori.yaml");
    tayori::config::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap()
}

/// `n` posts, one every 20 days going back from 2026-11-01: they span three years.
fn write_posts(root: &Path, n: usize) {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    for i in 0..n {
        let d = start - chrono::Duration::days(20 * i as i64);
        let body = format!("---\ntitle: 記事 {i}\ndate: {d}\n---\n本文 {i}\n");
        std::fs::write(root.join(format!("posts/{d}-post-{i}.md")), body).unwrap();
    }
}

fn build(root: &Path, written: &mut Written) -> publish::Report {
    let c = config(root);
    let store = Store::open(root).unwrap();
    let scan = publish::scan(root, &IngestOptions::from_config(&c)).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
    publish::publish(root, &c, &store, scan, now, written).unwrap()
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join("public").join(rel)).unwrap()
}

#[test]
fn the_index_shows_the_newest_twenty_and_links_a_page_for_each_year() {
    let dir = support::fresh_folder(None);
    let root = dir.path();
    write_posts(root, 45);
    build(root, &mut Written::default());
    let index = read(root, "index.html");
    assert_eq!(index.matches("class=\"post\"").count(), 20);
    assert!(index.contains("記事 0<") && index.contains("記事 19<") && !index.contains("記事 20<"));
    for (year, count) in [(2026, 16), (2025, 18), (2024, 11)] {
        assert!(
            index.contains(&format!("/archive/{year}.html\">{year}年</a> ({count})")),
            "{year}: {index}"
        );
    }
    let y2025 = read(root, "archive/2025.html");
    assert_eq!(y2025.matches("class=\"date\"").count(), 18);
    assert!(y2025.contains("<strong>2025年</strong>"));
    // Newest first within the year.
    let first = y2025.find("記事 16<").unwrap();
    assert!(first < y2025.find("記事 33<").unwrap());
}

#[test]
fn a_build_that_remembers_what_it_wrote_renders_only_what_changed() {
    let dir = support::fresh_folder(None);
    let root = dir.path();
    write_posts(root, 40);
    let mut written = Written::default();
    build(root, &mut written);
    // A page changed behind our back is not even looked at by a build that remembers…
    let untouched = root.join("public/posts/post-7.html");
    std::fs::write(&untouched, "marker").unwrap();
    let edited = std::fs::read_dir(root.join("posts"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("-post-3.md"))
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(&edited, text.replace("本文 3", "本文 3 (追記)")).unwrap();
    let report = build(root, &mut written);
    assert_eq!(report.updated, ["post-3"]);
    assert!(read(root, "posts/post-3.html").contains("追記"));
    assert_eq!(read(root, "posts/post-7.html"), "marker");
    // …while a build without that memory (the `build` command, a restart) renders everything.
    build(root, &mut Written::default());
    assert!(read(root, "posts/post-7.html").contains("記事 7"));

    // A year that loses its last post loses its page; a deleted post loses its page.
    for e in std::fs::read_dir(root.join("posts")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("2025-") || name.ends_with("-post-0.md") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    build(root, &mut written);
    assert!(!root.join("public/archive/2025.html").exists());
    assert!(root.join("public/archive/2024.html").exists());
    assert!(!root.join("public/posts/post-0.html").exists());
    assert!(!read(root, "index.html").contains("2025年"));
}

//! Tools we did not write judge our output: the Nu HTML Checker (vnu.jar) for every sample's
//! email and archive pages, and Python's feedparser for the feeds.
//!
//! `scripts/test` installs them and sets `TAYORI_VNU_JAR`, `TAYORI_PYTHON`, … ; these tests are
//! `#[ignore]`d with the reason, so a plain `cargo test` lists them as not run.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::fixtures;

/// A tool scripts/test installs (tests that need one are `#[ignore]`d with the reason).
fn tool(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => panic!("{var} is not set: run scripts/test, which installs the validators"),
    }
}

/// A newsletter folder of every sample (good and accepted-bad), built with the real binary.
fn built_samples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    std::fs::copy(f.join("tayori.yaml"), dir.path().join("tayori.yaml")).unwrap();
    let posts = dir.path().join("posts");
    std::fs::create_dir_all(posts.join("notes")).unwrap();
    for rel in [
        "posts/2026-11-02-youikuhi-points.txt",
        "posts/2026-11-09-menkai-koryu.md",
        "posts/notes/2026-11-12-note.md",
        "bad/sjis-greeting.txt",
        "bad/raw-html.md",
        "bad/header-injection.md",
    ] {
        let name = rel
            .strip_prefix("posts/")
            .unwrap_or_else(|| rel.strip_prefix("bad/").unwrap());
        std::fs::copy(f.join(rel), posts.join(name)).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_tayori");
    let o = Command::new(bin)
        .arg("--root")
        .arg(dir.path())
        .arg("build")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for post in tayori::content::list_post_files(&posts).unwrap() {
        let o = Command::new(bin)
            .arg("--root")
            .arg(dir.path())
            .arg("preview")
            .arg(&post)
            .arg("--out")
            .arg(dir.path().join("preview"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    dir
}

fn html_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            html_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "html") {
            out.push(p);
        }
    }
}

#[test]
#[ignore = "needs the Nu HTML Checker: scripts/test installs it and runs ignored tests"]
fn every_email_and_archive_page_passes_the_nu_html_checker() {
    let Some(jar) = tool("TAYORI_VNU_JAR") else {
        return;
    };
    let dir = built_samples();
    let mut files = Vec::new();
    html_files(&dir.path().join("preview"), &mut files);
    let emails = files.len();
    html_files(&dir.path().join("public"), &mut files);
    assert_eq!(emails, 6, "one email per sample");
    let report = support::nu_errors(&jar, &files);
    assert!(report.is_empty(), "Nu HTML Checker errors:\n{report}");
}

#[derive(serde::Deserialize)]
struct Seen {
    bozo: bool,
    bozo_exception: String,
    version: String,
    entries: Vec<SeenEntry>,
}

#[derive(serde::Deserialize)]
struct SeenEntry {
    id: Option<String>,
    title: Option<String>,
    link: Option<String>,
    published: Option<String>,
    content: String,
}

#[test]
#[ignore = "needs feedparser: scripts/test installs it and runs ignored tests"]
fn feedparser_sees_the_titles_links_and_dates_we_wrote() {
    let Some(python) = tool("TAYORI_PYTHON") else {
        return;
    };
    let dir = built_samples();
    let rss = dir.path().join("public/feed.xml");
    let atom = dir.path().join("public/atom.xml");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_feeds.py");
    let o = Command::new(&python)
        .arg(&script)
        .arg(&rss)
        .arg(&atom)
        .output()
        .expect("python runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: std::collections::HashMap<String, Seen> = serde_json::from_slice(&o.stdout).unwrap();
    let rss_seen = &seen[rss.to_str().unwrap()];
    let atom_seen = &seen[atom.to_str().unwrap()];
    assert_eq!(rss_seen.version, "rss20");
    assert_eq!(atom_seen.version, "atom10");
    for s in [rss_seen, atom_seen] {
        assert!(
            !s.bozo,
            "feedparser found the feed malformed: {}",
            s.bozo_exception
        );
        assert_eq!(s.entries.len(), 6);
        let e = s
            .entries
            .iter()
            .find(|e| e.link.as_deref() == Some("https://example.jp/blog/posts/menkai-koryu.html"))
            .expect("the Markdown sample");
        assert_eq!(
            e.title.as_deref(),
            Some("面会交流のルールを決めるときに考えておきたいこと")
        );
        assert_eq!(e.id.as_deref(), e.link.as_deref(), "ids are the permalinks");
        assert!(e.content.contains("決めておきたい項目"));
        assert!(!e.content.contains("<script"));
    }
    let published = |s: &Seen| {
        s.entries
            .iter()
            .find(|e| {
                e.link
                    .as_deref()
                    .is_some_and(|l| l.ends_with("menkai-koryu.html"))
            })
            .and_then(|e| e.published.clone())
            .unwrap()
    };
    assert_eq!(published(rss_seen), "Mon, 9 Nov 2026 08:00:00 +0900");
    assert_eq!(published(atom_seen), "2026-11-09T08:00:00+09:00");
}

#[test]
#[ignore = "needs SpamAssassin: scripts/test installs it and runs ignored tests"]
fn spamassassin_scores_every_sample_message_at_most_one() {
    let Some(sa) = tool("TAYORI_SPAMASSASSIN") else {
        return;
    };
    let dir = built_samples();
    let mut emls: Vec<PathBuf> = std::fs::read_dir(dir.path().join("preview"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    emls.sort();
    assert_eq!(emls.len(), 6);
    for eml in emls {
        let support::SpamVerdict { score, rules, .. } = support::spamassassin(&sa, &eml);
        eprintln!(
            "{}: {score} {rules:?}",
            eml.file_name().unwrap().to_string_lossy()
        );
        assert!(
            score <= 1.0,
            "{}: score {score}, rules {rules:?}",
            eml.display()
        );
        for r in &rules {
            let forbidden = r.starts_with("MISSING_")
                || r.starts_with("MIME_")
                || r == "MPART_ALT_DIFF"
                || r == "HTML_FONT_LOW_CONTRAST";
            assert!(!forbidden, "{}: {r} fired ({rules:?})", eml.display());
        }
    }
}

#[test]
#[ignore = "needs Chromium and playwright-core: scripts/test installs them and runs ignored tests"]
fn emails_render_in_chromium_without_overflow_or_low_contrast() {
    let Some(tools) = tool("TAYORI_NODE_TOOLS") else {
        return;
    };
    let dir = built_samples();
    let mut files = Vec::new();
    html_files(&dir.path().join("preview"), &mut files);
    let copy = support::browser_script(&tools, "screenshots.mjs");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let o = Command::new("node")
        .arg(&copy)
        .arg(&out)
        .args(&files)
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "Chromium found:\n{report}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        report.contains(&format!("{} screenshots", files.len() * 4)),
        "{report}"
    );
}

#[test]
#[ignore = "needs feedparser: scripts/test installs it and runs ignored tests"]
fn feeds_carry_the_icon_and_page_back_through_yearly_archives() {
    let python = tool("TAYORI_PYTHON").unwrap();
    let dir = support::fresh_folder(None);
    let root = dir.path();
    let cfg = root.join("tayori.yaml");
    let yaml = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("  author:", "  icon: images/icon.png\n  author:");
    std::fs::write(&cfg, yaml).unwrap();
    for (slug, date) in [
        ("old", "2024-06-03"),
        ("mid", "2025-06-02"),
        ("new", "2026-06-01"),
    ] {
        std::fs::write(
            root.join("posts").join(format!("{slug}.md")),
            format!("---\ntitle: {slug} の記事\ndate: {date}\n---\n\n本文。\n"),
        )
        .unwrap();
    }
    let o = support::tayori(root, &["build"]);
    assert!(o.status.success(), "{}", support::text(&o.stderr));
    let public = root.join("public");
    let feeds = ["feed.xml", "atom.xml", "archive/2025.xml"].map(|f| public.join(f));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_feeds.py");
    let o = Command::new(&python)
        .arg(&script)
        .args(&feeds)
        .output()
        .expect("python runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let of = |f: &PathBuf| &seen[f.to_str().unwrap()];
    let icon = "https://example.jp/blog/images/icon.png";
    for f in &feeds {
        assert_eq!(of(f)["bozo"], false, "{f:?}: {}", of(f)["bozo_exception"]);
    }
    assert_eq!(of(&feeds[0])["image"], icon, "RSS <image>");
    assert_eq!(of(&feeds[1])["icon"], icon, "Atom <icon>");
    let link = |f: &PathBuf, rel: &str| -> Option<String> {
        of(f)["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l[0] == rel)
            .and_then(|l| l[1].as_str().map(str::to_string))
    };
    assert_eq!(
        link(&feeds[1], "prev-archive").as_deref(),
        Some("http://127.0.0.1:8080/archive/2026.xml"),
        "the current feed points at the newest archive (RFC 5005 §4)"
    );
    let y2025 = &feeds[2];
    assert_eq!(
        link(y2025, "prev-archive").as_deref(),
        Some("http://127.0.0.1:8080/archive/2024.xml")
    );
    assert_eq!(
        link(y2025, "next-archive").as_deref(),
        Some("http://127.0.0.1:8080/archive/2026.xml")
    );
    assert_eq!(
        link(y2025, "current").as_deref(),
        Some("http://127.0.0.1:8080/atom.xml")
    );
    let titles: Vec<&str> = of(y2025)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["mid の記事"]);
    let raw = std::fs::read_to_string(y2025).unwrap();
    assert!(
        raw.contains("<fh:archive") && raw.contains("http://purl.org/syndication/history/1.0"),
        "{raw}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(public.join("feed.json")).unwrap()).unwrap();
    assert_eq!(json["icon"], icon);
    assert_eq!(json["favicon"], icon);
    let index = std::fs::read_to_string(public.join("index.html")).unwrap();
    assert!(
        index.contains(&format!("<link rel=\"icon\" href=\"{icon}\">")),
        "{index}"
    );
}

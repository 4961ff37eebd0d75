//! Searching the archive in Japanese over real HTTP (`GET /search?q=…`) against the binary:
//! two-character words, several words, full- and half-width forms, newest first, no false hits,
//! and queries that are long or full of SQL and FTS syntax.

mod support;

use std::path::Path;

use support::*;

fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = support::http().get(url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn post(root: &Path, slug: &str, date: &str, title: &str, body: &str) {
    std::fs::write(
        root.join("posts").join(format!("{slug}.md")),
        format!("---\ntitle: {title}\ndate: {date}\n---\n\n{body}\n"),
    )
    .unwrap();
}

/// The titles on a result page, in order.
fn titles(page: &str) -> Vec<String> {
    page.split("<article class=\"search-hit\"><h2><a href=\"")
        .skip(1)
        .map(|s| {
            s.split('>')
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn search(base: &str, q: &str) -> Vec<String> {
    let url = url::Url::parse_with_params(&format!("{base}/search"), [("q", q)]).unwrap();
    let (status, page) = get(url.as_str());
    assert_eq!(status, 200, "{q}: {page}");
    titles(&page)
}

fn folder() -> tempfile::TempDir {
    let dir = fresh_folder(None);
    let root = dir.path();
    post(
        root,
        "a",
        "2026-01-05",
        "離婚の手続きの流れ",
        "協議離婚と調停離婚の違いを説明します。",
    );
    post(
        root,
        "b",
        "2026-02-02",
        "子どもの親権について",
        "親権者を決めるときに考えること。",
    );
    post(
        root,
        "c",
        "2026-03-02",
        "離婚と親権と養育費",
        "養育費の算定表の見方。ＤＶの相談もお受けします。",
    );
    post(
        root,
        "d",
        "2026-04-06",
        "事務所のお知らせ",
        "年末年始の休業日のお知らせです。ﾘｺﾝの相談は電話で。",
    );
    let o = tayori(root, &["build"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    dir
}

#[test]
fn two_character_words_find_every_post_that_has_them_newest_first() {
    let dir = folder();
    let (_d, base) = run_daemon(dir.path(), &[]);
    assert_eq!(
        search(&base, "離婚"),
        ["離婚と親権と養育費", "離婚の手続きの流れ"]
    );
    assert_eq!(
        search(&base, "親権"),
        ["離婚と親権と養育費", "子どもの親権について"]
    );
    assert_eq!(search(&base, "養育費"), ["離婚と親権と養育費"]);
    assert_eq!(
        search(&base, "調停離婚"),
        ["離婚の手続きの流れ"],
        "four characters"
    );
    assert_eq!(
        search(&base, "離婚　親権"),
        ["離婚と親権と養育費"],
        "several words, split by a full-width space, mean all of them"
    );
    assert!(search(&base, "相続").is_empty(), "no false hits");
}

#[test]
fn full_and_half_width_forms_and_letter_case_match_each_other() {
    let dir = folder();
    let (_d, base) = run_daemon(dir.path(), &[]);
    assert_eq!(
        search(&base, "dv"),
        ["離婚と親権と養育費"],
        "ＤＶ in the text"
    );
    assert_eq!(search(&base, "ＤＶ"), ["離婚と親権と養育費"]);
    assert_eq!(
        search(&base, "リコン"),
        ["事務所のお知らせ"],
        "ﾘｺﾝ in the text"
    );
}

#[test]
fn long_queries_and_sql_or_fts_syntax_are_only_text() {
    let dir = folder();
    let (_d, base) = run_daemon(dir.path(), &[]);
    for q in [
        "%",
        "_",
        "*",
        "' OR 1=1 --",
        "\" OR \"\"=\"",
        "離婚 OR 相続",
        "NEAR(離婚 親権)",
        "離婚*",
        "^離婚",
        "'); DROP TABLE search_docs; --",
    ] {
        assert!(search(&base, q).is_empty(), "{q}");
    }
    assert!(
        search(&base, &"離婚".repeat(500)).is_empty(),
        "1,000 characters"
    );
    assert_eq!(search(&base, "離婚").len(), 2, "the index is still there");
    let (status, page) = get(&format!("{base}/search"));
    assert_eq!(status, 200);
    assert!(
        page.contains("name=\"q\""),
        "an empty query shows the form: {page}"
    );
}

#[test]
fn an_edit_or_a_deletion_reaches_the_index_at_the_next_build() {
    let dir = folder();
    let root = dir.path();
    post(
        root,
        "b",
        "2026-02-02",
        "子どもの親権について",
        "面会交流の決め方。",
    );
    std::fs::remove_file(root.join("posts/a.md")).unwrap();
    assert!(tayori(root, &["build"]).status.success());
    let (_d, base) = run_daemon(root, &[]);
    assert_eq!(search(&base, "面会交流"), ["子どもの親権について"]);
    assert_eq!(search(&base, "離婚"), ["離婚と親権と養育費"]);
}

#[test]
fn every_archive_page_has_the_search_box() {
    let dir = folder();
    let index = std::fs::read_to_string(dir.path().join("public/index.html")).unwrap();
    let post = std::fs::read_to_string(dir.path().join("public/posts/c.html")).unwrap();
    for page in [index, post] {
        assert!(
            page.contains("role=\"search\"") && page.contains("/search\""),
            "{page}"
        );
    }
}

#[test]
#[ignore = "needs the Nu HTML Checker (Java): scripts/test installs it and runs ignored tests"]
fn the_search_page_is_valid_html() {
    let jar = std::env::var("TAYORI_VNU_JAR").expect("TAYORI_VNU_JAR");
    let dir = folder();
    let (_d, base) = run_daemon(dir.path(), &[]);
    let url = url::Url::parse_with_params(&format!("{base}/search"), [("q", "離婚 親権")]).unwrap();
    let (_, page) = get(url.as_str());
    let file = dir.path().join("search.html");
    std::fs::write(&file, page).unwrap();
    let errors = nu_errors(&jar, &[file]);
    assert!(errors.is_empty(), "{errors}");
}

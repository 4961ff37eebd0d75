//! The `tayori` binary run as a user would: `init`, `check`, `build`, `preview` on real
//! folders, with the SQLite store and `public/` inspected from outside.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{fixtures, tayori};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A newsletter folder made of the samples; with `bad`, the bad inputs sit among the posts.
fn newsletter(bad: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    std::fs::copy(f.join("tayori.yaml"), dir.path().join("tayori.yaml")).unwrap();
    copy_dir(&f.join("posts"), &dir.path().join("posts"));
    copy_dir(&f.join("subscribers"), &dir.path().join("subscribers"));
    if bad {
        copy_dir(&f.join("bad"), &dir.path().join("posts"));
    }
    dir
}

#[test]
fn check_passes_on_the_samples_without_creating_the_store() {
    let dir = newsletter(false);
    let o = tayori(dir.path(), &["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("4 posts, 5 subscribers"));
    assert!(
        !dir.path().join("state").exists(),
        "check must not create the store"
    );
}

#[test]
fn check_names_each_bad_file_with_its_line() {
    let dir = newsletter(true);
    let o = tayori(dir.path(), &["check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let posts = dir.path().join("posts");
    let line = |name: &str| {
        let prefix = posts.join(name).display().to_string();
        err.lines()
            .find(|l| l.starts_with(&prefix))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{name} not reported:\n{err}"))
    };
    assert!(line("unclosed-front-matter.md")
        .contains(":1: front matter opened on line 1 is never closed"));
    assert!(line("bad-date.md").contains(":3: `date` is not a date"));
    assert!(line("empty.md").contains(": empty post"));
    for quiet in [
        "sjis-greeting.txt",
        "raw-html.md",
        "header-injection.md",
        "photo.png",
        "2026-11-30.md~",
    ] {
        assert!(!err.contains(quiet), "{quiet} reported:\n{err}");
    }
    let problems = err.lines().filter(|l| !l.contains(": warning: ")).count();
    assert_eq!(problems, 3, "{err}");
}

#[test]
fn check_reports_bad_config_key_and_subscriber_row() {
    let dir = newsletter(false);
    let cfg = dir.path().join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("  phone:", "  fax: 1\n  phone:");
    std::fs::write(&cfg, text).unwrap();
    std::fs::write(
        dir.path().join("subscribers/extra.csv"),
        "email,name\nok@example.jp,A\nnot-an-address,B\n",
    )
    .unwrap();
    let o = tayori(dir.path(), &["check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.lines()
            .any(|l| l.contains("tayori.yaml:") && l.contains("fax")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("extra.csv:3:") && l.contains("not-an-address")),
        "{err}"
    );
}

#[test]
fn build_publishes_good_posts_beside_bad_ones_and_exits_1() {
    let dir = newsletter(true);
    let o = tayori(dir.path(), &["build"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let public = dir.path().join("public");
    for slug in [
        "youikuhi-points",
        "menkai-koryu",
        "sumai",
        "note",
        "sjis-greeting",
        "raw-html",
        "header-injection",
    ] {
        assert!(
            public.join(format!("posts/{slug}.html")).exists(),
            "{slug} not built"
        );
    }
    let rss = std::fs::read_to_string(public.join("feed.xml")).unwrap();
    assert!(rss.contains("養育費の取り決めで後から困らないための4つのポイント"));
    assert!(stderr(&o).contains("bad-date.md:3:"));

    // The first build creates the store: everything there now is back catalogue.
    let db = rusqlite::Connection::open(dir.path().join("state/tayori.sqlite3")).unwrap();
    let rows: Vec<(String, String)> = db
        .prepare("SELECT slug, announced FROM posts ORDER BY slug")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 7);
    assert!(rows.iter().all(|(_, a)| a == "back_catalogue"), "{rows:?}");
}

#[test]
fn rebuilding_keeps_dates_and_moves_updated_only_on_change() {
    let dir = newsletter(false);
    assert!(tayori(dir.path(), &["build"]).status.success());
    let atom1 = std::fs::read_to_string(dir.path().join("public/atom.xml")).unwrap();
    let rss1 = std::fs::read_to_string(dir.path().join("public/feed.xml")).unwrap();
    assert!(tayori(dir.path(), &["build"]).status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("public/feed.xml")).unwrap(),
        rss1
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("public/atom.xml")).unwrap(),
        atom1
    );

    // A new post after the first build waits for the next issue.
    std::fs::write(
        dir.path().join("posts/later.md"),
        "---\ntitle: 後から\n---\n本文\n",
    )
    .unwrap();
    let md = dir.path().join("posts/2026-11-09-menkai-koryu.md");
    let text = std::fs::read_to_string(&md)
        .unwrap()
        .replace("寒くなってきました", "冷えてきました");
    std::fs::write(&md, text).unwrap();
    assert!(tayori(dir.path(), &["build"]).status.success());
    let atom2 = std::fs::read_to_string(dir.path().join("public/atom.xml")).unwrap();
    let feed = feed_rs::parser::parse(atom2.as_bytes()).unwrap();
    let e = feed
        .entries
        .iter()
        .find(|e| e.id.ends_with("menkai-koryu.html"))
        .unwrap();
    assert_eq!(
        e.published.unwrap().to_rfc3339(),
        "2026-11-08T23:00:00+00:00"
    );
    assert!(
        e.updated.unwrap() > e.published.unwrap(),
        "updated must move on edit"
    );
    let db = rusqlite::Connection::open(dir.path().join("state/tayori.sqlite3")).unwrap();
    let announced: String = db
        .query_row(
            "SELECT announced FROM posts WHERE slug = 'later'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(announced, "pending");
}

#[test]
fn deleting_a_post_removes_it_from_feeds_and_archive() {
    let dir = newsletter(false);
    assert!(tayori(dir.path(), &["build"]).status.success());
    std::fs::remove_file(dir.path().join("posts/notes/2026-11-12-note.md")).unwrap();
    assert!(tayori(dir.path(), &["build"]).status.success());
    assert!(!dir.path().join("public/posts/note.html").exists());
    let rss = std::fs::read_to_string(dir.path().join("public/feed.xml")).unwrap();
    assert!(!rss.contains("年末年始の営業について"));
}

#[test]
fn future_dated_post_waits_for_its_date() {
    let dir = newsletter(false);
    std::fs::write(
        dir.path().join("posts/future.md"),
        "---\ntitle: 未来の記事\ndate: 2099-01-01\n---\n本文\n",
    )
    .unwrap();
    let o = tayori(dir.path(), &["build"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains("scheduled: future at 2099-01-01T00:00:00+09:00"));
    assert!(!dir.path().join("public/posts/future.html").exists());
}

#[test]
fn preview_writes_html_text_and_eml_for_one_post() {
    let dir = newsletter(false);
    let out = dir.path().join("out");
    let file = dir.path().join("posts/2026-11-02-youikuhi-points.txt");
    let o = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .arg("--root")
        .arg(dir.path())
        .arg("preview")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(out.join("youikuhi-points.html")).unwrap();
    let text = std::fs::read_to_string(out.join("youikuhi-points.txt")).unwrap();
    let eml = std::fs::read_to_string(out.join("youikuhi-points.eml")).unwrap();
    assert!(html.contains("<h1") && html.contains("1.養育費の相場は「算定表」から考える"));
    assert!(html.contains(" style=\""), "CSS is inlined");
    assert!(text.contains("【編集後記】"));
    assert!(
        !html.contains("%%TAYORI_") && !text.contains("%%TAYORI_") && !eml.contains("%%TAYORI_")
    );
    assert!(eml.contains("Subject: =?utf-8?"), "RFC 2047 subject");
    assert!(eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    assert!(
        !dir.path().join("state").exists(),
        "preview must not create the store"
    );
}

#[test]
fn preview_of_an_invalid_post_exits_1_naming_the_file() {
    let dir = newsletter(true);
    let o = tayori(
        dir.path(),
        &[
            "preview",
            dir.path().join("posts/bad-date.md").to_str().unwrap(),
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("bad-date.md:3: `date` is not a date"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn init_makes_a_folder_that_checks_and_builds() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("news");
    let o = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let c = tayori(&dir, &["check"]);
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(tayori(&dir, &["build"]).status.success());
    assert!(dir.join("public/posts/welcome.html").exists());
    // The store existed before the sample post: the sample is the first issue, not back catalogue.
    let db = rusqlite::Connection::open(dir.join("state/tayori.sqlite3")).unwrap();
    let announced: String = db
        .query_row(
            "SELECT announced FROM posts WHERE slug = 'welcome'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(announced, "pending");
    let ignore = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
    for private in ["state/", "outbox/", "public/"] {
        assert!(
            ignore.lines().any(|l| l == private),
            "{private} kept out of git"
        );
    }
    // A second init refuses to overwrite.
    let again = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn a_slug_used_twice_skips_the_later_file_with_a_message() {
    let dir = newsletter(false);
    std::fs::write(
        dir.path().join("posts/a.md"),
        "---\ntitle: A\nslug: same\n---\nA\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("posts/b.md"),
        "---\ntitle: B\nslug: same\n---\nB\n",
    )
    .unwrap();
    let o = tayori(dir.path(), &["build"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("b.md: slug `same` is already used by"),
        "{err}"
    );
    let page = std::fs::read_to_string(dir.path().join("public/posts/same.html")).unwrap();
    assert!(page.contains("<title>A | "), "the first file wins");
}

#[test]
fn status_into_a_reader_that_stops_early_ends_quietly() {
    let dir = newsletter(false);
    let mut rows = String::from("email,name\n");
    for i in 0..5000 {
        rows.push_str(&format!("not-an-address-{i},x\n"));
    }
    std::fs::write(dir.path().join("subscribers/broken.csv"), rows).unwrap();
    assert!(tayori(dir.path(), &["build"]).status.code().is_some());
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --root {} status | head -1",
            env!("CARGO_BIN_EXE_tayori"),
            dir.path().display()
        ))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
}

#[test]
fn help_describes_every_argument_once() {
    let help = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_tayori"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let preview = help(&["preview"]);
    assert!(preview.contains("<FILE>  The post file"), "{preview}");
    assert_eq!(preview.matches("default").count(), 2, "{preview}");
    assert!(help(&["init"]).contains("<DIR>  The folder to create"));
    assert!(help(&["serve"]).contains("/preview"));
    assert!(help(&["send"]).contains("--retry-failed"));
}

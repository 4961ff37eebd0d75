//! Word documents made by tools we did not write — pandoc, LibreOffice and python-docx (with
//! Japanese Word's style ids) — become posts by their style names, and a Word document that is
//! still being saved is reported, never read half-way.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use tayori::content::{self, IngestError, IngestOptions, Post};

fn options() -> IngestOptions {
    IngestOptions::new("https://example.jp/blog/")
}

fn ingest(path: &Path) -> Result<Post, IngestError> {
    content::ingest(path, path.parent().unwrap(), &options())
}

/// The Markdown the other tools start from: Japanese headings, lists, a table, a link, bold,
/// italic and an editor's note.
const ARTICLE: &str = "---
title: 離婚後の子どもの学校 ~ 転校の判断
---

働くお母さまの為の離婚相談

転校は子どもの生活を**大きく**変えます。詳しくは[裁判所の案内](https://www.courts.go.jp/)をご覧ください。

# 1.転校するかどうか

*学期の途中*での転校は負担が大きくなります。

## (1)時期を選ぶ

- 学期末
- 長期休暇
    - 夏休み
- 進級のとき

1. 学校に相談する
2. 書類を準備する

# 2.費用の目安

| 費目 | 目安 |
|------|------|
| 制服 | 3万円 |
| 教材 | 1万円 |

【編集後記】

今週は学校のご相談が続きました。

寒さにお気をつけください。
";

/// The post as one readable document, for snapshots.
fn describe(p: &Post) -> String {
    let mut s = format!(
        "title: {}\ntags: {:?}\n\n[lead]\n{}\n{}\n",
        p.title, p.tags, p.lead.html, p.lead.text
    );
    for sec in &p.sections {
        s.push_str(&format!(
            "[{} level {}] {}\n{}\n{}\n",
            sec.id, sec.level, sec.title, sec.body.html, sec.body.text
        ));
    }
    if let Some(n) = &p.editors_note {
        s.push_str(&format!("[editor's note]\n{}\n{}", n.html, n.text));
    }
    s
}

fn article_md(dir: &Path) -> PathBuf {
    let md = dir.join("article.md");
    std::fs::write(&md, ARTICLE).unwrap();
    md
}

fn assert_article(p: &Post) {
    assert_eq!(p.title, "離婚後の子どもの学校 ~ 転校の判断");
    let sections = support::section_titles(p);
    assert_eq!(
        sections,
        [
            (1, "1.転校するかどうか"),
            (2, "(1)時期を選ぶ"),
            (1, "2.費用の目安")
        ]
    );
    assert!(
        p.lead.html.contains("<strong>大きく</strong>"),
        "{}",
        p.lead.html
    );
    assert!(
        p.lead.html.contains("href=\"https://www.courts.go.jp/\""),
        "{}",
        p.lead.html
    );
    assert!(p.sections[0].body.html.contains("<em>学期の途中</em>"));
    let lists = &p.sections[1].body;
    assert!(
        lists
            .text
            .contains("・学期末\n・長期休暇\n  ・夏休み\n・進級のとき"),
        "{}",
        lists.text
    );
    assert!(
        lists.text.contains("1. 学校に相談する\n2. 書類を準備する"),
        "{}",
        lists.text
    );
    assert!(lists.html.contains("<ol>"), "{}", lists.html);
    let table = &p.sections[2].body;
    assert!(
        table
            .text
            .contains("費目 | 目安\n制服 | 3万円\n教材 | 1万円"),
        "{}",
        table.text
    );
    let note = p.editors_note.as_ref().expect("editor's note");
    assert_eq!(
        note.text,
        "今週は学校のご相談が続きました。\n\n寒さにお気をつけください。\n"
    );
}

#[test]
#[ignore = "needs pandoc (Debian): scripts/test installs it and runs ignored tests"]
fn a_document_pandoc_wrote_becomes_the_same_article() {
    let dir = tempfile::tempdir().unwrap();
    let docx = dir.path().join("2026-11-30-tenko.docx");
    support::run_ok(
        Command::new("pandoc")
            .arg(article_md(dir.path()))
            .arg("-o")
            .arg(&docx),
    );
    let p = ingest(&docx).unwrap();
    assert_eq!(p.slug, "tenko");
    assert_article(&p);
    insta::assert_snapshot!("pandoc", describe(&p));
}

#[test]
#[ignore = "needs pandoc and LibreOffice (Debian): scripts/test installs them and runs ignored tests"]
fn a_document_libreoffice_wrote_becomes_the_same_article() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("tenko.html");
    support::run_ok(
        Command::new("pandoc")
            .arg(article_md(dir.path()))
            .args(["-s", "-o"])
            .arg(&html),
    );
    support::run_ok(
        Command::new("soffice")
            .env("HOME", dir.path())
            .args([
                "--headless",
                "--convert-to",
                "docx:MS Word 2007 XML",
                "--outdir",
            ])
            .arg(dir.path().join("out"))
            .arg(&html),
    );
    let p = ingest(&dir.path().join("out/tenko.docx")).unwrap();
    assert_article(&p);
    insta::assert_snapshot!("libreoffice", describe(&p));
}

#[test]
#[ignore = "needs python-docx (PyPI): scripts/test installs it and runs ignored tests"]
fn japanese_style_ids_fields_and_keywords_are_read_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let docx = dir.path().join("menkai.docx");
    let script = support::fixtures().join("../support/make_docx.py");
    support::run_ok(Command::new(support::python()).arg(script).arg(&docx));
    let p = ingest(&docx).unwrap();
    assert_eq!(p.title, "面会交流の始め方");
    assert_eq!(p.tags, ["親権", "面会交流"]);
    let sections = support::section_titles(&p);
    assert_eq!(
        sections,
        [
            (1, "1.取り決めること"),
            (2, "(1)頻度と時間"),
            (1, "2.困ったとき")
        ]
    );
    let links = &p.sections[0].body.text;
    assert_eq!(
        links.trim(),
        "詳しくは裁判所のページ (https://www.courts.go.jp/)と法務省のページ (https://www.moj.go.jp/)をご覧ください。"
    );
    let freq = &p.sections[1].body;
    assert!(
        freq.html
            .contains("<em>月1回</em>から始める方が<strong>多い</strong>です。"),
        "{}",
        freq.html
    );
    assert!(
        freq.text.contains("1. 頻度\n2. 受け渡しの場所"),
        "{}",
        freq.text
    );
    assert_eq!(p.editors_note.unwrap().text, "寒くなりました。\n");
    insta::assert_snapshot!(
        "python-docx-japanese-ids",
        describe(&ingest(&docx).unwrap())
    );
}

#[test]
fn a_word_document_cut_off_while_saving_is_reported_not_read_half_way() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(support::fixtures().join("posts/2026-11-16-sumai.docx")).unwrap();
    let path = dir.path().join("2026-11-16-sumai.docx");
    std::fs::write(&path, &whole[..whole.len() * 2 / 3]).unwrap();
    let err = ingest(&path).unwrap_err();
    assert!(matches!(err, IngestError::Word(_)), "{err:?}");
    assert!(
        err.to_string().contains("still being saved, or damaged"),
        "{err}"
    );

    std::fs::write(&path, b"PK\x03\x04 not really").unwrap();
    assert!(ingest(&path).is_err());
    std::fs::write(&path, &whole).unwrap();
    assert_eq!(ingest(&path).unwrap().slug, "sumai");
}

#[test]
fn word_lock_files_are_not_posts_and_documents_are() {
    assert!(!content::is_post_file(Path::new("posts/~$16-sumai.docx")));
    assert!(content::is_post_file(Path::new(
        "posts/2026-11-16-sumai.DOCX"
    )));
}

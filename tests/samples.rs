//! Every sample in `tests/fixtures` (copied from the attorney's real formats) parses to what
//! `tests/fixtures/README.md` says, and every bad input fails with its own class of error.

mod support;

use std::path::{Path, PathBuf};

use tayori::content::{self, DecodeError, IngestError, IngestOptions, Kind, Post};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn config() -> tayori::config::Config {
    let path = fixtures().join("tayori.yaml");
    let mut c = tayori::config::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    assert!(c.validate(&path).is_empty());
    c
}

fn ingest(rel: &str) -> Result<Post, IngestError> {
    let dir = fixtures();
    let posts = if rel.starts_with("bad/") {
        dir.join("bad")
    } else {
        dir.join("posts")
    };
    content::ingest(
        &dir.join(rel),
        &posts,
        &IngestOptions::from_config(&config()),
    )
}

fn all_text(p: &Post) -> String {
    let mut s = format!("{}\n{}\n{}", p.title, p.lead.text, p.lead.html);
    for t in &p.toc {
        s.push_str(&t.title);
    }
    for sec in &p.sections {
        s.push_str(&format!(
            "{}\n{}\n{}",
            sec.title, sec.body.text, sec.body.html
        ));
    }
    if let Some(n) = &p.editors_note {
        s.push_str(&format!("{}\n{}", n.text, n.html));
    }
    s
}

#[test]
fn a_word_document_parses_by_its_style_names_to_title_sections_list_table_and_note() {
    let p = ingest("posts/2026-11-16-sumai.docx").unwrap();
    assert_eq!(p.title, "離婚後の住まいをどう考えるか ~ 持ち家と賃貸の判断");
    assert_eq!(p.slug, "sumai");
    let lead: Vec<&str> = p.lead.text.split("\n\n").map(str::trim).collect();
    assert_eq!(lead.len(), 2, "{lead:?}");
    assert_eq!(lead[0], "働くお母さまの為の離婚相談");
    assert!(lead[1].starts_with("離婚の話し合いで、"), "{lead:?}");
    let sections = support::section_titles(&p);
    assert_eq!(
        sections,
        [
            (1, "1.持ち家に住み続けるとき"),
            (2, "(1)ローンの名義を確認する"),
            (2, "(2)財産分与の対象を整理する"),
            (1, "2.賃貸に移るとき"),
        ]
    );
    let list = &p.sections[2].body;
    assert_eq!(list.html.matches("<li>").count(), 3, "{}", list.html);
    assert!(list.html.contains("<ul>"), "{}", list.html);
    assert!(
        list.text
            .contains("・登記簿謄本\n・ローン残高証明書\n・固定資産税の通知書"),
        "{}",
        list.text
    );
    let renting = &p.sections[3].body;
    assert!(
        renting.html.contains("<strong>お子さんの学期</strong>"),
        "{}",
        renting.html
    );
    assert_eq!(renting.html.matches("<tr>").count(), 3, "{}", renting.html);
    assert_eq!(
        renting.html.matches("<td>").count() + renting.html.matches("<th>").count(),
        6
    );
    assert!(
        renting
            .text
            .contains("費目 | 目安\n敷金・礼金 | 家賃の2〜4か月分"),
        "{}",
        renting.text
    );
    let note = p.editors_note.clone().expect("editor's note");
    let paras: Vec<&str> = note.text.split("\n\n").map(str::trim).collect();
    assert_eq!(
        paras,
        [
            "今週は、住まいのご相談が続きました。",
            "寒くなりましたので、皆さまご自愛ください。"
        ]
    );
    assert!(!all_text(&p).contains("【編集後記】"));
}

#[test]
fn parses_plain_text_title_lead_toc_sections_and_note() {
    let p = ingest("posts/2026-11-02-youikuhi-points.txt").unwrap();
    assert_eq!(
        p.title,
        "養育費の取り決めで後から困らないための4つのポイント ~ 口約束はなぜ危ないのか"
    );
    assert_eq!(p.slug, "youikuhi-points");
    assert_eq!(p.kind, Kind::Article);
    let lead: Vec<&str> = p.lead.text.split("\n\n").map(str::trim).collect();
    assert_eq!(lead.len(), 3, "{lead:?}");
    assert_eq!(lead[0], "働くお母さまの為の離婚相談");
    assert!(lead[1].starts_with("離婚のご相談を受けていて"));
    assert!(lead[2].starts_with("今回は、"));

    let toc: Vec<(&str, Option<&str>)> = p
        .toc
        .iter()
        .map(|t| (t.title.as_str(), t.target.as_deref()))
        .collect();
    assert_eq!(
        toc,
        [
            ("1.養育費の相場は「算定表」から考える", Some("s1")),
            ("2.取り決めで後から困らないための4つのポイント", Some("s2")),
            ("3.まとめ ~ 書面に残すことが子どもを守る", Some("s3")),
        ]
    );
    let sections = support::section_titles(&p);
    assert_eq!(
        sections,
        [
            (1, "1.養育費の相場は「算定表」から考える"),
            (1, "2.取り決めで後から困らないための4つのポイント"),
            (2, "(1)金額だけでなく支払期間を決める"),
            (2, "(2)振込先と支払日を具体的にする"),
            (2, "(3)進学や病気のときの特別な費用を話し合う"),
            (2, "(4)公正証書か調停で書面にする"),
            (1, "3.まとめ ~ 書面に残すことが子どもを守る"),
        ]
    );
    let note = p.editors_note.as_ref().expect("editor's note");
    let paras: Vec<&str> = note.text.trim().split("\n\n").collect();
    assert_eq!(paras.len(), 2, "{paras:?}");
    assert!(paras[0].starts_with("今週は,"));
    assert!(paras[1].starts_with("週末は"));
    assert!(!note.text.contains("PREVIOUS"));
}

#[test]
fn plain_text_drops_stripped_lines_separators_and_markers() {
    let p = ingest("posts/2026-11-02-youikuhi-points.txt").unwrap();
    let text = all_text(&p);
    for gone in [
        "ワーキングマザー離婚相談室(ワーママ",
        "渋谷駅徒歩5分",
        "03-3463-4351",
        "PREVIOUS / NEXT",
        "・・・・",
        "<目次>",
        "&lt;目次&gt;",
        "【編集後記】",
        "\u{3000}",
        "\u{a0}",
    ] {
        assert!(!text.contains(gone), "{gone:?} is still in the post");
    }
    // No paragraph is made only of spaces.
    for sec in &p.sections {
        assert!(!sec.body.html.contains("<p> </p>") && !sec.body.html.contains("<p></p>"));
    }
}

#[test]
fn parses_markdown_with_front_matter() {
    let p = ingest("posts/2026-11-09-menkai-koryu.md").unwrap();
    assert_eq!(p.title, "面会交流のルールを決めるときに考えておきたいこと");
    assert_eq!(p.date.unwrap().to_rfc3339(), "2026-11-09T08:00:00+09:00");
    assert_eq!(p.tags, ["面会交流", "離婚"]);
    assert!(p.summary.as_deref().unwrap().starts_with("面会交流の頻度"));
    assert_eq!(p.sections.len(), 1);
    assert_eq!(p.sections[0].title, "決めておきたい項目");
    let body = &p.sections[0].body.html;
    for tag in [
        "<ol>",
        "<table>",
        "<blockquote>",
        "href=\"https://www.courts.go.jp/\"",
    ] {
        assert!(body.contains(tag), "{tag} missing");
    }
    let note = p.editors_note.as_ref().unwrap();
    assert!(note.text.starts_with("先週は,面会交流の調停が1件"));
    assert!(note.text.contains("寒くなってきましたので"));
    assert!(
        !body.contains("編集後記"),
        "the note is not an ordinary section"
    );
}

#[test]
fn reads_notes_kind_from_front_matter_and_folder() {
    let p = ingest("posts/notes/2026-11-12-note.md").unwrap();
    assert_eq!(p.kind, Kind::Note);
    assert_eq!(p.title, "年末年始の営業について");
    assert!(p.lead.text.contains("12月27日から1月4日まで"));
}

#[test]
fn accepts_shift_jis_crlf_greeting() {
    let p = ingest("bad/sjis-greeting.txt").unwrap();
    assert_eq!(p.encoding, "Shift_JIS");
    assert_eq!(p.title, "年末のご挨拶");
    assert_eq!(
        p.editors_note.unwrap().text.trim(),
        "今年最後の調停が終わりました。"
    );
    assert!(!p.lead.text.contains('\r'));
}

#[test]
fn rejects_unclosed_front_matter_at_line_one() {
    let e = ingest("bad/unclosed-front-matter.md").unwrap_err();
    assert_eq!(e, IngestError::UnclosedFrontMatter);
    assert_eq!(e.line(), Some(1));
}

#[test]
fn rejects_bad_date_at_the_line_of_the_key() {
    let e = ingest("bad/bad-date.md").unwrap_err();
    assert!(matches!(e, IngestError::BadDate { .. }), "{e:?}");
    assert_eq!(e.line(), Some(3));
    assert!(e.to_string().contains("`date` is not a date"));
}

#[test]
fn rejects_empty_post() {
    assert_eq!(ingest("bad/empty.md").unwrap_err(), IngestError::Empty);
}

#[test]
fn rejects_binary_post() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.txt");
    std::fs::copy(fixtures().join("bad/photo.png"), &path).unwrap();
    let e = content::ingest(&path, dir.path(), &IngestOptions::from_config(&config())).unwrap_err();
    assert!(
        matches!(e, IngestError::Decode(DecodeError::Binary { .. })),
        "{e:?}"
    );
}

#[test]
fn ignores_editor_files_and_non_posts() {
    let listed = content::list_post_files(&fixtures().join("bad")).unwrap();
    let names: Vec<String> = listed
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for ignored in [
        "photo.png",
        ".#sjis-greeting.txt",
        ".2026-11-30.md.swp",
        "2026-11-30.md~",
    ] {
        assert!(!names.iter().any(|n| n == ignored), "{ignored} listed");
    }
    assert!(names.iter().any(|n| n == "sjis-greeting.txt"));
}

#[test]
fn header_injection_title_stays_one_line() {
    let p = ingest("bad/header-injection.md").unwrap();
    assert!(
        !p.title.contains('\r') && !p.title.contains('\n'),
        "{:?}",
        p.title
    );
    assert!(p.title.starts_with("ご案内"));
}

#[test]
fn raw_html_loses_script_handlers_and_javascript_urls() {
    let p = ingest("bad/raw-html.md").unwrap();
    let text = all_text(&p);
    for bad in ["<script", "onerror", "javascript:", "alert("] {
        assert!(!text.contains(bad), "{bad} survived in {text}");
    }
    assert!(text.contains("赤い段落"));
}

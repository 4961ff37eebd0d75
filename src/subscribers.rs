//! Subscriber lists: `subscribers/*.csv` and `subscribers/*.yaml`, each file one list named by
//! its stem. Columns/keys: `email`, `name`, optional `subscribed_at` and `source` (the consent
//! record 特定電子メール法 requires the sender to keep). A bad row is reported as `file:line`
//! and skipped; it never blocks the rest. A file or folder that cannot be read at all is
//! different: the audience read now would be incomplete, so no issue may be made from it
//! ([`ListProblems::unreadable`]).
//!
//! Rows are streamed to a callback ([`each`]) with borrowed fields, so making an issue for
//! 200,000 subscribers holds one file's text in memory, not a copy of every row.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::problem::Problem;

/// One subscriber row, borrowed from its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscriber<'a> {
    /// As written in the file.
    pub email: &'a str,
    pub name: &'a str,
    pub subscribed_at: Option<&'a str>,
    pub source: Option<&'a str>,
    /// The consent record, when the list keeps it: how (`consent_method`), when
    /// (`consent_at`) and a note (`consent_note`).
    pub consent_method: Option<&'a str>,
    pub consent_at: Option<&'a str>,
    pub consent_note: Option<&'a str>,
    /// The list (file stem).
    pub list: &'a str,
    /// The file and line the row is on.
    pub origin: &'a Path,
    pub line: u64,
}

/// The address as compared: addresses are case-insensitive here.
pub fn key(email: &str) -> String {
    email.trim().to_lowercase()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRow<'a> {
    email: &'a str,
    #[serde(default)]
    name: &'a str,
    #[serde(default)]
    subscribed_at: Option<&'a str>,
    #[serde(default)]
    source: Option<&'a str>,
    #[serde(default)]
    consent_method: Option<&'a str>,
    #[serde(default)]
    consent_at: Option<&'a str>,
    #[serde(default)]
    consent_note: Option<&'a str>,
}

impl<'a> CsvRow<'a> {
    fn optional(&self) -> [Option<&'a str>; 5] {
        [
            self.subscribed_at,
            self.source,
            self.consent_method,
            self.consent_at,
            self.consent_note,
        ]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlRow {
    email: Spanned<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    subscribed_at: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    consent_method: Option<String>,
    #[serde(default)]
    consent_at: Option<String>,
    #[serde(default)]
    consent_note: Option<String>,
}

impl YamlRow {
    fn optional(&self) -> [Option<&str>; 5] {
        [
            self.subscribed_at.as_deref(),
            self.source.as_deref(),
            self.consent_method.as_deref(),
            self.consent_at.as_deref(),
            self.consent_note.as_deref(),
        ]
    }
}

/// Whether `domain` is `parent` or one of its subdomains (ASCII case-insensitive, without
/// allocating: it runs for every message on the sending path).
pub fn in_domain(domain: &str, parent: &str) -> bool {
    let (d, p) = (domain.as_bytes(), parent.as_bytes());
    d.len() >= p.len()
        && d[d.len() - p.len()..].eq_ignore_ascii_case(p)
        && (d.len() == p.len() || d[d.len() - p.len() - 1] == b'.')
}

/// Whether `email` is an address we can send to (RFC 5321 syntax via lettre's parser).
pub fn valid_address(email: &str) -> bool {
    email.trim().parse::<lettre::Address>().is_ok()
}

/// What reading the lists found wrong.
#[derive(Debug, Default)]
pub struct ListProblems {
    /// Rows skipped; the rest of their file was used.
    pub rows: Vec<Problem>,
    /// Files, or the folder, that could not be read: an audience read now is incomplete.
    pub unreadable: Vec<Problem>,
}

impl ListProblems {
    /// Every problem, unreadable files first, each group in file and line order.
    pub fn all(&self) -> impl Iterator<Item = &Problem> {
        self.unreadable.iter().chain(&self.rows)
    }
}

/// The largest list file read (about a million rows): a bigger one is an unreadable list.
const MAX_LIST_BYTES: u64 = 64 * 1024 * 1024;

/// The list files in `dir`, sorted: `*.csv`, `*.yaml`, `*.yml`, not hidden.
fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        files.push(e?.path());
    }
    files.retain(|f| {
        let hidden = f
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        let ext = f
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        !hidden && matches!(ext.as_deref(), Some("csv" | "yaml" | "yml"))
    });
    files.sort();
    Ok(files)
}

/// Calls `f` for every valid row of every list in `dir`, in file order; returns what was wrong.
pub fn each(dir: &Path, mut f: impl FnMut(Subscriber<'_>)) -> ListProblems {
    let mut problems = ListProblems::default();
    let files = match list_files(dir) {
        Ok(files) => files,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                "the subscribers folder is missing".to_string()
            } else {
                format!("cannot list the subscribers folder: {e}")
            };
            problems.unreadable.push(Problem::new(dir, None, why));
            return problems;
        }
    };
    for file in files {
        match list_text(&file) {
            Ok(text) => each_row(&file, &text, &mut f, &mut problems),
            Err(p) => problems.unreadable.push(p),
        }
    }
    problems.rows.sort_by_key(|p| (p.path.clone(), p.line));
    problems
}

/// A list's text: read as a regular file, capped, decoded.
fn list_text(file: &Path) -> Result<String, Problem> {
    let bytes = crate::files::read_regular(file, MAX_LIST_BYTES, crate::files::Links::Follow)
        .map_err(|e| Problem::new(file, None, format!("cannot read: {e}")))?;
    crate::content::decode_list_owned(bytes)
        .map(|d| d.text)
        .map_err(|e| Problem::new(file, None, e.to_string()))
}

/// Calls `f` for every valid row of one list; its bad rows (or why it cannot be read as a
/// whole) go into `problems`.
fn each_row(
    file: &Path,
    text: &str,
    f: &mut impl FnMut(Subscriber<'_>),
    problems: &mut ListProblems,
) {
    let list = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut bad_rows = Vec::new();
    // `optional`: subscribed_at, source, consent_method, consent_at, consent_note.
    let mut emit = |line: u64, email: &str, name: &str, optional: [Option<&str>; 5]| {
        let email = email.trim();
        let control = |v: &str| v.chars().any(char::is_control);
        if control(email) || control(name) || optional.iter().flatten().any(|v| control(v)) {
            bad_rows.push(Problem::new(
                file,
                Some(line),
                "a control character (line break, tab or the like) inside a value; row skipped",
            ));
            return;
        }
        if !valid_address(email) {
            bad_rows.push(Problem::new(
                file,
                Some(line),
                format!("`{email}` is not a valid email address; row skipped"),
            ));
            return;
        }
        let [subscribed_at, source, consent_method, consent_at, consent_note] =
            optional.map(nonempty);
        f(Subscriber {
            email,
            name: name.trim(),
            subscribed_at,
            source,
            consent_method,
            consent_at,
            consent_note,
            list,
            origin: file,
            line,
        });
    };
    let csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let read = if csv {
        csv_rows(text, file, |line, r| {
            emit(line, r.email, r.name, r.optional())
        })
    } else {
        match yaml_rows(text) {
            Ok(rows) => {
                for r in &rows {
                    let line = r.email.referenced.line();
                    emit(line, &r.email.value, &r.name, r.optional());
                }
                Ok(Vec::new())
            }
            // The file's structure is broken: which rows it holds cannot be told.
            Err(e) => Err(crate::config::yaml_problem(&e, file)),
        }
    };
    match read {
        Ok(rows) => problems.rows.extend(rows),
        Err(p) => problems.unreadable.push(p),
    }
    problems.rows.extend(bad_rows);
}

/// Streams the rows of a CSV list; `Err` when the file as a whole cannot be read (no header
/// row, no `email` column), else the rows skipped.
fn csv_rows(
    text: &str,
    path: &Path,
    mut row: impl FnMut(u64, CsvRow<'_>),
) -> Result<Vec<Problem>, Problem> {
    let mut problems = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            let why = format!("cannot read the header row: {e}");
            return Err(Problem::new(path, Some(1), why));
        }
    };
    if !headers.iter().any(|h| h == "email") {
        let why = "the header row has no `email` column (expected e.g. `email,name`)";
        return Err(Problem::new(path, Some(1), why));
    }
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                match record.deserialize::<CsvRow>(Some(&headers)) {
                    Ok(r) => row(line, r),
                    Err(e) => {
                        let msg = match e.kind() {
                            csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
                            _ => e.to_string(),
                        };
                        problems.push(Problem::new(
                            path,
                            Some(line),
                            format!("{msg}; row skipped"),
                        ));
                    }
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line());
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }
                ) {
                    return Err(Problem::new(path, line, format!("cannot read on: {e}")));
                }
                problems.push(Problem::new(path, line, format!("{e}; row skipped")));
            }
        }
    }
    Ok(problems)
}

fn yaml_rows(text: &str) -> Result<Vec<YamlRow>, serde_saphyr::Error> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_saphyr::from_str::<Vec<YamlRow>>(text)
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Whether a row belongs to the audience of posts limited to `lists` (empty: every list).
pub fn in_lists(s: &Subscriber<'_>, lists: &[String]) -> bool {
    lists.is_empty() || lists.iter().any(|l| l == s.list)
}

/// The number of distinct addresses in `dir` (case-insensitive), and the problems.
pub fn count(dir: &Path) -> (usize, ListProblems) {
    let mut seen = HashSet::new();
    let problems = each(dir, |s| {
        seen.insert(key(s.email));
    });
    (seen.len(), problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_and_yaml_rows_with_lines_and_reports_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.csv"),
            "email,name,source\nA@Example.JP,甲,名刺\nbad,乙,\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "- email: a@example.jp\n  name: 甲\n- email: c@example.jp\n",
        )
        .unwrap();
        let mut rows = Vec::new();
        let problems = each(dir.path(), |s| {
            rows.push((
                s.list.to_string(),
                s.email.to_string(),
                s.line,
                s.source.map(str::to_string),
            ))
        });
        assert_eq!(
            rows,
            [
                ("a".into(), "A@Example.JP".into(), 2, Some("名刺".into())),
                ("b".into(), "a@example.jp".into(), 1, None),
                ("b".into(), "c@example.jp".into(), 3, None),
            ]
        );
        assert_eq!(problems.rows.len(), 1);
        assert!(problems.unreadable.is_empty());
        assert_eq!(problems.rows[0].line, Some(3));
        assert_eq!(count(dir.path()).0, 2, "case variants are one address");
    }

    #[test]
    fn a_control_character_skips_its_row_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.csv"),
            "email,name\na@example.jp,甲\nb@example.jp,乙\x07\nc@example.jp,丙\n",
        )
        .unwrap();
        let mut rows = Vec::new();
        let problems = each(dir.path(), |s| rows.push(s.email.to_string()));
        assert_eq!(rows, ["a@example.jp", "c@example.jp"]);
        assert_eq!(problems.rows.len(), 1, "{:?}", problems.rows);
        assert_eq!(problems.rows[0].line, Some(3));
        assert!(problems.unreadable.is_empty());
        assert!(!problems.rows[0].to_string().contains('\x07'));
    }

    #[test]
    fn a_missing_folder_or_broken_file_is_unreadable_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let gone = each(&dir.path().join("subscribers"), |_| {});
        assert_eq!(gone.unreadable.len(), 1);
        std::fs::write(dir.path().join("a.csv"), "mail,name\na@example.jp,甲\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "- email: [unclosed\n").unwrap();
        std::fs::write(dir.path().join("c.csv"), b"email\n\0\x01binary").unwrap();
        let p = each(dir.path(), |_| {});
        assert_eq!(p.unreadable.len(), 3, "{:?}", p.unreadable);
    }

    #[test]
    fn a_domain_is_in_itself_and_its_parents_only() {
        assert!(in_domain("docomo.ne.jp", "docomo.ne.jp"));
        assert!(in_domain("Biz.EZweb.ne.jp", "ezweb.ne.jp"));
        assert!(!in_domain("notdocomo.ne.jp", "docomo.ne.jp"));
        assert!(!in_domain("ne.jp", "docomo.ne.jp"));
    }
}

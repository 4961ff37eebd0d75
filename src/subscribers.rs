//! Subscriber lists: `subscribers/*.csv` and `subscribers/*.yaml`, each file one list named by
//! its stem. Columns/keys: `email`, `name`, optional `subscribed_at` and `source` (the consent
//! record 特定電子メール法 requires the sender to keep). A bad row is reported as `file:line`
//! and skipped; it never blocks the rest.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::Problem;

/// One subscriber row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// As written in the file.
    pub email: String,
    pub name: String,
    pub subscribed_at: Option<String>,
    pub source: Option<String>,
    /// The list (file stem).
    pub list: String,
    /// Where the row is, for messages.
    pub origin: PathBuf,
    pub line: u64,
}

impl Subscriber {
    /// The address as compared: addresses are case-insensitive here.
    pub fn key(&self) -> String {
        self.email.trim().to_lowercase()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    subscribed_at: Option<String>,
    #[serde(default)]
    source: Option<String>,
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
}

/// Whether `email` is an address we can send to (RFC 5321 syntax via lettre's parser).
pub fn valid_address(email: &str) -> bool {
    email.trim().parse::<lettre::Address>().is_ok()
}

/// Reads every list in `dir`; returns the valid rows and a problem per bad row or file.
pub fn load(dir: &Path) -> (Vec<Subscriber>, Vec<Problem>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut subs = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        let ext = f
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let hidden = f
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        let list = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        let text = match ext.as_deref() {
            Some("csv" | "yaml" | "yml") => match std::fs::read(&f) {
                Ok(b) => match crate::content::decode(&b) {
                    Ok(d) => d.text,
                    Err(e) => {
                        problems.push(Problem::new(&f, None, e.to_string()));
                        continue;
                    }
                },
                Err(e) => {
                    problems.push(Problem::new(&f, None, format!("cannot read: {e}")));
                    continue;
                }
            },
            _ => continue,
        };
        let rows = if ext.as_deref() == Some("csv") {
            csv_rows(&text, &f, &mut problems)
        } else {
            yaml_rows(&text, &f, &mut problems)
        };
        for (line, row) in rows {
            let email = row.email.trim().to_string();
            if !valid_address(&email) {
                problems.push(Problem::new(
                    &f,
                    Some(line),
                    format!("`{email}` is not a valid email address; row skipped"),
                ));
                continue;
            }
            subs.push(Subscriber {
                email,
                name: crate::content::one_line(&row.name),
                subscribed_at: row.subscribed_at.filter(|s| !s.trim().is_empty()),
                source: row.source.filter(|s| !s.trim().is_empty()),
                list: list.clone(),
                origin: f.clone(),
                line,
            });
        }
    }
    (subs, problems)
}

fn csv_rows(text: &str, path: &Path, problems: &mut Vec<Problem>) -> Vec<(u64, Row)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            problems.push(Problem::new(
                path,
                Some(1),
                format!("cannot read the header row: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut rows = Vec::new();
    for rec in reader.records() {
        match rec {
            Ok(rec) => {
                let line = rec.position().map(|p| p.line()).unwrap_or(0);
                match rec.deserialize::<Row>(Some(&headers)) {
                    Ok(row) => rows.push((line, row)),
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
                problems.push(Problem::new(path, line, format!("{e}; row skipped")));
            }
        }
    }
    rows
}

fn yaml_rows(text: &str, path: &Path, problems: &mut Vec<Problem>) -> Vec<(u64, Row)> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    match serde_saphyr::from_str::<Vec<YamlRow>>(text) {
        Ok(rows) => rows
            .into_iter()
            .map(|r| {
                (
                    r.email.referenced.line(),
                    Row {
                        email: r.email.value,
                        name: r.name,
                        subscribed_at: r.subscribed_at,
                        source: r.source,
                    },
                )
            })
            .collect(),
        Err(e) => {
            problems.push(crate::config::yaml_problem(&e, path));
            Vec::new()
        }
    }
}

/// The audience: one copy per address (case-insensitive, first row wins), in file order.
pub fn audience<'a>(subs: &'a [Subscriber], lists: &[String]) -> Vec<&'a Subscriber> {
    let mut seen = std::collections::HashSet::new();
    subs.iter()
        .filter(|s| lists.is_empty() || lists.contains(&s.list))
        .filter(|s| seen.insert(s.key()))
        .collect()
}

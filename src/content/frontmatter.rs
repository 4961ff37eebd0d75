//! YAML front matter between `---` lines at the top of a post (both formats).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{IngestError, Kind};

/// The keys a post may set; any other key is an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    pub title: Option<String>,
    pub date: Option<Spanned<String>>,
    pub slug: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub summary: Option<String>,
    pub kind: Option<Kind>,
    #[serde(default)]
    pub lists: Vec<String>,
    #[serde(default)]
    pub draft: bool,
}

/// Front matter and the body after it.
pub struct Split<'a> {
    pub front: FrontMatter,
    pub body: &'a str,
}

/// Splits off and parses front matter when the text opens with a `---` line.
pub fn split(text: &str) -> Result<Split<'_>, IngestError> {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| (text.trim_end() == "---").then_some(""))
    else {
        return Ok(Split {
            front: FrontMatter::default(),
            body: text,
        });
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if matches!(line.trim_end(), "---" | "...") {
            let yaml = &rest[..offset];
            let front = parse_yaml(yaml)?;
            return Ok(Split {
                front,
                body: &rest[offset + line.len()..],
            });
        }
        offset += line.len();
    }
    Err(IngestError::UnclosedFrontMatter)
}

fn parse_yaml(yaml: &str) -> Result<FrontMatter, IngestError> {
    if yaml.trim().is_empty() {
        return Ok(FrontMatter::default());
    }
    serde_saphyr::from_str::<FrontMatter>(yaml).map_err(|e| {
        let p = crate::config::yaml_problem(&e, std::path::Path::new(""));
        IngestError::FrontMatter {
            // +1: the YAML starts on the line after the opening `---`.
            line: p.line.map(|l| l as usize + 1),
            message: p.message,
        }
    })
}

/// Parses a front-matter date: RFC 3339, or a local date/time in the site's zone
/// (`2026-11-09`, `2026-11-09 08:00`, `2026/11/09 08:00:00`, with `T` or a space).
pub fn parse_date<Tz: TimeZone>(
    date: &Spanned<String>,
    tz: &Tz,
) -> Result<DateTime<FixedOffset>, IngestError> {
    let s = date.value.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d);
    }
    let normalized = s.replace('/', "-").replacen('T', " ", 1);
    let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&normalized, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(&normalized, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        });
    naive
        .and_then(|n| tz.from_local_datetime(&n).earliest())
        .map(|d| d.fixed_offset())
        .ok_or_else(|| IngestError::BadDate {
            line: Some(date.referenced.line() as usize + 1),
            value: s.to_string(),
        })
}

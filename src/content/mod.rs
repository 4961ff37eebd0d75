//! Ingest: a file in `posts/` → one [`Post`], whatever its format.
//!
//! Both formats (Markdown with optional front matter, and the attorney's Japanese plain text)
//! produce the same model — title, lead, table of contents, sections, editor's note — with each
//! body carried as sanitised HTML and as plain text, so every renderer downstream treats them
//! alike and the text/plain email part is never made by stripping HTML.

mod decode;
mod docx;
mod files;
mod frontmatter;
mod html;
mod markdown;
mod nesting;
mod pictures;
mod plaintext;

pub use crate::text::{hex, one_line};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use decode::{decode, decode_list, decode_list_owned, DecodeError};
pub use docx::MAX_DOCX_BYTES;
pub use files::{
    is_picture_file, is_post_file, list_post_files, read_post, ListError, MAX_POST_BYTES,
};
pub use html::{escape, safe_url, sanitize, ALLOWED_SCHEMES};
pub use nesting::{MAX_DEPTH, MAX_PIECES};
pub use pictures::Picture;
use pictures::{Origin, Resolver};

/// An article, or a short editor's note on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Article,
    Note,
}

impl Kind {
    /// `article` or `note`, as in front matter and the webhook.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Article => "article",
            Kind::Note => "note",
        }
    }
}

/// A piece of content in both forms, made from the same source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    /// Sanitised HTML with absolute URLs.
    pub html: String,
    /// Plain text: paragraphs separated by blank lines, link URLs kept.
    pub text: String,
}

impl Body {
    /// True when there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty() && self.html.trim().is_empty()
    }
}

/// A section (`level` 1) or sub-section (`level` 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Anchor id, `s1`, `s1-2`: ASCII, stable for the same structure.
    pub id: String,
    pub level: u8,
    pub title: String,
    pub body: Body,
}

/// One line of the table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub title: String,
    pub level: u8,
    /// The id of the section it points to, when one matches.
    pub target: Option<String>,
}

/// How many characters of a post's text make its summary when it has none of its own.
pub const SUMMARY_CHARS: usize = 120;

/// A parsed post: the one content model for every format.
#[derive(Debug, Clone)]
pub struct Post {
    /// The file, as given to [`ingest`].
    pub source: PathBuf,
    pub slug: String,
    pub kind: Kind,
    /// One line: never contains a line break (it becomes a mail header).
    pub title: String,
    /// From front matter; `None` means "first seen".
    pub date: Option<DateTime<FixedOffset>>,
    pub tags: Vec<String>,
    pub summary: Option<String>,
    /// Subscriber lists this post goes to; empty means all.
    pub lists: Vec<String>,
    pub draft: bool,
    /// Paragraphs before the first section.
    pub lead: Body,
    pub toc: Vec<TocEntry>,
    pub sections: Vec<Section>,
    pub editors_note: Option<Body>,
    /// The pictures it shows (files beside it, or inside its Word document), in order.
    pub pictures: Vec<Picture>,
    /// SHA-256 of the file's bytes and its pictures' names, hex: the post's revision (a
    /// picture edited under the same name is a new revision).
    pub hash: String,
    /// The encoding the file was read in.
    pub encoding: &'static str,
}

impl Post {
    /// What is left of a deleted post: enough to announce its deletion.
    pub fn tombstone(slug: &str, kind: Kind, title: &str, hash: &str, source: &Path) -> Post {
        Post {
            source: source.to_path_buf(),
            slug: slug.to_string(),
            kind,
            title: title.to_string(),
            date: None,
            tags: Vec::new(),
            summary: None,
            lists: Vec::new(),
            draft: false,
            lead: Body::default(),
            toc: Vec::new(),
            sections: Vec::new(),
            editors_note: None,
            pictures: Vec::new(),
            hash: hash.to_string(),
            encoding: "UTF-8",
        }
    }

    /// The summary of feeds, the archive and cross-posts: [`Post::summary_or_excerpt`] of
    /// [`SUMMARY_CHARS`].
    pub fn summary(&self) -> String {
        self.summary_or_excerpt(SUMMARY_CHARS)
    }

    /// A summary for previews and feeds: front matter `summary`, else the start of the text.
    pub fn summary_or_excerpt(&self, chars: usize) -> String {
        if let Some(s) = &self.summary {
            return s.clone();
        }
        let source = [&self.lead]
            .into_iter()
            .chain(self.sections.iter().map(|s| &s.body))
            .chain(self.editors_note.as_ref())
            .map(|b| b.text.as_str())
            .find(|t| !t.trim().is_empty())
            .unwrap_or("");
        let flat: String = source.split_whitespace().collect::<Vec<_>>().join(" ");
        match flat.char_indices().nth(chars) {
            Some((i, _)) => format!("{}…", &flat[..i]),
            None => flat,
        }
    }
}

/// Why a file is not a valid post. Every variant is permanent: the file must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read the file: {0}")]
    Io(String),
    /// A symlink out of `posts/`, a FIFO, socket or device: never opened for reading.
    #[error("not a post file: {0}")]
    NotAPostFile(String),
    #[error("the file is {size} bytes; {kind} posts are limited to {} MiB", limit / (1024 * 1024))]
    TooLarge {
        size: u64,
        limit: u64,
        kind: &'static str,
    },
    /// A `.docx` that is not a readable Word document.
    #[error("{0}")]
    Word(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("front matter opened on line 1 is never closed (expected a `---` line)")]
    UnclosedFrontMatter,
    #[error("front matter: {message}")]
    FrontMatter {
        line: Option<usize>,
        message: String,
    },
    #[error(
        "`date` is not a date: `{value}` (expected e.g. 2026-11-09 or 2026-11-09T08:00:00+09:00)"
    )]
    BadDate { line: Option<usize>, value: String },
    /// Nested deeper than [`MAX_DEPTH`] levels: no article is, and renderers must stay bounded.
    #[error("nested more than {MAX_DEPTH} levels deep (block quotes, lists, emphasis, links or HTML elements inside one another); no post may be")]
    TooDeep { line: Option<usize> },
    /// More than [`MAX_PIECES`] pieces: memory for rendering grows with them.
    #[error("more than {MAX_PIECES} pieces (paragraphs, lines, list items, table cells, links, HTML elements…) up to here; no post may have that many")]
    TooManyPieces { line: Option<usize> },
    /// Pictures missing, refused or unreadable; `files` are those beside the post it names,
    /// so that a watcher reads the post again when one appears or changes.
    #[error("{message}")]
    Pictures {
        message: String,
        files: Vec<PathBuf>,
    },
    #[error("empty post: no title")]
    Empty,
    #[error("slug `{0}` must be letters, digits, `-` or `_`")]
    BadSlug(String),
}

impl IngestError {
    /// The 1-based line the problem is on, where known.
    pub fn line(&self) -> Option<usize> {
        match self {
            IngestError::UnclosedFrontMatter => Some(1),
            IngestError::FrontMatter { line, .. }
            | IngestError::BadDate { line, .. }
            | IngestError::TooDeep { line }
            | IngestError::TooManyPieces { line } => *line,
            _ => None,
        }
    }

    /// The error as a `path[:line]: message` problem.
    pub fn problem(&self, path: &Path) -> crate::problem::Problem {
        crate::problem::Problem::new(path, self.line().map(|l| l as u64), self.to_string())
    }
}

/// What ingest needs from the configuration.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Lines dropped from plain text (compared after trimming).
    pub strip_lines: Vec<String>,
    /// The site's time zone for dates without an offset.
    pub tz: chrono_tz::Tz,
    /// Base for relative links and images (`site.url`).
    pub base_url: String,
    /// Base of published pictures' URLs: `<public_url>/media/` (see `Config::public_base`).
    pub media_url: String,
    /// Where re-encoded pictures are looked up (and kept, when it says so).
    pub media_cache: Option<crate::media::Cache>,
    /// The pictures of the post being parsed: set by [`parse`] for each post.
    pictures: Option<Arc<Resolver>>,
}

impl IngestOptions {
    /// Options without a configuration (one that could not be read): Tokyo time, `base_url`.
    pub fn new(base_url: &str) -> Self {
        IngestOptions {
            strip_lines: Vec::new(),
            tz: chrono_tz::Asia::Tokyo,
            base_url: base_url.to_string(),
            media_url: format!("{}/media/", base_url.trim_end_matches('/')),
            media_cache: None,
            pictures: None,
        }
    }

    /// Options from a validated configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        IngestOptions {
            strip_lines: config.posts.strip_lines.clone(),
            tz: config.tz(),
            media_url: format!("{}/media/", config.public_base()),
            ..IngestOptions::new(&config.site.url)
        }
    }

    /// These options with the re-encoded pictures of the folder `root` (`state/media/`):
    /// looked up there, and kept there when `write` (a build; `check` only looks).
    pub fn with_media_cache(mut self, root: &Path, write: bool) -> Self {
        self.media_cache = Some(crate::media::Cache {
            dir: crate::media::cache_dir(root),
            write,
        });
        self
    }
}

/// Reads and parses one post file. `posts_dir` decides whether it lies under `notes/`.
pub fn ingest(path: &Path, posts_dir: &Path, opts: &IngestOptions) -> Result<Post, IngestError> {
    let inside = path.starts_with(posts_dir).then_some(posts_dir);
    let bytes = read_post(path, inside)?;
    let in_notes = path
        .strip_prefix(posts_dir)
        .ok()
        .and_then(|rel| rel.components().next())
        .is_some_and(|c| c.as_os_str() == "notes");
    parse_in(path, &bytes, in_notes, inside, opts)
}

/// Parses a post from its bytes; `path` gives the format (by extension) and the slug, and
/// the folder its pictures are read from — which must lie inside `posts` (the same rule as
/// for the files in `posts/`: nothing outside it is ever read for a post).
pub fn parse(
    path: &Path,
    bytes: &[u8],
    in_notes: bool,
    posts: &Path,
    opts: &IngestOptions,
) -> Result<Post, IngestError> {
    parse_in(path, bytes, in_notes, Some(posts), opts)
}

/// [`parse`]; pictures beside the post must lie inside `posts` when given.
fn parse_in(
    path: &Path,
    bytes: &[u8],
    in_notes: bool,
    posts: Option<&Path>,
    opts: &IngestOptions,
) -> Result<Post, IngestError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let with_pictures = |origin| {
        let resolver = Arc::new(Resolver::new(
            origin,
            &opts.media_url,
            opts.media_cache.clone(),
        ));
        let opts = IngestOptions {
            pictures: Some(resolver.clone()),
            ..opts.clone()
        };
        (resolver, opts)
    };
    let (resolver, (front, parsed, encoding)) = if ext.as_deref() == Some("docx") {
        let mut doc = docx::read(bytes).map_err(IngestError::Word)?;
        let pictures = std::mem::take(&mut doc.pictures);
        let (resolver, opts) = with_pictures(Origin::Word(pictures));
        (resolver, read_word(doc, &opts)?)
    } else {
        let (resolver, opts) = with_pictures(Origin::Folder {
            dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            posts: posts.map(Path::to_path_buf),
        });
        let text = ext.as_deref() == Some("txt");
        (resolver, read_text(bytes, text, &opts)?)
    };
    let pictures = resolver
        .finish()
        .map_err(|(message, files)| IngestError::Pictures { message, files })?;
    let date = front
        .date
        .as_ref()
        .map(|d| frontmatter::parse_date(d, &opts.tz))
        .transpose()?;
    let title = one_line(
        front
            .title
            .as_deref()
            .or(parsed.title.as_deref())
            .unwrap_or(""),
    );
    if title.is_empty() {
        return Err(IngestError::Empty);
    }
    let slug = match front.slug {
        Some(s) => s.trim().to_string(),
        None => slug_from_path(path),
    };
    if !crate::text::is_name(&slug) {
        return Err(IngestError::BadSlug(slug));
    }
    let kind = front
        .kind
        .unwrap_or(if in_notes { Kind::Note } else { Kind::Article });
    Ok(Post {
        source: path.to_path_buf(),
        slug,
        kind,
        title,
        date,
        tags: front.tags.iter().map(|t| one_line(t)).collect(),
        summary: front
            .summary
            .map(|s| one_line(&s))
            .filter(|s| !s.is_empty()),
        lists: front.lists,
        draft: front.draft,
        lead: parsed.lead,
        toc: parsed.toc,
        sections: parsed.sections,
        editors_note: parsed.editors_note,
        hash: revision(bytes, &pictures),
        pictures,
        encoding,
    })
}

/// A Word document's body, title and properties, as a post's parts.
fn read_word(
    doc: docx::Docx,
    opts: &IngestOptions,
) -> Result<(frontmatter::FrontMatter, Parsed, &'static str), IngestError> {
    match nesting::first_excess(&doc.events) {
        Some((_, nesting::Excess::Depth)) => return Err(IngestError::TooDeep { line: None }),
        Some((_, nesting::Excess::Pieces)) => {
            return Err(IngestError::TooManyPieces { line: None })
        }
        None => {}
    }
    let mut parsed = markdown::parse_events(doc.events, opts);
    parsed.title = doc.title.or(parsed.title);
    let unknown = serde_saphyr::Location::UNKNOWN;
    let front = frontmatter::FrontMatter {
        tags: doc.tags,
        date: doc
            .date
            .map(|d| serde_saphyr::Spanned::new(d, unknown, unknown)),
        ..Default::default()
    };
    Ok((front, parsed, "Office Open XML"))
}

/// A Markdown (or, with `text`, a plain-text) post: decoded, its front matter split off, its
/// body parsed; lines are counted from the file's first.
fn read_text(
    bytes: &[u8],
    text: bool,
    opts: &IngestOptions,
) -> Result<(frontmatter::FrontMatter, Parsed, &'static str), IngestError> {
    let decoded = decode(bytes)?;
    let split = frontmatter::split(&decoded.text)?;
    let parsed = if text {
        plaintext::parse(split.body, opts)
    } else {
        // Lines of the front matter come before the body's.
        let before = split.body.as_ptr() as usize - decoded.text.as_ptr() as usize;
        let first_line = decoded.text[..before].matches('\n').count() + 1;
        markdown::parse(split.body, opts).map_err(|(excess, line)| {
            let line = Some(first_line + line - 1);
            match excess {
                nesting::Excess::Depth => IngestError::TooDeep { line },
                nesting::Excess::Pieces => IngestError::TooManyPieces { line },
            }
        })?
    };
    Ok((split.front, parsed, decoded.encoding))
}

/// A post's revision: SHA-256 of its file's bytes, and of its pictures' names (each a hash of
/// the picture's bytes) when it has any — a post without pictures keeps the hash of its bytes.
fn revision(bytes: &[u8], pictures: &[Picture]) -> String {
    let mut hash = Sha256::new();
    hash.update(bytes);
    for p in pictures {
        hash.update(b"\0picture ");
        hash.update(p.encoded.name.as_bytes());
    }
    hex(&hash.finalize())
}

/// What a format parser finds in the body.
#[derive(Debug, Default)]
struct Parsed {
    title: Option<String>,
    lead: Body,
    toc: Vec<TocEntry>,
    sections: Vec<Section>,
    editors_note: Option<Body>,
}

/// The slug from a file name: the stem without a leading `YYYY-MM-DD-`.
pub fn slug_from_path(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let b = stem.as_bytes();
    let dated = b.len() > 11
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && b[10] == b'-';
    if dated {
        stem[11..].to_string()
    } else {
        stem.to_string()
    }
}

/// Hands out section anchors in document order: `s1`, `s1-1`, `s1-2`, `s2`, …
#[derive(Debug, Default)]
struct SectionIds {
    major: u32,
    minor: u32,
}

impl SectionIds {
    fn next(&mut self, level: u8) -> String {
        if level == 1 {
            self.major += 1;
            self.minor = 0;
            format!("s{}", self.major)
        } else {
            self.minor += 1;
            format!("s{}-{}", self.major, self.minor)
        }
    }
}

/// Whether a heading's text names the editor's note (`編集後記`, `【編集後記】`, `■編集後記`).
fn is_editors_note_heading(text: &str) -> bool {
    let t: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && !"【】[]■□◆◇●○#＃:：".contains(*c))
        .collect();
    t == "編集後記"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_drops_the_date_prefix() {
        assert_eq!(
            slug_from_path(Path::new("posts/2026-11-02-youikuhi-points.txt")),
            "youikuhi-points"
        );
        assert_eq!(slug_from_path(Path::new("about.md")), "about");
        assert_eq!(slug_from_path(Path::new("2026-11-02.md")), "2026-11-02");
    }

    #[test]
    fn one_line_removes_line_breaks() {
        assert_eq!(one_line("ご案内\r\nBcc: x@y"), "ご案内 Bcc: x@y");
    }

    #[test]
    fn recognises_editors_note_headings() {
        for t in ["編集後記", "【編集後記】", "■ 編集後記"] {
            assert!(is_editors_note_heading(t), "{t}");
        }
        assert!(!is_editors_note_heading("編集後記について考える"));
    }
}

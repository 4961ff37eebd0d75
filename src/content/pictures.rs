//! The pictures a post refers to: a Markdown `![alt](file)` or `<img src>` with a path
//! relative to the post's file, or a picture inside a Word document.
//!
//! A picture beside a post is read by the rules posts are read by — inside `posts/` only (a
//! path or symlink leading out of it is refused), a regular file only (never a FIFO), at most
//! [`media::MAX_PICTURE_BYTES`] — then re-encoded by [`media`]. Its `<img>` then points at
//! `<public_url>/media/<name>` and carries the size it is shown at ([`media::Encoded::shown_size`]).
//! Every problem found is kept, and the post is refused with all of them: a post is never
//! published with a broken picture.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::files::{Links, ReadError};
use crate::media::{self, Encoded, PictureError};

/// A picture of a post, re-encoded and ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// As the post names it: `entrance.jpg`, or the Word part `word/media/image1.png`.
    pub reference: String,
    /// The file beside the post (none for a picture inside a Word document).
    pub path: Option<PathBuf>,
    pub encoded: Encoded,
    /// Whether the post shows it somewhere without a text alternative (a warning:
    /// JIS X 8341-3 / WCAG 2.x success criterion 1.1.1).
    pub missing_alt: bool,
}

/// Where a post's pictures come from.
#[derive(Debug)]
pub(super) enum Origin {
    /// Files relative to the post's folder, inside `posts` (when given) only.
    Folder {
        dir: PathBuf,
        posts: Option<PathBuf>,
    },
    /// A Word document's image parts, by part name (or why one could not be read).
    Word(HashMap<String, Result<Vec<u8>, String>>),
}

/// One post's pictures, found while its HTML and text are written (shared with the sanitiser).
#[derive(Debug)]
pub(crate) struct Resolver {
    origin: Origin,
    /// `<public_url>/media/`.
    media_url: String,
    cache: Option<media::Cache>,
    /// By reference, in the order first met.
    found: Mutex<Vec<(String, Result<Picture, String>)>>,
}

/// Whether an image source names a file of the post rather than a web address: a relative
/// path (`entrance.jpg`, `img/a.png`, `../shared/logo.png`), not `/…`, `//…`, `#…` or `?…`.
pub(super) fn is_local(src: &str) -> bool {
    let src = src.trim();
    !src.is_empty()
        && !src.starts_with(['/', '\\', '#', '?'])
        && matches!(
            url::Url::parse(src),
            Err(url::ParseError::RelativeUrlWithoutBase)
        )
}

impl Resolver {
    pub(super) fn new(origin: Origin, media_url: &str, cache: Option<media::Cache>) -> Resolver {
        Resolver {
            origin,
            media_url: media_url.to_string(),
            cache,
            found: Mutex::new(Vec::new()),
        }
    }

    /// Whether an image source names a picture of this post: any relative path inside a Word
    /// document; beside a post, a relative path with a picture's extension, or naming a file
    /// that is there (any other relative source is a web address under `site.url`, as before).
    pub(super) fn claims(&self, src: &str) -> bool {
        if !is_local(src) {
            return false;
        }
        match &self.origin {
            Origin::Word(_) => true,
            Origin::Folder { dir, .. } => {
                let path = local_path(dir, src);
                super::is_picture_file(&path) || path.exists()
            }
        }
    }

    /// The URL a local image source is published at, or `None` when it cannot be (the
    /// problem is kept for [`Resolver::finish`]).
    pub(super) fn url(&self, src: &str) -> Option<String> {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        // As the author wrote it: the HTML writer percent-encodes what the text part keeps.
        let reference = written(src);
        if let Some((_, result)) = found.iter().find(|(r, _)| *r == reference) {
            return result.as_ref().ok().map(|p| self.url_of(&p.encoded));
        }
        let result = self.read(&reference);
        let url = result.as_ref().ok().map(|p| self.url_of(&p.encoded));
        found.push((reference, result));
        url
    }

    fn url_of(&self, encoded: &Encoded) -> String {
        format!("{}{}", self.media_url, encoded.name)
    }

    /// The picture published at `url`, when it is one of this post's.
    fn by_url(&self, url: &str) -> Option<Encoded> {
        let name = url.strip_prefix(&self.media_url)?;
        let found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found.iter().find_map(|(_, r)| {
            r.as_ref()
                .ok()
                .filter(|p| p.encoded.name == name)
                .map(|p| p.encoded.clone())
        })
    }

    /// Notes that the picture at `url` is shown without a text alternative.
    fn mark_missing_alt(&self, url: &str) {
        let name = url.strip_prefix(&self.media_url).unwrap_or("");
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        for (_, r) in found.iter_mut() {
            if let Ok(p) = r {
                if p.encoded.name == name {
                    p.missing_alt = true;
                }
            }
        }
    }

    fn read(&self, reference: &str) -> Result<Picture, String> {
        let (bytes, path) = match &self.origin {
            Origin::Folder { dir, posts } => {
                let path = dir.join(reference);
                (read_beside(&path, posts.as_deref())?, Some(path))
            }
            Origin::Word(parts) => match parts.get(reference) {
                Some(Ok(bytes)) => (bytes.clone(), None),
                Some(Err(why)) => return Err(why.clone()),
                None => return Err("the document refers to a picture it does not hold".into()),
            },
        };
        let encoded = media::prepare(&bytes, self.cache.as_ref()).map_err(|e| e.to_string())?;
        Ok(Picture {
            reference: reference.to_string(),
            path,
            encoded,
            missing_alt: false,
        })
    }

    /// Every picture found, or every problem: `picture `x.jpg`: why`, joined.
    pub(super) fn finish(&self) -> Result<Vec<Picture>, (String, Vec<PathBuf>)> {
        let found = std::mem::take(&mut *self.found.lock().unwrap_or_else(|e| e.into_inner()));
        let files: Vec<PathBuf> = match &self.origin {
            Origin::Folder { dir, .. } => found.iter().map(|(r, _)| dir.join(r)).collect(),
            Origin::Word(_) => Vec::new(),
        };
        let problems: Vec<String> = found
            .iter()
            .filter_map(|(r, result)| {
                result
                    .as_ref()
                    .err()
                    .map(|why| format!("picture `{r}`: {why}"))
            })
            .collect();
        if problems.is_empty() {
            Ok(found.into_iter().filter_map(|(_, r)| r.ok()).collect())
        } else {
            Err((problems.join("; "), files))
        }
    }

    /// Gives each `<img>` of this post's pictures in sanitised HTML (`tag`, from `<img` to
    /// `>`) the size it is shown at, replacing any the author wrote.
    pub(super) fn size_img(&self, tag: &str) -> String {
        let Some(src) = attr(tag, "src") else {
            return tag.to_string();
        };
        let Some(encoded) = self.by_url(src) else {
            return tag.to_string();
        };
        if attr(tag, "alt").is_none_or(|a| a.trim().is_empty()) {
            self.mark_missing_alt(src);
        }
        let mut out = tag.trim_end_matches('>').trim_end_matches('/').to_string();
        for name in ["width", "height"] {
            if let Some(value) = attr(&out, name) {
                let written = format!(" {name}=\"{value}\"");
                out = out.replacen(&written, "", 1);
            }
        }
        let (width, height) = encoded.shown_size();
        format!("{} width=\"{width}\" height=\"{height}\">", out.trim_end())
    }
}

/// An attribute's value in a tag as the sanitiser writes it (` name="value"`, quotes escaped).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(&tag[start..end])
}

/// A relative source as the author wrote it: percent-escapes decoded, any `?query` or
/// `#fragment` dropped.
fn written(src: &str) -> String {
    let path = src.trim().split(['?', '#']).next().unwrap_or("");
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// The file a relative source names, beside the post.
fn local_path(dir: &Path, reference: &str) -> PathBuf {
    dir.join(written(reference))
}

/// Reads a picture beside a post by the rules posts are read by.
fn read_beside(path: &Path, posts: Option<&Path>) -> Result<Vec<u8>, String> {
    let real = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "missing: there is no {} (put the picture there, or fix its name)",
                crate::files::display(path).display()
            ))
        }
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if let Some(posts) = posts {
        let posts = std::fs::canonicalize(posts).map_err(|e| format!("cannot read posts/: {e}"))?;
        if !real.starts_with(&posts) {
            return Err(format!(
                "leads to {}, outside posts/: never published (copy the picture into posts/)",
                real.display()
            ));
        }
    }
    // The target was resolved above: a symlink found there now was put there since.
    crate::files::read_regular(&real, media::MAX_PICTURE_BYTES, Links::Refuse).map_err(
        |e| match e {
            ReadError::TooLarge(size) => PictureError::TooLarge { size }.to_string(),
            ReadError::NotAFile(what) => format!("{what}, not a picture file: never read"),
            ReadError::Io(e) => format!("cannot read it: {e}"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_sources_are_relative_paths_only() {
        for local in [
            "entrance.jpg",
            "img/a.png",
            "../shared/logo.png",
            "入口.jpg",
            "word/media/image1.png",
        ] {
            assert!(is_local(local), "{local}");
        }
        for web in [
            "https://example.jp/a.jpg",
            "//cdn.example/a.jpg",
            "/a.jpg",
            "#x",
            "data:image/png;base64,AA",
            "",
        ] {
            assert!(!is_local(web), "{web}");
        }
    }

    #[test]
    fn beside_a_post_only_picture_names_or_existing_files_are_claimed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("scan"), b"x").unwrap();
        let r = Resolver::new(
            Origin::Folder {
                dir: dir.path().to_path_buf(),
                posts: None,
            },
            "https://news.example.jp/media/",
            None,
        );
        assert!(r.claims("entrance.jpg"), "missing, but a picture's name");
        assert!(r.claims("scan"), "there, whatever its name");
        assert!(
            !r.claims("x"),
            "neither: a web address under site.url, as before"
        );
        assert!(!r.claims("https://example.jp/a.jpg"));
    }

    #[test]
    fn sizes_replace_the_authors_and_fit_the_column() {
        let r = Resolver::new(
            Origin::Word(HashMap::new()),
            "https://news.example.jp/media/",
            None,
        );
        r.found.lock().unwrap().push((
            "a.jpg".into(),
            Ok(Picture {
                reference: "a.jpg".into(),
                path: None,
                encoded: Encoded {
                    name: "ab.jpg".into(),
                    width: 1200,
                    height: 900,
                },
                missing_alt: false,
            }),
        ));
        let tag = r#"<img src="https://news.example.jp/media/ab.jpg" alt="入口" width="4000">"#;
        assert_eq!(
            r.size_img(tag),
            r#"<img src="https://news.example.jp/media/ab.jpg" alt="入口" width="600" height="450">"#
        );
        let other = r#"<img src="https://example.jp/x.jpg" alt="">"#;
        assert_eq!(r.size_img(other), other);
        r.size_img(r#"<img src="https://news.example.jp/media/ab.jpg" alt="">"#);
        assert!(r.finish().unwrap()[0].missing_alt);
    }
}

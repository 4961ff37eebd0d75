//! Which files in `posts/` are posts, and reading one without ever blocking or leaking.
//!
//! Only regular files are read. A symlink is followed only when it stays inside `posts/` (a
//! link to `/etc/passwd`, `../tayori.yaml` or `../state/secret` would otherwise be published to
//! the world); a FIFO, socket or device is never opened for reading, and the file we do open is
//! opened non-blocking and checked again through its descriptor, so a file swapped for a FIFO
//! between the look and the open cannot hang the daemon either. A post is read up to
//! [`MAX_POST_BYTES`] and rejected beyond that.

use std::path::{Path, PathBuf};

use super::IngestError;
use crate::files::{Links, ReadError};

/// The largest post file read (docs/configuration.md, "Posts"): 2 MiB of text is a small book.
pub const MAX_POST_BYTES: u64 = 2 * 1024 * 1024;

/// `posts/` (or a folder in it) could not be listed. Nothing may be decided from a listing
/// that failed: a post missing from it is not a deleted post.
#[derive(Debug, thiserror::Error)]
#[error("cannot list {}: {source}", path.display())]
pub struct ListError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Whether `path` names a post file (docs/configuration.md, "Posts"): `.md`, `.markdown`, `.txt` or `.docx`,
/// and not hidden, an editor's backup (`*~`), swap (`*.swp`), lock (`.#*`, `~$*`) or temp file.
pub fn is_post_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.')
        || name.starts_with("~$")
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".tmp")
    {
        return false;
    }
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("md" | "markdown" | "txt" | "docx")
    )
}

/// Whether `path` names a picture a post may show (JPEG, PNG, GIF, WebP, HEIC): never a post
/// itself, but a change to one is a change to the posts that show it.
pub fn is_picture_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    !hidden
        && matches!(
            path.extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("jpg" | "jpeg" | "png" | "gif" | "webp" | "heic" | "heif")
        )
}

/// Every post file under `dir` (recursively; hidden and symlinked folders are not entered),
/// sorted by path. Entries that are not regular files are listed too, so that reading them
/// reports why they are skipped. Fails when `dir` or any folder in it cannot be read.
pub fn list_post_files(dir: &Path) -> Result<Vec<PathBuf>, ListError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let err = |source| ListError {
            path: d.clone(),
            source,
        };
        for e in std::fs::read_dir(&d).map_err(err)? {
            let e = e.map_err(err)?;
            let p = e.path();
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            let t = e.file_type().map_err(err)?;
            if t.is_dir() {
                if !hidden {
                    stack.push(p);
                }
            } else if is_post_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a post file's bytes. With `inside`, a symlink must lead to a file within that folder.
pub fn read_post(path: &Path, inside: Option<&Path>) -> Result<Vec<u8>, IngestError> {
    let io = |e: std::io::Error| IngestError::Io(e.to_string());
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    let target = if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).map_err(io)?;
        if let Some(folder) = inside {
            let folder = std::fs::canonicalize(folder).map_err(io)?;
            if !target.starts_with(&folder) {
                return Err(IngestError::NotAPostFile(format!(
                    "a symlink to {}, outside posts/",
                    target.display()
                )));
            }
        }
        target
    } else {
        path.to_path_buf()
    };
    let is_docx = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("docx"));
    let (limit, kind) = if is_docx {
        (super::MAX_DOCX_BYTES, "Word")
    } else {
        (MAX_POST_BYTES, "text")
    };
    // The target was resolved above: a symlink found there now was put there since.
    crate::files::read_regular(&target, limit, Links::Refuse).map_err(|e| match e {
        ReadError::Io(e) => io(e),
        ReadError::NotAFile(what) => IngestError::NotAPostFile(what),
        ReadError::TooLarge(size) => IngestError::TooLarge { size, limit, kind },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_editor_temp_word_lock_and_non_post_files() {
        for name in [
            ".2026-11-30.md.swp",
            "2026-11-30.md~",
            ".#a.txt",
            "~$a.md",
            "photo.png",
            "a.tmp",
            ".hidden.md",
            "x.md.swp",
        ] {
            assert!(!is_post_file(Path::new(name)), "{name}");
        }
        for name in ["a.md", "b.markdown", "c.txt", "D.MD"] {
            assert!(is_post_file(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn a_missing_folder_is_an_error_not_an_empty_listing() {
        let dir = tempfile::tempdir().unwrap();
        let e = list_post_files(&dir.path().join("posts")).unwrap_err();
        assert!(e.to_string().contains("posts"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_leaving_the_folder_fifos_and_large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let posts = dir.path().join("posts");
        std::fs::create_dir(&posts).unwrap();
        std::fs::write(dir.path().join("secret"), "k").unwrap();
        std::fs::write(posts.join("real.md"), "# ok\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), posts.join("out.md")).unwrap();
        std::os::unix::fs::symlink(posts.join("real.md"), posts.join("in.md")).unwrap();
        let fifo = posts.join("fifo.md");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let big = posts.join("big.md");
        std::fs::write(&big, vec![b'a'; MAX_POST_BYTES as usize + 1]).unwrap();

        let listed = list_post_files(&posts).unwrap();
        assert_eq!(listed.len(), 5, "{listed:?}");
        assert_eq!(
            read_post(&posts.join("in.md"), Some(&posts)).unwrap(),
            b"# ok\n"
        );
        let err = |p: &Path| read_post(p, Some(&posts)).unwrap_err().to_string();
        assert!(err(&posts.join("out.md")).contains("outside posts/"));
        assert!(err(&fifo).contains("FIFO"));
        assert!(err(&big).contains("2 MiB"));
    }
}

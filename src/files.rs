//! Files we write and paths we show: atomic writes (readers never see half a file), private
//! files and folders for subscriber data and secrets, and paths as the user typed them.

use std::path::{Path, PathBuf};

/// A path as shown to the user (without a leading `./`).
pub fn display(path: &Path) -> PathBuf {
    path.strip_prefix(".").unwrap_or(path).to_path_buf()
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, then a rename,
/// so readers (the HTTP server, feed readers) never see a half-written file. For what we
/// publish: readable by everyone (0644).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, 0o644)
}

/// [`write_atomic`] for files holding subscriber data (`outbox/*.eml`): the file is 0600 and a
/// folder created for it 0700.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.is_dir()) {
        private_dir(dir)?;
    }
    write_with_mode(path, bytes, 0o600)
}

/// Creates `dir` (and its parents) when absent, and makes it 0700: it holds subscriber data
/// or secrets.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        b.mode(0o700);
        b.create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    b.create(dir)
}

/// Makes an existing file 0600 (a no-op for a file that is not there).
pub fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Whether [`read_regular`] may open a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Open what the link points at (a list the office keeps elsewhere).
    Follow,
    /// Refuse a symlink at the path (one checked beforehand and maybe swapped since).
    Refuse,
}

/// Why [`read_regular`] read nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// What the path is instead (`a FIFO (named pipe)`, `a folder`…): never opened to read.
    #[error("{0}, not a regular file: never read")]
    NotAFile(String),
    /// Its size, over the limit.
    #[error("{0} bytes, over the limit")]
    TooLarge(u64),
}

impl From<ReadError> for std::io::Error {
    fn from(e: ReadError) -> std::io::Error {
        match e {
            ReadError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// Reads a file someone drops in (a post, a subscriber list, a bounce report): only a regular
/// file, opened without blocking (a FIFO or device never hangs the reader) and checked again
/// on the open descriptor, at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64, links: Links) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let kind = std::fs::metadata(path)?.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotAFile(describe(kind)));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let nofollow = if links == Links::Refuse {
            libc::O_NOFOLLOW
        } else {
            0
        };
        opts.custom_flags(libc::O_NONBLOCK | nofollow);
    }
    let file = opts.open(path)?;
    // Checked again on the open descriptor: the name may have been swapped meanwhile.
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotAFile(describe(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// What a file that is not a regular one is, in words.
pub fn describe(t: std::fs::FileType) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)".into();
        }
        if t.is_socket() {
            return "a socket".into();
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device".into();
        }
    }
    if t.is_dir() {
        return "a folder".into();
    }
    "not a regular file".into()
}

/// The files under `root` that hold secrets or subscribers' addresses and that other users of
/// the machine can read, each with its mode: `tayori.yaml`, the lists in `subscribers/`, and
/// everything in `state/`.
pub fn readable_by_others(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut candidates = vec![root.join("tayori.yaml")];
    for dir in ["subscribers", "state"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            candidates.extend(entries.flatten().map(|e| e.path()));
        }
    }
    candidates.sort();
    candidates
        .into_iter()
        .filter_map(|p| {
            // Not through a link: the file as it is, whatever it points at.
            let meta = std::fs::symlink_metadata(&p).ok()?;
            let mode = other_readable_mode(&meta)?;
            Some((p, mode))
        })
        .collect()
}

#[cfg(unix)]
fn other_readable_mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    (meta.is_file() && mode & 0o004 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn other_readable_mode(_: &std::fs::Metadata) -> Option<u32> {
    None
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tayori-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    // Temporary files are private (0600); what we publish is for everyone to read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

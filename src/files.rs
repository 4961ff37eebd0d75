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

/// Reads a file the office drops in (a subscriber list): only a regular file, opened without
/// blocking (a FIFO or device never hangs the reader), at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, device or socket is never read)",
        ));
    }
    if meta.len() > limit {
        return Err(std::io::Error::other(format!(
            "{} bytes, over the limit of {limit}",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "over the limit of {limit} bytes"
        )));
    }
    Ok(bytes)
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

//! Shared helpers for the integration tests: a newsletter folder, the binary, and a real SMTP
//! server (aiosmtpd, started as a child process).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The Python with aiosmtpd, or `None` (skipping) when not installed and not required.
pub fn python() -> Option<String> {
    match std::env::var("TAYORI_PYTHON") {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("TAYORI_REQUIRE_TOOLS").is_ok() => panic!("TAYORI_PYTHON is not set"),
        _ => {
            eprintln!("SKIPPED: TAYORI_PYTHON not set; run scripts/test to install aiosmtpd");
            None
        }
    }
}

pub fn tayori(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tayori"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("tayori runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running aiosmtpd; killed on drop.
pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    pub fn start(python: &str, args: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("SMTP server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .expect("PORT line");
        SmtpServer { port, dir, child }
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// How many messages each recipient got (lower-cased).
    pub fn per_recipient(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for r in self.received() {
            for a in r["rcpt"].as_array().unwrap() {
                *m.entry(a.as_str().unwrap().to_lowercase()).or_default() += 1;
            }
        }
        m
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A newsletter folder whose store exists (so new posts become an issue), pointing at `smtp`.
pub fn newsletter_with_smtp(port: Option<u16>, concurrency: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = std::fs::read_to_string(fixtures().join("tayori.yaml")).unwrap();
    if let Some(port) = port {
        cfg.push_str(&format!(
            "smtp:\n  url: smtp://127.0.0.1:{port}\n  concurrency: {concurrency}\n"
        ));
    }
    std::fs::write(dir.path().join("tayori.yaml"), cfg).unwrap();
    std::fs::create_dir_all(dir.path().join("posts")).unwrap();
    std::fs::create_dir_all(dir.path().join("subscribers")).unwrap();
    for f in ["clients.csv", "peers.yaml"] {
        std::fs::copy(
            fixtures().join("subscribers").join(f),
            dir.path().join("subscribers").join(f),
        )
        .unwrap();
    }
    let o = tayori(dir.path(), &["build"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    dir
}

/// Drops the Markdown sample into `posts/`.
pub fn add_post(root: &Path) {
    std::fs::copy(
        fixtures().join("posts/2026-11-09-menkai-koryu.md"),
        root.join("posts/2026-11-09-menkai-koryu.md"),
    )
    .unwrap();
}

/// Writes a list of `n` subscribers `user0000@example.test`… as `subscribers/many.csv`.
pub fn many_subscribers(root: &Path, n: usize) {
    let mut csv = String::from("email,name\n");
    for i in 0..n {
        csv.push_str(&format!("user{i:05}@example.test,読者 {i}\n"));
    }
    std::fs::write(root.join("subscribers/many.csv"), csv).unwrap();
}

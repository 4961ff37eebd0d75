//! Shared helpers for the integration tests: a newsletter folder, the binary, and a real SMTP
//! server (aiosmtpd, started as a child process).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub mod dns;
pub mod dovecot;
pub mod postfix;
pub mod wordpress;

/// An HTTP client on tayori's one TLS provider (reqwest is built without one of its own).
pub fn http() -> reqwest::Client {
    tayori::tls::http().build().expect("an HTTP client")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The Python with aiosmtpd and the other test tools (set by scripts/test). Tests that need it
/// are `#[ignore]`d with the reason, so a plain `cargo test` shows them as ignored.
pub fn python() -> String {
    match std::env::var("TAYORI_PYTHON") {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("TAYORI_PYTHON is not set: run scripts/test, which installs aiosmtpd"),
    }
}

/// A child process killed (and reaped) when dropped, so a failing test never leaves it running.
pub struct Spawned(pub Child);

impl Spawned {
    /// Starts `tayori --root ROOT ARGS…` with output discarded.
    pub fn tayori(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        Spawned(
            Command::new(env!("CARGO_BIN_EXE_tayori"))
                .arg("--root")
                .arg(root)
                .args(args)
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("tayori starts"),
        )
    }
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tayori --root ROOT ARGS…` with extra environment variables, to the end.
pub fn tayori_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tayori"))
        .arg("--root")
        .arg(root)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("tayori runs")
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

/// What `tayori status --subscriber ADDRESS` prints: one reader's record.
pub fn subscriber_record(root: &Path, address: &str) -> String {
    text(&tayori(root, &["status", "--subscriber", address]).stdout)
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

    /// Every message received so far. The server appends while we read: a last line without
    /// its newline is still being written and is left for the next read.
    pub fn received(&self) -> Vec<serde_json::Value> {
        let all =
            std::fs::read_to_string(self.dir.path().join("received.jsonl")).unwrap_or_default();
        let complete = &all[..all.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The envelope sender of the message to `rcpt` (its VERP address).
    pub fn mail_from_to(&self, rcpt: &str) -> String {
        self.received()
            .iter()
            .find(|m| m["rcpt"][0] == rcpt)
            .and_then(|m| m["mail_from"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no message to {rcpt}"))
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
    let dir = fresh_folder(port.map(|p| smtp_block(p, concurrency)).as_deref());
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

/// A newsletter folder as a new office has it: config, lists, empty `posts/`, no `state/`.
pub fn fresh_folder(smtp: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = std::fs::read_to_string(fixtures().join("tayori.yaml")).unwrap();
    cfg = cfg.replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0");
    if let Some(block) = smtp {
        cfg.push_str(block);
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
    dir
}

/// `smtp:` for a server on this port.
pub fn smtp_block(port: u16, concurrency: u32) -> String {
    format!("smtp:\n  url: smtp://127.0.0.1:{port}\n  concurrency: {concurrency}\n")
}

/// Every `.eml` in `outbox/`, by file name.
pub fn outbox(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("outbox"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A small tmpfs mounted at `at` (the tests run as root in CI), unmounted on drop; `None`
/// with the reason printed where mounting is refused here.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a small tmpfs at `at`. A test that cannot mount one fails with the reason (it is
    /// `#[ignore]`d, so it runs only where asked to: as root, by scripts/test) — never a pass.
    pub fn mount(at: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .output();
        match o {
            Ok(o) if o.status.success() => Tmpfs(at.to_path_buf()),
            Ok(o) => cannot_mount(text(&o.stderr).trim()),
            Err(e) => cannot_mount(&e.to_string()),
        }
    }

    /// Fills the file system until it is full.
    pub fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4k"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .stderr(Stdio::null())
            .status();
    }

    /// Frees what [`Tmpfs::fill`] took.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.0.join("filler"));
    }
}

fn cannot_mount(why: &str) -> ! {
    panic!("mount tmpfs: {why} (needs root: scripts/test runs this test as root)");
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Waits for a condition on the outside world (a file, an HTTP answer, a log line).
pub fn wait_for(what: &str, timeout: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Records the last schedule tick as long ago, as if the daemon had been down since.
pub fn last_tick_long_ago(root: &Path) {
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_tick', '2024-12-01T00:00:00+00:00')",
        [],
    )
    .unwrap();
}

/// The webhook receiver (checking signatures with the `standardwebhooks` package), killed on
/// drop; its records are in `dir/hooks.jsonl`.
pub struct WebhookReceiver {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _child: Spawned,
}

impl WebhookReceiver {
    pub fn start(secret: &str, args: &[&str]) -> WebhookReceiver {
        let dir = tempfile::tempdir().unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/webhook_receiver.py");
        let mut child = Spawned(
            Command::new(python())
                .arg(&script)
                .arg(dir.path())
                .arg(secret)
                .args(args)
                .stdout(Stdio::piped())
                .spawn()
                .expect("the webhook receiver starts"),
        );
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        WebhookReceiver {
            port,
            dir,
            _child: child,
        }
    }
}

/// A browser script of `scripts/` copied beside playwright-core in `tools` (so that node finds
/// it there), with the page checks it imports; returns the copy's path.
pub fn browser_script(tools: &str, name: &str) -> PathBuf {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for f in [name, "page-checks.mjs"] {
        std::fs::copy(scripts.join(f), Path::new(tools).join(f)).unwrap();
    }
    Path::new(tools).join(name)
}

/// One part of a message (`text/plain` or `text/html`), base64-decoded.
pub fn eml_part(eml: &str, content_type: &str) -> String {
    use base64::Engine;
    let part = eml
        .split(&format!("Content-Type: {content_type}"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {content_type} part"));
    let body = part.split("\r\n\r\n").nth(1).unwrap();
    let b64: String = body.lines().take_while(|l| !l.starts_with("--")).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// `tayori run` on `root`, once it listens: the process and `http://ADDR`. Its log goes to the
/// test's output.
pub fn run_daemon(root: &Path, env: &[(&str, &str)]) -> (Spawned, String) {
    let mut d = Spawned::tayori(root, &["run"], env);
    let stderr = d.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listen=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
            }
            eprintln!("{line}");
        }
    });
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the daemon listens");
    (d, format!("http://{addr}"))
}

/// What the Nu HTML Checker finds in `files` (errors only; empty when none).
pub fn nu_errors(jar: &str, files: &[PathBuf]) -> String {
    let o = Command::new("java")
        .arg("-jar")
        .arg(jar)
        .arg("--errors-only")
        .args(files)
        .output()
        .expect("java runs");
    let report = String::from_utf8_lossy(&o.stderr).trim().to_string();
    if o.status.success() || !report.is_empty() {
        report
    } else {
        format!("the checker failed: {}", o.status)
    }
}

/// An RSA key pair made by openssl in `dir`: the private key's path (PEM) and the public key
/// as base64 SubjectPublicKeyInfo (what a DKIM record's `p=` carries).
pub fn rsa_key(dir: &Path, name: &str) -> (PathBuf, String) {
    use base64::Engine;
    let pem = dir.join(format!("{name}.pem"));
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    (
        pem,
        base64::engine::general_purpose::STANDARD.encode(&der.stdout),
    )
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl.
pub fn certificates(dir: &Path) -> (String, String, String) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", text(&o.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tayori test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let p = |f: &str| dir.join(f).display().to_string();
    (p("ca.pem"), p("srv.pem"), p("srv.key"))
}

/// A DSN as a remote server would send it back to `to`, about `rcpt`.
pub fn dsn(to: &str, rcpt: &str, status: &str, diagnostic: &str, id: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.remote.example\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{id}@mx.remote.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.example\r\n\r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n--b--\r\n"
    )
}

/// A loopback port nobody listens on now (for servers that cannot take port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a command that must succeed; its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A post's sections as (level, title), to compare with what a sample must parse to.
pub fn section_titles(p: &tayori::content::Post) -> Vec<(u8, &str)> {
    p.sections
        .iter()
        .map(|s| (s.level, s.title.as_str()))
        .collect()
}

/// SpamAssassin's verdict on one message (`-L -t`: local tests only, no network).
pub struct SpamVerdict {
    pub score: f64,
    /// The names of the rules that fired.
    pub rules: Vec<String>,
    /// The report's "Content analysis details", to show when a test fails.
    pub details: String,
}

/// Runs `sa` (the spamassassin binary) on the message in `eml`.
pub fn spamassassin(sa: &str, eml: &Path) -> SpamVerdict {
    let o = Command::new(sa)
        .args(["-L", "-t"])
        .stdin(std::fs::File::open(eml).unwrap())
        .output()
        .expect("spamassassin runs");
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    let details = report
        .split("Content analysis details:")
        .nth(1)
        .unwrap_or_else(|| panic!("no report from spamassassin: {report}"))
        .to_string();
    let score: f64 = details
        .trim_start()
        .trim_start_matches('(')
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rules = details
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.next()?.parse::<f64>().ok()?;
            w.next().map(str::to_string)
        })
        .collect();
    SpamVerdict {
        score,
        rules,
        details,
    }
}

/// `tayori run` on a folder, observed from outside: its log (kept, and echoed to the test's
/// output), its HTTP server, signals. Killed on drop.
pub struct Daemon {
    pub child: Child,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// `http://ADDR` of its server.
    pub base: String,
}

impl Daemon {
    /// Starts `tayori run` with `env`, once it listens.
    pub fn start(root: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tayori"))
            .arg("--root")
            .arg(root)
            .arg("run")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listen=").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                }
                eprintln!("run: {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the daemon listens");
        Daemon {
            child,
            log,
            base: format!("http://{addr}"),
        }
    }

    /// How many lines of its log contain `needle`.
    pub fn lines_with(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn log_has(&self, needle: &str) -> bool {
        self.lines_with(needle) > 0
    }

    /// Waits until `needle` is in `times` lines of the log.
    pub fn wait_log(&self, needle: &str, times: usize) {
        wait_for(needle, std::time::Duration::from_secs(20), || {
            self.lines_with(needle) >= times
        });
    }

    /// A GET on its server: the status (0 when nothing answered) and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            match crate::support::http()
                .get(format!("{}{path}", self.base))
                .send()
                .await
            {
                Ok(r) => {
                    let s = r.status().as_u16();
                    (s, r.text().await.unwrap_or_default())
                }
                Err(_) => (0, String::new()),
            }
        })
    }

    pub fn healthz(&self) -> u16 {
        self.get("/healthz").0
    }

    /// Sends `sig` (`-HUP`, `-TERM`…) with kill(1).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, and how it ended.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The office (editor mail) against `tayori run` and a real relay (aiosmtpd): receipts for a
//! good and a broken file, the proof with its hold and approve links, approval as the only way
//! an issue reaches a subscriber (HEAD and GET change nothing; `send` refuses), a proof made
//! outdated by an edit, `tayori hold` / `release` through the daemon, the report, and an alert
//! that reaches the webhook while the relay refuses and the office by mail once it is back.

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

const OFFICE: &str = "office@example.jp";
const READERS: [&str; 5] = [
    "hanako.sato@example.jp",
    "yumi.tanaka@example.com",
    "keiko.suzuki@example.jp",
    "zeirishi.yamada@example.net",
    "shoshi.ito@example.org",
];

/// A folder with a store, the relay on `port`, `schedule` and `editor:` with `extra` keys.
fn folder(port: u16, schedule: &str, extra: &str) -> tempfile::TempDir {
    let dir = folder_without_store(port, schedule, extra);
    let o = tayori(dir.path(), &["build"]);
    assert!(o.status.success(), "{}", text_of(&o.stderr));
    dir
}

/// [`folder`] before its first start.
fn folder_without_store(port: u16, schedule: &str, extra: &str) -> tempfile::TempDir {
    let dir = fresh_folder(Some(&smtp_block(port, 2)));
    let cfg = dir.path().join("tayori.yaml");
    let mut text = std::fs::read_to_string(&cfg).unwrap().replace(
        "schedule: \"0 9 * * Mon\"",
        &format!("schedule: \"{schedule}\""),
    );
    text.push_str(&format!("editor:\n  to: [{OFFICE}]\n{extra}"));
    std::fs::write(&cfg, text).unwrap();
    dir
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The mails of one `X-Tayori-Kind` received so far.
fn office_mail(server: &SmtpServer, kind: &str) -> Vec<serde_json::Value> {
    server
        .received()
        .into_iter()
        .filter(|m| m["headers"]["X-Tayori-Kind"] == kind)
        .collect()
}

fn wait_office(server: &SmtpServer, kind: &str, n: usize) -> Vec<serde_json::Value> {
    wait_for(&format!("{n} {kind} mail"), Duration::from_secs(60), || {
        office_mail(server, kind).len() >= n
    });
    office_mail(server, kind)
}

/// Messages that reached a subscriber (anyone but the office).
fn to_readers(server: &SmtpServer) -> usize {
    server
        .per_recipient()
        .iter()
        .filter(|(a, _)| a.as_str() != OFFICE)
        .map(|(_, n)| n)
        .sum()
}

/// Waits until `n` more schedule ticks passed (the daemon records each in the store).
fn ticks_pass(root: &Path, n: usize) {
    let read = || {
        let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
        db.query_row("SELECT value FROM meta WHERE key = 'last_tick'", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_or_default()
    };
    let mut seen = vec![read()];
    wait_for(&format!("{n} ticks"), Duration::from_secs(30), || {
        let now = read();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        seen.len() > n
    });
}

fn http(method: &str, url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = support::http().request(m, url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// The path of the proof's link for `action` (`/editor/approve/<token>`), from its text part.
fn link(proof: &serde_json::Value, action: &str) -> String {
    let text = proof["text"].as_str().unwrap();
    let at = text
        .find(&format!("/editor/{action}/"))
        .unwrap_or_else(|| panic!("no {action} link in the proof:\n{text}"));
    text[at..].split_whitespace().next().unwrap().to_string()
}

fn add(root: &Path, name: &str, body: &str) {
    let tmp = root.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, root.join("posts").join(name)).unwrap();
}

const GOOD: &str =
    "---\ntitle: 養育費の見直しについて\n---\n\n養育費は事情が変われば見直せます。\n";
const BROKEN: &str = "---\ntitle: 壊れた記事\ndate: 2026-13-45\n---\n\n本文です。\n";

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn a_good_and_a_broken_file_give_one_receipt_to_the_office_and_nothing_to_readers() {
    let server = SmtpServer::start(&python(), &[]);
    let dir = folder(server.port, "0 9 * * Mon", "  review: 0\n");
    let root = dir.path();
    let (_d, _base) = run_daemon(root, &[]);
    add(root, "2026-12-01-youikuhi.md", GOOD);
    add(root, "broken.md", BROKEN);
    let receipts = wait_office(&server, "receipt", 1);
    let r = &receipts[0];
    println!("receipt subject: {}\n{}", r["subject"], r["text"]);
    assert_eq!(r["rcpt"], serde_json::json!([OFFICE]), "to the office only");
    assert!(
        r["headers"].get("List-Unsubscribe").is_none(),
        "not a newsletter message"
    );
    let text = r["text"].as_str().unwrap();
    // Both files may come in one receipt or in two (they may be read a moment apart).
    let all: String = wait_and_join(&server, text, "broken.md");
    assert!(all.contains("養育費の見直しについて"), "{all}");
    assert!(all.contains("http"), "the web address: {all}");
    assert!(
        all.contains("5 人の読者"),
        "to how many readers (3 clients, 2 peers): {all}"
    );
    assert!(
        all.contains("posts/broken.md:3: "),
        "file:line of the problem: {all}"
    );
    assert!(all.contains("→ "), "what to do: {all}");
    let before = office_mail(&server, "receipt").len();
    // The broken file again, unchanged: not told again; a new good file is.
    add(root, "broken.md", BROKEN);
    add(
        root,
        "2026-12-02-menkai.md",
        "---\ntitle: 面会交流の決め方\n---\n\n本文。\n",
    );
    let receipts = wait_office(&server, "receipt", before + 1);
    let last = receipts.last().unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last.contains("面会交流の決め方"), "{last}");
    assert!(
        !last.contains("broken.md"),
        "a refusal unchanged is not told again: {last}"
    );
    assert_eq!(to_readers(&server), 0, "no reader gets editor mail");
}

/// Every receipt's text joined, once one mentions `needle`.
fn wait_and_join(server: &SmtpServer, first: &str, needle: &str) -> String {
    if first.contains(needle) {
        return first.to_string();
    }
    wait_for(needle, Duration::from_secs(30), || {
        office_mail(server, "receipt")
            .iter()
            .any(|m| m["text"].as_str().unwrap().contains(needle))
    });
    office_mail(server, "receipt")
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn with_approval_nothing_reaches_a_reader_until_an_editor_posts_the_approve_link() {
    let server = SmtpServer::start(&python(), &[]);
    let dir = folder(
        server.port,
        "*/2 * * * * *",
        "  review: 24h\n  approval: true\n",
    );
    let root = dir.path();
    let (_d, base) = run_daemon(root, &[]);
    add(root, "2026-12-01-youikuhi.md", GOOD);
    let proof = wait_office(&server, "proof", 1).remove(0);
    println!("proof subject: {}", proof["subject"]);
    assert!(proof["subject"].as_str().unwrap().starts_with("【校正】"));
    assert_eq!(proof["rcpt"], serde_json::json!([OFFICE]));
    assert!(
        proof["html"].as_str().unwrap().contains("見本 太郎"),
        "addressed to the sample reader"
    );
    let approve = link(&proof, "approve");
    let _hold = link(&proof, "hold");
    ticks_pass(root, 3);
    assert_eq!(to_readers(&server), 0, "ticks pass while unapproved");
    // Mail scanners open every link: HEAD and GET show a page and change nothing.
    let (status, _) = http("HEAD", &format!("{base}{approve}"));
    assert_eq!(status, 200);
    let (status, page) = http("GET", &format!("{base}{approve}"));
    assert_eq!(status, 200);
    assert!(page.contains("<form method=\"post\""), "{page}");
    ticks_pass(root, 2);
    assert_eq!(to_readers(&server), 0, "HEAD and GET approve nothing");
    let o = tayori(root, &["send"]);
    println!("send: {}", text_of(&o.stderr));
    assert_eq!(o.status.code(), Some(2), "send refuses while unapproved");
    assert!(
        text_of(&o.stderr).contains("approval"),
        "{}",
        text_of(&o.stderr)
    );
    assert_eq!(to_readers(&server), 0, "send sent nothing");
    let (status, page) = http("POST", &format!("{base}{approve}"));
    assert_eq!(status, 200, "{page}");
    wait_for("every reader", Duration::from_secs(30), || {
        to_readers(&server) >= READERS.len()
    });
    let report = wait_office(&server, "report", 1).remove(0);
    println!("report: {}\n{}", report["subject"], report["text"]);
    assert!(report["text"].as_str().unwrap().contains("送信済み: 5 人"));
    ticks_pass(root, 2);
    let got = server.per_recipient();
    for r in READERS {
        assert_eq!(got.get(r), Some(&1), "{r} once: {got:?}");
    }
    // The link of an issue sent is void.
    let (status, _) = http("POST", &format!("{base}{approve}"));
    assert_eq!(status, 404);
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn an_edit_after_the_proof_sends_a_new_proof_and_voids_the_old_links() {
    let server = SmtpServer::start(&python(), &[]);
    let dir = folder(
        server.port,
        "*/2 * * * * *",
        "  review: 24h\n  approval: true\n",
    );
    let root = dir.path();
    let (_d, base) = run_daemon(root, &[]);
    add(root, "2026-12-01-youikuhi.md", GOOD);
    let old = link(&wait_office(&server, "proof", 1)[0], "approve");
    add(
        root,
        "2026-12-01-youikuhi.md",
        &format!("{GOOD}\n追記: 相談は無料です。\n"),
    );
    let proofs = wait_office(&server, "proof", 2);
    let new = link(&proofs[1], "approve");
    assert_ne!(old, new);
    assert!(
        proofs[1]["text"].as_str().unwrap().contains("追記"),
        "the new proof shows the edit"
    );
    let (status, page) = http("GET", &format!("{base}{old}"));
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("古くなりました"), "{page}");
    let (status, _) = http("POST", &format!("{base}{old}"));
    assert_eq!(status, 404);
    ticks_pass(root, 2);
    assert_eq!(to_readers(&server), 0, "the old approval approves nothing");
    let (status, _) = http("POST", &format!("{base}{new}"));
    assert_eq!(status, 200);
    wait_for("every reader", Duration::from_secs(30), || {
        to_readers(&server) >= READERS.len()
    });
    let sent = server
        .received()
        .into_iter()
        .find(|m| m["rcpt"][0] == READERS[0])
        .unwrap();
    assert!(
        sent["text"].as_str().unwrap().contains("追記"),
        "the approved version went"
    );
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn hold_and_release_through_a_running_daemon() {
    let server = SmtpServer::start(&python(), &[]);
    let dir = folder(server.port, "0 9 * * Mon", "  review: 0\n");
    let root = dir.path();
    let (_d, _base) = run_daemon(root, &[]);
    let o = tayori(root, &["hold"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "nothing pending: {}",
        text_of(&o.stderr)
    );
    add(root, "2026-12-01-youikuhi.md", GOOD);
    wait_office(&server, "receipt", 1);
    let o = tayori(root, &["hold"]);
    println!("hold: {}{}", text_of(&o.stdout), text_of(&o.stderr));
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text_of(&o.stderr).contains("asking it"),
        "through the daemon"
    );
    let o = tayori(root, &["status"]);
    assert!(
        text_of(&o.stdout).contains("held"),
        "status says so: {}",
        text_of(&o.stdout)
    );
    let o = tayori(root, &["send"]);
    assert_eq!(o.status.code(), Some(2), "held: {}", text_of(&o.stderr));
    assert!(
        text_of(&o.stderr).contains("hold"),
        "{}",
        text_of(&o.stderr)
    );
    assert_eq!(to_readers(&server), 0);
    let o = tayori(root, &["release"]);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o.stderr));
    let o = tayori(root, &["send"]);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o.stderr));
    assert_eq!(to_readers(&server), READERS.len());
    wait_office(&server, "report", 1);
    let o = tayori(root, &["release"]);
    assert_eq!(o.status.code(), Some(1), "nothing pending any more");
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn a_relay_refusing_mail_alerts_the_webhook_and_the_office_once_it_is_back() {
    let refusing = SmtpServer::start(
        &python(),
        &["--reject-mail-from", "550 5.7.1 sender rejected"],
    );
    let port = refusing.port;
    let hooks = WebhookReceiver::start("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &[]);
    let dir = folder(
        port,
        "*/2 * * * * *",
        &format!(
            "  review: 0\n  alert_webhook: http://127.0.0.1:{}/alerts\n",
            hooks.port
        ),
    );
    let root = dir.path();
    let (_d, _base) = run_daemon(
        root,
        &[
            ("TAYORI_ISSUE_RETRY_MS", "500"),
            (
                "TAYORI_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ],
    );
    add(root, "2026-12-01-youikuhi.md", GOOD);
    let file = hooks.dir.path().join("hooks.jsonl");
    let started = std::time::Instant::now();
    wait_for("the alert at the webhook", Duration::from_secs(60), || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("\"alert\""))
    });
    println!(
        "webhook after {:?}: {}",
        started.elapsed(),
        std::fs::read_to_string(&file).unwrap()
    );
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let body = &first["body"];
    assert_eq!(first["verified"], true, "signed with the webhook secret");
    assert_eq!(body["type"], "alert");
    assert_eq!(body["cause"], "sending");
    assert!(body["text"].as_str().unwrap().contains("550"), "{body}");
    assert!(body["at"].as_str().unwrap().ends_with('Z'));
    assert!(refusing.received().is_empty());
    let status = text_of(&tayori(root, &["status"]).stdout);
    assert!(status.contains("alerts to the office: sending"), "{status}");
    assert!(status.contains("editor mail waiting"), "{status}");
    drop(refusing);
    let server = SmtpServer::start(&python(), &["--port", &port.to_string()]);
    let alert = wait_office(&server, "alert", 1).remove(0);
    println!("alert mail: {}\n{}", alert["subject"], alert["text"]);
    assert!(alert["text"].as_str().unwrap().contains("どうすればよいか"));
    wait_for("every reader", Duration::from_secs(60), || {
        to_readers(&server) >= READERS.len()
    });
    wait_office(&server, "resolved", 1);
    ticks_pass(root, 2);
    let got = server.per_recipient();
    for r in READERS {
        assert_eq!(got.get(r), Some(&1), "{r} once: {got:?}");
    }
    assert_eq!(
        office_mail(&server, "alert").len(),
        1,
        "one alert for one cause"
    );
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn the_back_catalogue_of_a_first_start_is_one_line() {
    let server = SmtpServer::start(&python(), &[]);
    let dir = folder_without_store(server.port, "0 9 * * Mon", "  review: 0\n");
    let root = dir.path();
    add(root, "2026-10-01-old.md", GOOD);
    add(
        root,
        "2026-10-02-older.md",
        "---\ntitle: 古い記事\n---\n\n本文。\n",
    );
    let (_d, _base) = run_daemon(root, &[]);
    let r = wait_office(&server, "receipt", 1).remove(0);
    let text = r["text"].as_str().unwrap();
    println!("{text}");
    assert!(text.contains("これまでの記事 2 件"), "{text}");
    assert!(!text.contains("■ 公開"), "no line per old post: {text}");
    assert_eq!(to_readers(&server), 0);
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn send_without_a_daemon_mails_the_office_its_report() {
    let server = SmtpServer::start(&python(), &[]);
    let dir = folder(server.port, "0 9 * * Mon", "  review: 0\n");
    let root = dir.path();
    add(root, "2026-12-01-youikuhi.md", GOOD);
    let o = tayori(root, &["send"]);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o.stderr));
    assert_eq!(to_readers(&server), READERS.len());
    let reports = office_mail(&server, "report");
    assert_eq!(reports.len(), 1, "the report comes with the send");
    let text = reports[0]["text"].as_str().unwrap();
    println!("{}\n{text}", reports[0]["subject"]);
    assert!(text.contains("送信済み: 5 人"), "{text}");
    assert_eq!(reports[0]["rcpt"], serde_json::json!([OFFICE]));
}

#[test]
#[ignore = "needs aiosmtpd, SpamAssassin and Chromium: scripts/test installs them and runs ignored tests"]
fn receipt_proof_and_report_score_at_most_one_in_spamassassin_and_render_cleanly_in_chromium() {
    let sa = std::env::var("TAYORI_SPAMASSASSIN").expect("TAYORI_SPAMASSASSIN (scripts/test)");
    let server = SmtpServer::start(&python(), &[]);
    let dir = folder(
        server.port,
        "*/2 * * * * *",
        "  review: 24h\n  approval: true\n",
    );
    let root = dir.path();
    let (_d, base) = run_daemon(root, &[]);
    add(root, "2026-12-01-youikuhi.md", GOOD);
    add(root, "broken.md", BROKEN);
    let proof = wait_office(&server, "proof", 1).remove(0);
    let (status, _) = http("POST", &format!("{base}{}", link(&proof, "approve")));
    assert_eq!(status, 200);
    wait_office(&server, "report", 1);
    let all = server.received();
    for kind in ["receipt", "proof", "report"] {
        let i = all
            .iter()
            .position(|m| m["headers"]["X-Tayori-Kind"] == kind)
            .unwrap();
        let eml = server.dir.path().join("raw").join(format!("{i}.eml"));
        let SpamVerdict { score, details, .. } = spamassassin(&sa, &eml);
        println!("{kind}: SpamAssassin {score}");
        assert!(score <= 1.0, "{kind}: {score}\n{details}");
    }
    // Each kind's HTML at 375 and 600 px, light and dark: no overflow, no low contrast.
    let tools = std::env::var("TAYORI_NODE_TOOLS").expect("TAYORI_NODE_TOOLS (scripts/test)");
    let htmls = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for kind in ["receipt", "proof", "report"] {
        let m = all
            .iter()
            .find(|m| m["headers"]["X-Tayori-Kind"] == kind)
            .unwrap();
        let file = htmls.path().join(format!("editor-{kind}.html"));
        std::fs::write(&file, m["html"].as_str().unwrap()).unwrap();
        files.push(file);
    }
    let copy = browser_script(&tools, "screenshots.mjs");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let o = std::process::Command::new("node")
        .arg(&copy)
        .arg(&out)
        .args(&files)
        .output()
        .expect("node runs");
    let report = text_of(&o.stdout);
    println!("{report}");
    assert!(
        o.status.success(),
        "Chromium found:\n{report}{}",
        text_of(&o.stderr)
    );
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn editor_mail_is_dkim_signed_like_an_issue_and_carries_no_list_headers() {
    let py = python();
    let server = SmtpServer::start(&py, &[]);
    let dir = folder(server.port, "0 9 * * Mon", "  review: 0\n");
    let root = dir.path();
    let (_, public) = rsa_key(root, "dkim");
    let cfg = root.join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  concurrency: 2\n",
        "  concurrency: 2\n  dkim:\n    domain: example.jp\n    selector: news\n    private_key_file: dkim.pem\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let (_d, _base) = run_daemon(root, &[]);
    add(root, "2026-12-01-youikuhi.md", GOOD);
    let receipt = wait_office(&server, "receipt", 1).remove(0);
    let headers = receipt["headers"].as_object().unwrap();
    for h in ["List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"] {
        assert!(!headers.contains_key(h), "{h} on editor mail: {headers:?}");
    }
    assert!(headers["From"]
        .as_str()
        .unwrap()
        .contains("news@example.jp"));
    let raw = server.dir.path().join("raw/0.eml");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_verify.py");
    let v = std::process::Command::new(&py)
        .arg(&script)
        .arg(&public)
        .arg(&raw)
        .output()
        .unwrap();
    let report = text_of(&v.stdout);
    println!("{report}");
    assert!(report.contains(" ok "), "{report}{}", text_of(&v.stderr));
    let signed = report.split_whitespace().nth(2).unwrap_or("");
    for h in ["from", "to", "subject", "date", "message-id"] {
        assert!(
            signed.split(':').any(|s| s == h),
            "{h} not signed: {report}"
        );
    }
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn an_alert_survives_a_kill_and_is_told_once_after_the_restart() {
    let refusing = SmtpServer::start(&python(), &["--reject-mail-from", "451 4.3.0 try later"]);
    let port = refusing.port;
    let hooks = WebhookReceiver::start("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &[]);
    let dir = folder(
        port,
        "0 9 * * Mon",
        &format!(
            "  review: 0\n  alert_webhook: http://127.0.0.1:{}/alerts\n",
            hooks.port
        ),
    );
    let root = dir.path();
    let file = hooks.dir.path().join("hooks.jsonl");
    let of_type = |t: &str| {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"type\": \"{t}\"")))
            .count()
    };
    let (d, _base) = run_daemon(root, &[]);
    add(root, "2026-12-01-youikuhi.md", GOOD);
    wait_for("the alert at the webhook", Duration::from_secs(60), || {
        of_type("alert") == 1
    });
    drop(d); // SIGKILL: nothing is finished gracefully
    drop(refusing);
    let server = SmtpServer::start(&python(), &["--port", &port.to_string()]);
    let (_d, _base) = run_daemon(root, &[]);
    wait_office(&server, "resolved", 1);
    wait_for(
        "the resolution at the webhook",
        Duration::from_secs(30),
        || of_type("resolved") == 1,
    );
    assert_eq!(
        office_mail(&server, "receipt").len(),
        1,
        "the receipt, once"
    );
    assert_eq!(office_mail(&server, "alert").len(), 1, "the alert, once");
    assert_eq!(of_type("alert"), 1, "the webhook told once");
    assert_eq!(to_readers(&server), 0);
}

#[test]
#[ignore = "needs aiosmtpd and the Nu HTML Checker: scripts/test installs them and runs ignored tests"]
fn the_hold_and_approve_pages_pass_the_nu_checker() {
    let jar = std::env::var("TAYORI_VNU_JAR").expect("TAYORI_VNU_JAR (scripts/test)");
    let server = SmtpServer::start(&python(), &[]);
    let dir = folder(
        server.port,
        "0 9 * * Mon",
        "  review: 30d\n  approval: true\n",
    );
    let root = dir.path();
    let (_d, base) = run_daemon(root, &[]);
    add(root, "2026-12-01-youikuhi.md", GOOD);
    let proof = wait_office(&server, "proof", 1).remove(0);
    let pages = tempfile::tempdir().unwrap();
    let save = |name: &str, (status, body): (u16, String)| {
        println!("{name}: {status}");
        std::fs::write(pages.path().join(name), body).unwrap();
    };
    let (hold, approve) = (link(&proof, "hold"), link(&proof, "approve"));
    save("hold.html", http("GET", &format!("{base}{hold}")));
    save("approve.html", http("GET", &format!("{base}{approve}")));
    save("approved.html", http("POST", &format!("{base}{approve}")));
    save("held.html", http("POST", &format!("{base}{hold}")));
    save(
        "invalid.html",
        http("GET", &format!("{base}/editor/approve/forged")),
    );
    let files: Vec<_> = std::fs::read_dir(pages.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let report = nu_errors(&jar, &files);
    assert!(report.is_empty(), "Nu HTML Checker:\n{report}");
    let o = tayori(root, &["status"]);
    assert!(
        text_of(&o.stdout).contains("held"),
        "the hold link held it: {}",
        text_of(&o.stdout)
    );
}

#[test]
#[ignore = "needs aiosmtpd and root (a tmpfs): scripts/test runs ignored tests as root"]
fn under_100_mib_free_under_the_folder_the_office_gets_one_alert() {
    let server = SmtpServer::start(&python(), &[]);
    let made = folder(server.port, "0 9 * * Mon", "  review: 0\n");
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("newsletter");
    let _fs = Tmpfs::mount(&root, "size=16m");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", made.path().display()))
        .arg(&root)
        .status()
        .unwrap();
    assert!(copied.success());
    let (_d, _base) = run_daemon(&root, &[]);
    let alert = wait_office(&server, "alert", 1).remove(0);
    let text = alert["text"].as_str().unwrap();
    println!("{}\n{text}", alert["subject"]);
    assert!(text.contains("100 MiB 未満"), "{text}");
    assert!(text.contains("どうすればよいか"), "{text}");
    assert_eq!(office_mail(&server, "alert").len(), 1);
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn kill_9_between_the_approval_and_the_end_of_sending_still_reaches_each_reader_once() {
    const N: usize = 300;
    let server = SmtpServer::start(&python(), &["--delay-ms", "5"]);
    let dir = folder(
        server.port,
        "*/2 * * * * *",
        "  review: 24h\n  approval: true\n",
    );
    let root = dir.path();
    many_subscribers(root, N);
    let (d, base) = run_daemon(root, &[]);
    add(root, "2026-12-01-youikuhi.md", GOOD);
    let proof = wait_office(&server, "proof", 1).remove(0);
    let approve = link(&proof, "approve");
    let (status, page) = http("POST", &format!("{base}{approve}"));
    assert_eq!(status, 200, "{page}");
    wait_for("the issue under way", Duration::from_secs(30), || {
        to_readers(&server) >= N / 4
    });
    drop(d); // SIGKILL
    let before = to_readers(&server);
    assert!(before < N + READERS.len(), "killed mid-issue: {before}");
    // The approval was recorded: the restarted daemon resumes without asking again.
    let (_d, _) = run_daemon(root, &[]);
    wait_for("every reader", Duration::from_secs(60), || {
        server
            .per_recipient()
            .keys()
            .filter(|a| a.as_str() != OFFICE)
            .count()
            == N + READERS.len()
    });
    let duplicates: usize = server
        .per_recipient()
        .iter()
        .filter(|(a, _)| a.as_str() != OFFICE)
        .map(|(_, n)| n - 1)
        .sum();
    println!("killed after {before}; duplicates after restart: {duplicates}");
    assert!(
        duplicates <= 4,
        "at most the messages in flight (2 connections × 2): {duplicates}"
    );
}

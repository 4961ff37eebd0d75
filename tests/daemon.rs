//! `tayori run` as a process, observed only from outside: files dropped into `posts/`, feeds
//! over HTTP (read by feed-rs), messages at a real SMTP server (aiosmtpd), signed webhooks at a
//! receiver that checks them with the `standardwebhooks` package, and kill -9 mid-issue.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

fn feed_titles(xml: &str) -> Vec<String> {
    feed_rs::parser::parse(xml.as_bytes())
        .map(|f| {
            f.entries
                .into_iter()
                .filter_map(|e| e.title.map(|t| t.content))
                .collect()
        })
        .unwrap_or_default()
}

/// A folder with store and lists, listening on a free port, with `schedule`.
fn folder(smtp: Option<u16>, schedule: &str, extra: &str) -> tempfile::TempDir {
    let dir = newsletter_with_smtp(smtp, 2);
    let cfg = dir.path().join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            "schedule: \"0 9 * * Mon\"",
            &format!("schedule: \"{schedule}\""),
        )
        .replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0");
    std::fs::write(&cfg, format!("{text}{extra}")).unwrap();
    dir
}

fn atomic_write(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

const MENKAI: &str = "面会交流のルールを決めるときに考えておきたいこと";

#[test]
fn publishes_files_as_meant_and_rejects_bad_ones_without_stopping() {
    let dir = folder(None, "0 9 1 1 *", "");
    let d = Daemon::start(dir.path(), &[]);
    let posts = dir.path().join("posts");

    // Atomic drop.
    atomic_write(
        &posts.join("2026-11-09-menkai-koryu.md"),
        &std::fs::read(fixtures().join("posts/2026-11-09-menkai-koryu.md")).unwrap(),
    );
    wait_for(
        "the dropped post in feed.xml",
        Duration::from_secs(5),
        || feed_titles(&d.get("/feed.xml").1).contains(&MENKAI.to_string()),
    );

    // Editor temp files, a bad post and a binary file: rejected or ignored, nothing stops.
    std::fs::write(posts.join(".menkai.md.swp"), b"\0\0swap").unwrap();
    std::fs::write(posts.join("menkai.md~"), b"---\ntitle: backup\n---\nx\n").unwrap();
    std::fs::copy(
        fixtures().join("bad/bad-date.md"),
        posts.join("bad-date.md"),
    )
    .unwrap();
    std::fs::copy(fixtures().join("bad/photo.png"), posts.join("photo.txt")).unwrap();
    wait_for("the bad post's rejection", Duration::from_secs(5), || {
        d.log_has("rejected file") && d.log_has("bad-date.md")
    });
    wait_for(
        "the binary file's rejection",
        Duration::from_secs(5),
        || d.log_has("photo.txt") && d.log_has("binary"),
    );
    assert!(
        !d.log_has(".swp") && !d.log_has("menkai.md~"),
        "temp files are ignored silently"
    );

    // Written slowly through one open file: not read before the writer closes it.
    let slow = posts.join("slow.md");
    let mut f = std::fs::File::create(&slow).unwrap();
    f.write_all("---\ntitle: ゆっくり書いた記事\n---\n\n前半".as_bytes())
        .unwrap();
    f.flush().unwrap();
    std::thread::sleep(watch_quiet() * 4); // a pause longer than the quiet period
    assert!(
        !feed_titles(&d.get("/feed.xml").1)
            .iter()
            .any(|t| t.contains("ゆっくり")),
        "read while still open"
    );
    f.write_all("と後半\n".as_bytes()).unwrap();
    drop(f);
    wait_for("the slow post", Duration::from_secs(5), || {
        d.get("/posts/slow.html").1.contains("前半と後半")
    });

    // Edited: the feed follows; deleted: it goes.
    let md = posts.join("2026-11-09-menkai-koryu.md");
    let edited = std::fs::read_to_string(&md)
        .unwrap()
        .replace("寒くなってきました", "冷えてきました");
    atomic_write(&md, edited.as_bytes());
    wait_for("the edit", Duration::from_secs(5), || {
        d.get("/posts/menkai-koryu.html")
            .1
            .contains("冷えてきました")
    });
    std::fs::remove_file(&md).unwrap();
    wait_for("the deletion", Duration::from_secs(5), || {
        d.get("/posts/menkai-koryu.html").0 == 404
    });
    assert!(!feed_titles(&d.get("/feed.xml").1).contains(&MENKAI.to_string()));
    assert!(
        !dir.path().join("outbox").exists(),
        "no email without a tick"
    );

    let status = d.stop();
    assert!(status.success(), "SIGTERM ends with exit 0: {status:?}");
}

fn watch_quiet() -> Duration {
    tayori::watch::QUIET
}

fn received_by(server: &SmtpServer, address: &str) -> usize {
    server.per_recipient().get(address).copied().unwrap_or(0)
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn ticks_send_issues_and_one_click_unsubscribe_holds_for_the_next() {
    let py = python();
    let server = SmtpServer::start(&py, &[]);
    let dir = folder(Some(server.port), "*/2 * * * * *", "");
    let d = Daemon::start(dir.path(), &[]);
    wait_for("the next tick in the log", Duration::from_secs(5), || {
        d.log_has("next_tick=")
    });
    let posts = dir.path().join("posts");
    atomic_write(
        &posts.join("2026-11-09-menkai-koryu.md"),
        &std::fs::read(fixtures().join("posts/2026-11-09-menkai-koryu.md")).unwrap(),
    );
    wait_for(
        "the first issue at every subscriber",
        Duration::from_secs(20),
        || server.per_recipient().len() == 5,
    );

    // Hanako unsubscribes with one click, from her own message's List-Unsubscribe header.
    let msgs = server.received();
    let hers = msgs
        .iter()
        .find(|m| m["rcpt"][0] == "hanako.sato@example.jp")
        .unwrap();
    let link = hers["headers"]["List-Unsubscribe"]
        .as_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_string();
    let path = &link[link.find("/unsubscribe/").unwrap()..];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        support::http()
            .post(format!("{}{path}", d.base))
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);

    std::fs::copy(
        fixtures().join("posts/notes/2026-11-12-note.md"),
        posts.join("2026-11-12-note.md"),
    )
    .unwrap();
    wait_for("the second issue", Duration::from_secs(20), || {
        received_by(&server, "yumi.tanaka@example.com") == 2
    });
    wait_for(
        "the second issue everywhere",
        Duration::from_secs(10),
        || server.received().len() == 9,
    );
    assert_eq!(
        received_by(&server, "hanako.sato@example.jp"),
        1,
        "unsubscribed before the second issue"
    );
    assert!(d.stop().success());
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn webhooks_are_signed_retried_with_one_id_and_recover() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = WebhookReceiver::start(secret, &["--fail-first", "2"]);
    let port = receiver.port;
    let dir = folder(
        None,
        "0 9 1 1 *",
        &format!("webhook:\n  url: http://127.0.0.1:{port}/hook\n  secret: {secret}\n"),
    );
    let d = Daemon::start(dir.path(), &[("TAYORI_WEBHOOK_FIRST_RETRY_MS", "200")]);
    atomic_write(
        &dir.path().join("posts/2026-11-09-menkai-koryu.md"),
        &std::fs::read(fixtures().join("posts/2026-11-09-menkai-koryu.md")).unwrap(),
    );
    let hooks_file = receiver.dir.path().join("hooks.jsonl");
    let read = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&hooks_file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait_for("a delivered webhook", Duration::from_secs(20), || {
        read().iter().any(|h| h["status"] == 200)
    });
    let got = read();
    assert_eq!(got.len(), 3, "two failures, then success: {got:?}");
    assert!(
        got.iter().all(|h| h["verified"] == true),
        "standardwebhooks verifies every attempt"
    );
    assert!(
        got.iter().all(|h| h["id"] == got[0]["id"]),
        "one id for every retry"
    );
    let body = &got[2]["body"];
    assert_eq!(body["type"], "post.published");
    assert_eq!(body["data"]["title"], MENKAI);
    assert_eq!(
        body["data"]["url"],
        "https://example.jp/blog/posts/menkai-koryu.html"
    );
    assert_eq!(body["data"]["id"], body["data"]["url"]);
    assert!(body["data"]["html"]
        .as_str()
        .unwrap()
        .contains("決めておきたい項目"));
    assert!(body["data"]["editors_note_html"]
        .as_str()
        .unwrap()
        .contains("先週は"));
    assert_eq!(body["data"]["published_at"], "2026-11-09T08:00:00+09:00");
    assert!(d.stop().success());
    let status = text(&tayori(dir.path(), &["status"]).stdout);
    assert!(
        status.contains("post.published") && status.contains("500, 500, 200"),
        "{status}"
    );
    drop(receiver);
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn kill_9_mid_issue_then_restart_reaches_everyone() {
    let py = python();
    const N: usize = 300;
    let server = SmtpServer::start(&py, &["--delay-ms", "5"]);
    let dir = folder(Some(server.port), "*/2 * * * * *", "");
    many_subscribers(dir.path(), N);
    let d = Daemon::start(dir.path(), &[]);
    add_post(dir.path());
    wait_for("the issue under way", Duration::from_secs(20), || {
        server.received().len() >= N / 4
    });
    drop(d); // SIGKILL
    let before = server.received().len();
    assert!(before < N + 5);
    let d = Daemon::start(dir.path(), &[]);
    wait_for("every subscriber", Duration::from_secs(30), || {
        server.per_recipient().len() == N + 5
    });
    let duplicates: usize = server.per_recipient().values().map(|n| n - 1).sum();
    eprintln!("killed after {before}; duplicates after restart: {duplicates}");
    assert!(
        duplicates <= 4,
        "at most the messages in flight (2 connections × 2)"
    );
    assert!(d.stop().success());
}

#[test]
fn a_future_dated_post_publishes_at_its_time_without_a_restart() {
    let dir = folder(None, "0 9 1 1 *", "");
    let d = Daemon::start(dir.path(), &[]);
    let at = chrono::Utc::now() + chrono::TimeDelta::seconds(3);
    let post = format!(
        "---\ntitle: 予約投稿の記事\ndate: {}\n---\n\n本文です。\n",
        at.to_rfc3339()
    );
    atomic_write(&dir.path().join("posts/scheduled.md"), post.as_bytes());
    wait_for("the file to be read", Duration::from_secs(5), || {
        d.get("/feed.xml").0 == 200 && dir.path().join("state/tayori.sqlite3").exists()
    });
    std::thread::sleep(watch_quiet() * 2);
    assert!(
        !feed_titles(&d.get("/feed.xml").1).contains(&"予約投稿の記事".to_string()),
        "not before its time"
    );
    wait_for("the post at its time", Duration::from_secs(10), || {
        feed_titles(&d.get("/feed.xml").1).contains(&"予約投稿の記事".to_string())
    });
    assert!(
        chrono::Utc::now() >= at,
        "published no earlier than its date"
    );
    assert!(d.stop().success());
}

/// The schedule of a folder made by [`fresh_folder`].
fn set_schedule(root: &Path, schedule: &str) {
    let cfg = root.join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "schedule: \"0 9 * * Mon\"",
        &format!("schedule: \"{schedule}\""),
    );
    std::fs::write(cfg, text).unwrap();
}

fn new_article(root: &Path, slug: &str, title: &str) {
    atomic_write(
        &root.join("posts").join(format!("{slug}.md")),
        format!("---\ntitle: {title}\n---\n\n本文です。\n").as_bytes(),
    );
}

#[test]
fn a_fresh_folder_emails_an_article_dropped_the_moment_healthz_answers() {
    let dir = fresh_folder(None);
    let root = dir.path();
    set_schedule(root, "*/2 * * * * *");
    add_post(root); // there before the first start: the back catalogue
    assert!(!root.join("state").exists());
    let d = Daemon::start(root, &[]);
    wait_for("/healthz", Duration::from_secs(10), || {
        d.get("/healthz").0 == 200
    });
    new_article(root, "first-news", "事務所からの最初のお知らせ");
    wait_for(
        "the first issue in outbox/",
        Duration::from_secs(20),
        || outbox(root).len() == 5,
    );
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(
        status.contains("「事務所からの最初のお知らせ」"),
        "{status}"
    );
    assert!(
        !status.contains(MENKAI),
        "the back catalogue is never emailed: {status}"
    );

    // And so is every article dropped later in that same first run.
    new_article(root, "second-news", "二つ目のお知らせ");
    wait_for("the second issue", Duration::from_secs(20), || {
        outbox(root).len() == 10
    });
    assert!(d.stop().success());
}

#[test]
fn fifos_and_symlinks_out_of_posts_never_freeze_the_daemon() {
    let dir = folder(None, "0 9 1 1 *", "");
    let posts = dir.path().join("posts");
    assert!(Command::new("mkfifo")
        .arg(posts.join("fifo.md"))
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("/dev/zero", posts.join("zero.md")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("tayori.yaml"), posts.join("cfg.txt")).unwrap();
    let d = Daemon::start(dir.path(), &[]);
    assert_eq!(d.get("/healthz").0, 200);
    new_article(dir.path(), "after-fifo", "FIFOの後の記事");
    wait_for("the next post", Duration::from_secs(5), || {
        d.get("/posts/after-fifo.html").0 == 200
    });
    assert!(d.log_has("fifo.md") && d.log_has("FIFO"));
    assert!(
        !d.get("/feed.xml").1.contains("listen:"),
        "the config is never published"
    );
    let started = std::time::Instant::now();
    assert!(d.stop().success());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn posts_gone_for_a_while_delete_nothing_and_are_watched_again() {
    let dir = folder(None, "0 9 1 1 *", "");
    let root = dir.path();
    add_post(root);
    let d = Daemon::start(root, &[]);
    wait_for("the post", Duration::from_secs(5), || {
        d.get("/posts/menkai-koryu.html").0 == 200
    });
    std::fs::rename(root.join("posts"), root.join("posts.away")).unwrap();
    wait_for("the failed listing", Duration::from_secs(10), || {
        d.log_has("publishing failed")
    });
    assert_eq!(d.get("/posts/menkai-koryu.html").0, 200, "nothing deleted");
    assert!(feed_titles(&d.get("/feed.xml").1).contains(&MENKAI.to_string()));
    // Back as a new folder (remounted, or made again by a sync client): a new watch.
    std::fs::create_dir(root.join("posts")).unwrap();
    for e in std::fs::read_dir(root.join("posts.away"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), root.join("posts").join(e.file_name())).unwrap();
    }
    wait_for("the watch again", Duration::from_secs(20), || {
        d.log_has("watching again")
    });
    new_article(root, "back-again", "戻ってきたフォルダの記事");
    wait_for("a post dropped after", Duration::from_secs(10), || {
        d.get("/posts/back-again.html").0 == 200
    });
    assert!(!d.log_has("deleted"), "no post.deleted");
    assert!(d.stop().success());
}

#[test]
#[ignore = "mounts a tmpfs, as root: scripts/test runs ignored tests"]
fn a_publish_that_failed_is_retried_without_another_file_event() {
    let dir = folder(None, "0 9 1 1 *", "");
    let root = dir.path();
    let d = Daemon::start(root, &[]);
    let ro = Tmpfs::mount(&root.join("public"), "size=64k,ro");
    new_article(root, "retried", "再試行される記事");
    wait_for("the failure", Duration::from_secs(10), || {
        d.log_has("publishing failed")
    });
    drop(ro);
    wait_for("the retry", Duration::from_secs(30), || {
        d.get("/posts/retried.html").0 == 200
    });
    assert!(d.stop().success());
}

#[test]
fn slow_and_idle_clients_cannot_starve_the_server() {
    use std::io::Read;
    let dir = folder(None, "0 9 1 1 *", "");
    let d = Daemon::start(dir.path(), &[]);
    let addr = d.base.trim_start_matches("http://").to_string();
    // More idle connections than the server serves at once.
    let idle: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(idle.len() >= 290);
    let started = std::time::Instant::now();
    wait_for(
        "an answer past the idle clients",
        Duration::from_secs(15),
        || d.get("/healthz").0 == 200,
    );
    eprintln!(
        "/healthz answered after {:?} behind {} idle connections",
        started.elapsed(),
        idle.len()
    );

    // A request whose headers never end is cut.
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /feed.xml HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    half.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = half.read_to_end(&mut buf);
    let waited = started.elapsed();
    eprintln!("half-sent request closed after {waited:?}");
    assert!(waited < Duration::from_secs(12), "closed after {waited:?}");
    drop(idle);
    assert!(d.stop().success());
}

#[test]
#[ignore = "needs aiosmtpd or another Python tool: scripts/test installs them and runs ignored tests"]
fn an_issue_stopped_by_a_server_that_is_down_goes_out_once_it_is_back_without_a_tick() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Once a year: only the catch-up at start ticks, so only a retry can send it later.
    let dir = folder(Some(port), "0 9 1 1 *", "");
    let root = dir.path();
    add_post(root);
    assert!(tayori(root, &["build"]).status.success());
    last_tick_long_ago(root);
    let d = Daemon::start(root, &[("TAYORI_ISSUE_RETRY_MS", "300")]);
    wait_for("the stopped issue", Duration::from_secs(20), || {
        d.log_has("cannot connect") && d.log_has("tried again")
    });
    let server = SmtpServer::start(&python(), &["--port", &port.to_string()]);
    wait_for(
        "the issue once the server is back",
        Duration::from_secs(30),
        || server.per_recipient().len() == 5,
    );
    assert!(server.per_recipient().values().all(|n| *n == 1));
    assert!(d.stop().success());
}

#[test]
fn ticks_on_a_day_without_an_issue_pass_and_the_post_waits_for_the_first_tick_after() {
    let dir = fresh_folder(None);
    let root = dir.path();
    set_schedule(root, "*/2 * * * * *");
    // Today and tomorrow in Tokyo, so that midnight during the test changes nothing.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .date_naive();
    let closed = format!(
        "calendar:\n  skip: [\"{today}..{}\"]\n",
        today + chrono::TimeDelta::days(1)
    );
    let cfg = root.join("tayori.yaml");
    let open = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{open}{closed}")).unwrap();

    let o = tayori(root, &["check"]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "a warning only: {err}");
    assert!(
        err.contains("warning: the next tick")
            && err.contains(&format!(
                "falls on a day without an issue (calendar.skip {today}.."
            )),
        "{err}"
    );

    let d = Daemon::start(root, &[]);
    wait_for("/healthz", Duration::from_secs(10), || {
        d.get("/healthz").0 == 200
    });
    new_article(root, "closed-days", "休業日に書いた記事");
    let passes = || {
        d.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("passes: no issue today"))
            .count()
    };
    wait_for("the article published", Duration::from_secs(10), || {
        d.get("/feed.xml").1.contains("休業日に書いた記事")
    });
    let before = passes();
    wait_for("two ticks that pass", Duration::from_secs(20), || {
        passes() >= before + 2
    });
    assert!(outbox(root).is_empty(), "no issue on a skipped day");
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(
        status.contains("posts waiting for the next issue: closed-days"),
        "{status}"
    );
    assert!(
        status.contains("sending: `tayori run` (pid ")
            && status.contains("holds this folder's sender lock"),
        "{status}"
    );
    assert!(d.stop().success());

    // The office opens again: the waiting post goes out at the first tick.
    std::fs::write(&cfg, open).unwrap();
    let d = Daemon::start(root, &[]);
    wait_for(
        "the issue after the closed days",
        Duration::from_secs(20),
        || outbox(root).len() == 5,
    );
    assert!(d.stop().success());
}

//! `tayori run` and signals and faults it must outlive, observed from outside: SIGHUP reloads
//! `tayori.yaml` (a valid file takes effect, an invalid one is logged and the running
//! configuration kept), and a panic while reading one post file is that file's error.

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

fn edit_config(root: &Path, from: &str, to: &str) {
    let cfg = root.join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(from), "{from} in tayori.yaml");
    std::fs::write(&cfg, text.replace(from, to)).unwrap();
}

fn article(root: &Path, slug: &str, title: &str) {
    let tmp = root.join("posts").join(format!(".{slug}.tmp"));
    std::fs::write(&tmp, format!("---\ntitle: {title}\n---\n\n本文です。\n")).unwrap();
    std::fs::rename(&tmp, root.join("posts").join(format!("{slug}.md"))).unwrap();
}

/// The fixture lists hold 5 subscribers: one issue is 5 `.eml` files in `outbox/`.
const ONE_ISSUE: usize = 5;

#[test]
fn sighup_applies_a_valid_schedule_and_keeps_the_running_one_when_the_file_is_invalid() {
    let dir = newsletter_with_smtp(None, 1);
    edit_config(
        dir.path(),
        "schedule: \"0 9 * * Mon\"",
        "schedule: \"0 9 1 1 *\"",
    );
    let mut d = Daemon::start(dir.path(), &[]);
    article(dir.path(), "first", "最初の記事");
    d.wait_log("published", 1);
    assert!(outbox(dir.path()).is_empty(), "no tick before next January");

    // A valid file with a schedule of every second: the next tick sends the issue.
    edit_config(
        dir.path(),
        "schedule: \"0 9 1 1 *\"",
        "schedule: \"* * * * * *\"",
    );
    d.signal("-HUP");
    d.wait_log("SIGHUP: tayori.yaml reloaded", 1);
    wait_for(
        "the issue at the new schedule",
        Duration::from_secs(20),
        || outbox(dir.path()).len() == ONE_ISSUE,
    );

    // An invalid file: said in the log; the daemon stays up on the schedule it had.
    edit_config(
        dir.path(),
        "schedule: \"* * * * * *\"",
        "schedule: \"61 * * * *\"",
    );
    d.signal("-HUP");
    d.wait_log("not reloaded", 1);
    assert!(d.lines_with("schedule") > 0);
    assert!(d.running(), "SIGHUP never ends the daemon");
    assert_eq!(d.healthz(), 200);
    article(dir.path(), "second", "二つ目の記事");
    wait_for(
        "the next issue on the kept schedule",
        Duration::from_secs(20),
        || outbox(dir.path()).len() == 2 * ONE_ISSUE,
    );

    // A key the loop does not read is said to need a restart.
    edit_config(
        dir.path(),
        "schedule: \"61 * * * *\"",
        "schedule: \"* * * * * *\"",
    );
    edit_config(dir.path(), "listen: 127.0.0.1:0", "listen: 127.0.0.1:1");
    d.signal("-HUP");
    d.wait_log("SIGHUP: tayori.yaml reloaded", 2);
    assert!(d.lines_with("server changed; it takes effect when tayori run is restarted") == 1);
    assert_eq!(d.healthz(), 200, "still serving where it listened");
    let status = d.stop();
    assert!(
        status.success(),
        "SIGTERM still ends it cleanly: {status:?}"
    );
}

#[test]
fn a_panic_reading_one_post_is_that_files_error_and_the_rest_is_published() {
    let dir = newsletter_with_smtp(None, 1);
    let env = [("TAYORI_TEST_PANIC_ON", "boom.md")];
    let mut d = Daemon::start(dir.path(), &env);
    article(dir.path(), "boom", "読めない記事");
    article(dir.path(), "fine", "読める記事");
    wait_for("the good post's page", Duration::from_secs(20), || {
        dir.path().join("public/posts/fine.html").exists()
    });
    d.wait_log("rejected file", 1);
    let rejected: Vec<String> = d
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("rejected file"))
        .cloned()
        .collect();
    assert!(
        rejected.iter().any(|l| l.contains("posts/boom.md")),
        "the log names the file: {rejected:?}"
    );
    assert!(d.running(), "the daemon goes on");
    assert_eq!(d.healthz(), 200);
    assert!(!dir.path().join("public/posts/boom.html").exists());

    // Another file after the panic is still read and published.
    article(dir.path(), "later", "あとの記事");
    wait_for("a post after the panic", Duration::from_secs(20), || {
        dir.path().join("public/posts/later.html").exists()
    });

    let status = tayori_env(dir.path(), &["status"], &env);
    let out = text(&status.stdout);
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(out.contains("invalid posts: 1"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("posts/boom.md") && l.contains("a bug")),
        "{out}"
    );
    let check = tayori_env(dir.path(), &["check"], &env);
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check.stderr).contains("posts/boom.md"));
    assert!(d.stop().success());
}

#[test]
fn a_panic_making_one_posts_page_leaves_that_post_out_and_publishes_the_rest() {
    let dir = newsletter_with_smtp(None, 1);
    let env = [("TAYORI_TEST_PANIC_ON", "page:boom.md")];
    let mut d = Daemon::start(dir.path(), &env);
    article(dir.path(), "boom", "ページが作れない記事");
    article(dir.path(), "fine", "ページが作れる記事");
    wait_for("the good post's page", Duration::from_secs(20), || {
        dir.path().join("public/posts/fine.html").exists()
    });
    d.wait_log("its page could not be made", 1);
    assert!(d
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| { l.contains("its page could not be made") && l.contains("posts/boom.md") }));
    assert!(d.running(), "the daemon goes on");
    assert_eq!(d.healthz(), 200);
    let feed = std::fs::read_to_string(dir.path().join("public/feed.xml")).unwrap();
    assert!(feed.contains("ページが作れる記事"));
    assert!(
        !feed.contains("ページが作れない記事"),
        "left out of the feed too"
    );
    assert!(!dir.path().join("public/posts/boom.html").exists());
    assert!(d.stop().success());

    let build = tayori_env(dir.path(), &["build"], &env);
    assert_eq!(
        build.status.code(),
        Some(1),
        "build reports it like an invalid post"
    );
    assert!(text(&build.stderr).contains("posts/boom.md"));
}

#[test]
fn a_panic_rendering_one_posts_email_sends_the_issue_without_it_and_keeps_it_pending() {
    let dir = newsletter_with_smtp(None, 1);
    let env = [("TAYORI_TEST_PANIC_ON", "email:boom.md")];
    article(dir.path(), "boom", "メールが作れない記事");
    article(dir.path(), "fine", "メールが作れる記事");
    let first = tayori_env(dir.path(), &["send"], &env);
    let err = text(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{err}");
    assert!(text(&first.stdout).contains("「メールが作れる記事」: 5 sent"));
    assert!(
        err.lines()
            .any(|l| l.contains("posts/boom.md") && l.contains("email could not be made")),
        "{err}"
    );
    assert_eq!(outbox(dir.path()).len(), ONE_ISSUE);

    // Fixed (the hook off): the post that waited is the next issue.
    let second = tayori(dir.path(), &["send"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert!(text(&second.stdout).contains("「メールが作れない記事」: 5 sent"));
    assert_eq!(outbox(dir.path()).len(), 2 * ONE_ISSUE);
}

#[test]
fn sighup_with_a_file_saved_half_way_that_drops_a_section_keeps_the_running_configuration() {
    let dir = newsletter_with_smtp(None, 1);
    let cfg = dir.path().join("tayori.yaml");
    let whole = std::fs::read_to_string(&cfg).unwrap() + "records:\n  keep: 5y\n";
    std::fs::write(&cfg, &whole).unwrap();
    let mut d = Daemon::start(dir.path(), &[]);
    // Cut just before the last section: still a valid file, but not the one meant.
    let cut = whole.find("records:").unwrap();
    std::fs::write(&cfg, &whole[..cut]).unwrap();
    d.signal("-HUP");
    d.wait_log(
        "not reloaded: it no longer has records: (saved half-way?)",
        1,
    );
    assert_eq!(d.lines_with("SIGHUP: tayori.yaml reloaded"), 0);
    assert!(d.running());
    // The whole file again: reloaded.
    std::fs::write(&cfg, &whole).unwrap();
    d.signal("-HUP");
    d.wait_log("SIGHUP: tayori.yaml reloaded", 1);
    assert!(d.stop().success());
}

//! Bounce reports read from a real Dovecot over IMAPS and POP3S: suppressions by why, the
//! report that matches nobody kept unread, processed ones flagged `\Seen` (IMAP) or deleted
//! (POP3, `processed: delete`), and nothing counted twice across runs.

mod support;

use std::path::Path;

use support::dovecot::{Dovecot, PASSWORD};
use support::*;

fn bounce_rows(root: &Path) -> i64 {
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    db.query_row("SELECT count(*) FROM bounces", [], |r| r.get(0))
        .unwrap()
}

fn set_mailbox(root: &Path, block: &str) {
    let cfg = root.join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let base = text.split("bounces:\n").next().unwrap().to_string();
    std::fs::write(&cfg, format!("{base}{block}")).unwrap();
}

#[test]
#[ignore = "needs Dovecot (Debian dovecot-imapd, dovecot-pop3d), aiosmtpd and root: scripts/test installs them and runs ignored tests"]
fn reports_over_imap_and_pop3_suppress_by_why_once_and_keep_what_matches_nobody() {
    let server = SmtpServer::start(&python(), &[]);
    let dovecot = Dovecot::start();
    let news = fresh_folder(Some(&format!(
        "{}bounces:\n  mailbox: imaps://bounce@127.0.0.1:{}/INBOX\n  address: bounces@example.jp\n",
        smtp_block(server.port, 2),
        dovecot.imaps
    )));
    let root = news.path();
    let env = [
        ("SSL_CERT_FILE", dovecot.ca.as_str()),
        ("TAYORI_BOUNCE_PASSWORD", PASSWORD),
    ];
    assert!(tayori_env(root, &["build"], &env).status.success());
    add_post(root);
    assert!(tayori_env(root, &["send"], &env).status.success());
    let verp_of = |rcpt: &str| server.mail_from_to(rcpt);

    // Over IMAP: one address gone (found by its VERP tag), one report about us, one about
    // nobody we know.
    let gone = verp_of("hanako.sato@example.jp");
    dovecot.deliver(
        "1.gone",
        &dsn(
            &gone,
            "hanako.sato@example.jp",
            "5.1.1",
            "550 5.1.1 User unknown",
            "i1",
        ),
    );
    dovecot.deliver(
        "2.blocked",
        &dsn(
            &verp_of("yumi.tanaka@example.com"),
            "yumi.tanaka@example.com",
            "5.7.1",
            "550 5.7.1 Service unavailable; client host blocked",
            "i2",
        ),
    );
    dovecot.deliver(
        "3.nobody",
        &dsn(
            "bounces@example.jp",
            "stranger@nowhere.example",
            "5.1.1",
            "550 5.1.1 User unknown",
            "i3",
        ),
    );
    let o = tayori_env(root, &["send"], &env);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(
        status.contains("suppressed addresses: 1\n  hanako.sato@example.jp"),
        "{status}"
    );
    assert_eq!(bounce_rows(root), 2);
    // Acted on: \Seen (Dovecot writes it into the file name); the stranger's stays unread.
    let msgs = dovecot.messages();
    assert!(
        msgs.iter()
            .any(|m| m.contains("1.gone") && m.ends_with(":2,S")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("2.blocked") && m.ends_with(":2,S")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("3.nobody") && !m.ends_with("S")),
        "{msgs:?}"
    );
    assert!(status.contains("kept: no valid VERP tag"), "{status}");

    // Again: nothing is counted twice.
    assert!(tayori_env(root, &["send"], &env).status.success());
    assert_eq!(bounce_rows(root), 2);

    // Over POP3, deleting what was acted on: a full mailbox (soft, not yet suppressed).
    set_mailbox(
        root,
        &format!(
            "bounces:\n  mailbox: pop3s://bounce@127.0.0.1:{}\n  address: bounces@example.jp\n  processed: delete\n",
            dovecot.pop3s
        ),
    );
    dovecot.deliver(
        "4.full",
        &dsn(
            &verp_of("Keiko.Suzuki@Example.JP"),
            "keiko.suzuki@example.jp",
            "5.2.2",
            "552 5.2.2 Mailbox full",
            "i4",
        ),
    );
    let o = tayori_env(root, &["send"], &env);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        bounce_rows(root),
        3,
        "the three earlier reports are not counted again"
    );
    let msgs = dovecot.messages();
    assert_eq!(
        msgs.len(),
        1,
        "only the report that matches nobody is left: {msgs:?}"
    );
    assert!(msgs[0].contains("3.nobody"), "{msgs:?}");
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(
        status.contains("suppressed addresses: 1\n"),
        "soft bounces wait for three: {status}"
    );

    // A wrong password reads nothing, says so, and decides nothing.
    let wrong = [
        ("SSL_CERT_FILE", dovecot.ca.as_str()),
        ("TAYORI_BOUNCE_PASSWORD", "nope"),
    ];
    let o = tayori_env(root, &["send"], &wrong);
    let err = text(&o.stderr);
    assert!(err.contains("refused the login of `bounce`"), "{err}");
    assert_eq!(bounce_rows(root), 3);

    // A report over the cap, on both servers: never downloaded nor parsed, kept and shown.
    let mut big = dsn(
        "bounces@example.jp",
        "stranger@nowhere.example",
        "5.1.1",
        "550 5.1.1 User unknown",
        "i5",
    );
    big.push_str(&"x".repeat(10 * 1024 * 1024 + 1));
    dovecot.deliver("5.big", &big);
    for block in [
        format!(
            "bounces:\n  mailbox: imaps://bounce@127.0.0.1:{}/INBOX\n  address: bounces@example.jp\n",
            dovecot.imaps
        ),
        format!(
            "bounces:\n  mailbox: pop3s://bounce@127.0.0.1:{}\n  address: bounces@example.jp\n",
            dovecot.pop3s
        ),
    ] {
        set_mailbox(root, &block);
        let o = tayori_env(root, &["send"], &env);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let status = text(&tayori(root, &["status"]).stdout);
        assert!(status.contains("too big to read"), "{status}");
    }
    assert!(
        dovecot
            .messages()
            .iter()
            .any(|m| m.contains("5.big") && !m.ends_with("S")),
        "{:?}",
        dovecot.messages()
    );
}

#[test]
#[ignore = "needs Dovecot (Debian dovecot-imapd, dovecot-pop3d) and root: scripts/test installs them and runs ignored tests"]
fn the_daemon_reads_a_report_the_moment_it_arrives_when_the_server_offers_idle() {
    let dovecot = Dovecot::start();
    // Polling once an hour: only IDLE can bring the report in within the test's time.
    let news = fresh_folder(Some(&format!(
        "bounces:\n  mailbox: imaps://bounce@127.0.0.1:{}/INBOX\n  poll: 1h\n",
        dovecot.imaps
    )));
    let root = news.path();
    let env = [
        ("SSL_CERT_FILE", dovecot.ca.as_str()),
        ("TAYORI_BOUNCE_PASSWORD", PASSWORD),
    ];
    let (_daemon, _) = run_daemon(root, &env);
    let log = || std::fs::read_to_string(&dovecot.log).unwrap_or_default();
    // The first reading (logged in and out) and the IDLE session (logged in, staying).
    wait_for(
        "the first reading and an IDLE session",
        std::time::Duration::from_secs(20),
        || {
            let l = log();
            l.matches("Login: user=<bounce>").count() >= 2 && l.contains("Logged out")
        },
    );
    dovecot.deliver(
        "9.late",
        &dsn(
            "bounces@example.jp",
            "stranger@nowhere.example",
            "5.1.1",
            "550 5.1.1 User unknown",
            "late",
        ),
    );
    wait_for(
        "the report read",
        std::time::Duration::from_secs(20),
        || text(&tayori(root, &["status"]).stdout).contains("late@mx.remote.example"),
    );
}

#[test]
#[ignore = "needs Postfix and Dovecot (Debian) and root: scripts/test installs them and runs ignored tests"]
fn a_dsn_postfix_itself_writes_for_an_unknown_user_comes_back_by_verp_and_suppresses_the_address() {
    let dovecot = Dovecot::start();
    let postfix = support::postfix::Postfix::start(&dovecot.maildir);
    let news = fresh_folder(Some(&format!(
        "{}bounces:\n  mailbox: imaps://bounce@127.0.0.1:{}/INBOX\n  address: bounce@bounces.test\n",
        smtp_block(postfix.port, 1),
        dovecot.imaps
    )));
    let root = news.path();
    let subs = root.join("subscribers");
    for f in ["clients.csv", "peers.yaml"] {
        std::fs::remove_file(subs.join(f)).unwrap();
    }
    std::fs::write(
        subs.join("local.csv"),
        "email,name,subscribed_at,source\nghost@mx.tayori.test,幽霊 太郎,2026-04-01T10:00:00+09:00,テスト\n",
    )
    .unwrap();
    let env = [
        ("SSL_CERT_FILE", dovecot.ca.as_str()),
        ("TAYORI_BOUNCE_PASSWORD", PASSWORD),
    ];
    assert!(tayori_env(root, &["build"], &env).status.success());
    add_post(root);
    let o = tayori_env(root, &["send"], &env);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Postfix's local delivery refuses the user and sends its DSN to bounce+<tag>@bounces.test.
    wait_for("Postfix's DSN", std::time::Duration::from_secs(30), || {
        !dovecot.messages().is_empty()
    });
    let o = tayori_env(root, &["send"], &env);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let status = text(&tayori(root, &["status"]).stdout);
    assert!(
        status.contains("suppressed addresses: 1\n  ghost@mx.tayori.test"),
        "{status}"
    );
    let record = subscriber_record(root, "ghost@mx.tayori.test");
    assert!(
        record.contains("5.1.1") && record.contains("unknown user"),
        "{record}"
    );
    let msgs = dovecot.messages();
    assert!(
        msgs.iter().all(|m| m.ends_with(":2,S")),
        "the DSN is marked read: {msgs:?}"
    );
}

//! The double opt-in sign-up over real HTTP, against `tayori run` on a fresh folder (messages
//! land in `outbox/`): the form, the confirmation email and its link, a GET that confirms
//! nothing, the POST that does, the next issue reaching the new reader, and every abuse case
//! getting the same page and no email. Then `subscribers export|add|remove|list`.

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

struct Running {
    _daemon: Spawned,
    base: String,
}

fn start(root: &Path) -> Running {
    let (daemon, base) = run_daemon(root, &[]);
    Running {
        _daemon: daemon,
        base,
    }
}

/// A request from a client at `ip` (the test's loopback is the trusted proxy).
fn post(base: &str, path: &str, ip: &str, form: &[(&str, &str)]) -> (u16, String) {
    post_with(base, path, ip, &[], form)
}

/// [`post`] with more headers (`Origin`).
fn post_with(
    base: &str,
    path: &str,
    ip: &str,
    headers: &[(&str, &str)],
    form: &[(&str, &str)],
) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = support::http()
            .post(format!("{base}{path}"))
            .header("x-forwarded-for", ip)
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let r = req.body(body).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn get(base: &str, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = support::http()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// HEAD then GET on every link of ours in `mail` (mail scanners open them all).
fn open_every_link(base: &str, mail: &str) {
    let links: Vec<&str> = mail
        .split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '(' || c == ')')
        .filter(|w| w.starts_with("https://news.example.jp/"))
        .collect();
    assert!(!links.is_empty(), "links in {mail}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = support::http();
        for link in links {
            let url = format!(
                "{base}{}",
                link.trim_start_matches("https://news.example.jp")
            );
            for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
                let r = http.request(method.clone(), &url).send().await.unwrap();
                assert!(r.status().as_u16() < 500, "{method} {url}: {}", r.status());
            }
        }
    });
}

fn suppressions(root: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    let mut q = db.prepare("SELECT address FROM suppressions").unwrap();
    let rows = q.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// The text part of an `.eml` in `outbox/`, decoded.
fn text_part(root: &Path, file: &str) -> String {
    let eml = std::fs::read_to_string(root.join("outbox").join(file)).unwrap();
    eml_part(&eml, "text/plain")
}

fn folder() -> tempfile::TempDir {
    folder_with("")
}

/// [`folder`] with `extra` configuration before `subscribe:` (an `smtp:` block).
fn folder_with(extra: &str) -> tempfile::TempDir {
    let dir = fresh_folder(Some(&format!(
        "{extra}subscribe:\n  list: web\n  keep_ip: true\n"
    )));
    let cfg = dir.path().join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("schedule: \"0 9 * * Mon\"", "schedule: \"*/2 * * * * *\"")
        .replace(
            "  public_url: http://127.0.0.1:8080",
            "  public_url: https://news.example.jp\n  trusted_proxy: 127.0.0.1",
        );
    std::fs::write(cfg, text).unwrap();
    assert!(tayori(dir.path(), &["build"]).status.success());
    dir
}

const SAME_PAGE: &str = "確認メールをお送りしました";

#[test]
fn a_reader_signs_up_confirms_with_a_post_and_gets_the_next_issue() {
    let dir = folder();
    let root = dir.path();
    let srv = start(root);

    let (status, form) = get(&srv.base, "/subscribe");
    assert_eq!(status, 200);
    for needle in [
        "name=\"email\"",
        "name=\"website\"",
        "name=\"t\"",
        "広告・宣伝を含みます",
    ] {
        assert!(form.contains(needle), "{needle} in the form");
    }

    let asked = std::time::Instant::now();
    let (status, page) = post(
        &srv.base,
        "/subscribe",
        "198.51.100.1",
        &[
            ("email", "Yoko.Kato@Example.JP"),
            ("name", "加藤 陽子"),
            ("website", ""),
        ],
    );
    let answered = asked.elapsed();
    assert_eq!(status, 200);
    assert!(page.contains(SAME_PAGE));
    wait_for("the confirmation email", Duration::from_secs(10), || {
        outbox(root).contains(&"confirm-yoko.kato@example.jp.eml".to_string())
    });
    eprintln!(
        "sign-up: page answered in {answered:?}, confirmation written after {:?}",
        asked.elapsed()
    );
    let mail = text_part(root, "confirm-yoko.kato@example.jp.eml");
    let eml =
        std::fs::read_to_string(root.join("outbox/confirm-yoko.kato@example.jp.eml")).unwrap();
    assert!(
        !mail.contains("加藤") && !eml.contains("=?utf-8?b?5Yqg6Jek"),
        "the name typed into the form is not repeated to the address: {mail}"
    );
    assert!(mail.contains("読者の皆さま"), "{mail}");
    assert!(
        mail.contains("登録") && mail.contains("住所:"),
        "the legal footer: {mail}"
    );
    let link = mail
        .split_whitespace()
        .find(|w| w.starts_with("https://news.example.jp/subscribe/confirm/"))
        .expect("a confirmation link");
    let path = link.trim_start_matches("https://news.example.jp");
    assert!(eml.contains("Subject: =?utf-8?"), "encoded subject");

    // HEAD and GET on every link of the email (what mail scanners do) change nothing.
    open_every_link(&srv.base, &mail);
    let record = subscriber_record(root, "yoko.kato@example.jp");
    assert!(record.contains("state pending"), "{record}");
    assert!(suppressions(root).is_empty());

    // A GET shows a button and confirms nothing.
    let (status, page) = get(&srv.base, path);
    assert_eq!(status, 200);
    assert!(page.contains("<form method=\"post\"") && page.contains("登録を確定する"));
    let record = subscriber_record(root, "yoko.kato@example.jp");
    assert!(record.contains("state pending"), "{record}");

    let confirming = std::time::Instant::now();
    let (status, page) = post(&srv.base, path, "198.51.100.1", &[]);
    eprintln!("confirm: answered in {:?}", confirming.elapsed());
    assert_eq!(status, 200);
    assert!(page.contains("登録が完了しました"));
    let (status, _) = post(&srv.base, path, "198.51.100.1", &[]);
    assert_eq!(status, 200, "confirming twice is harmless");
    let record = subscriber_record(root, "yoko.kato@example.jp");
    assert!(record.contains("state subscribed"), "{record}");
    assert!(record.contains("consent text shown: "), "{record}");
    assert!(record.contains("client 198.51.100.1"), "keep_ip: {record}");

    // A forged or unknown token: 404, nothing changes.
    assert_eq!(get(&srv.base, "/subscribe/confirm/forged").0, 404);
    assert_eq!(
        post(&srv.base, "/subscribe/confirm/forged", "198.51.100.1", &[]).0,
        404
    );

    // An expired link: 404, and it confirms nobody.
    post(
        &srv.base,
        "/subscribe",
        "198.51.100.2",
        &[("email", "late@example.jp")],
    );
    wait_for("the second confirmation", Duration::from_secs(10), || {
        outbox(root).contains(&"confirm-late@example.jp.eml".to_string())
    });
    let late = text_part(root, "confirm-late@example.jp.eml");
    let late_path = late
        .split_whitespace()
        .find(|w| w.starts_with("https://news.example.jp/subscribe/confirm/"))
        .unwrap()
        .trim_start_matches("https://news.example.jp")
        .to_string();
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    db.execute(
        "UPDATE signups SET token_expires = '2026-01-01T00:00:00+00:00' WHERE address = 'late@example.jp'",
        [],
    )
    .unwrap();
    drop(db);
    assert_eq!(get(&srv.base, &late_path).0, 404);
    assert_eq!(post(&srv.base, &late_path, "198.51.100.2", &[]).0, 404);
    let record = subscriber_record(root, "late@example.jp");
    assert!(record.contains("state pending"), "{record}");

    // The next issue reaches the new reader, and the list readers as before.
    add_post(root);
    let waited = std::time::Instant::now();
    wait_for("the issue", Duration::from_secs(20), || {
        if waited.elapsed() > Duration::from_secs(19) {
            eprintln!("outbox: {:?}", outbox(root));
        }
        outbox(root)
            .iter()
            .filter(|f| f.starts_with("00001-"))
            .count()
            == 6
    });
    assert!(outbox(root).contains(&"00001-yoko.kato@example.jp.eml".to_string()));
    // Every link of the issue (view in browser, unsubscribe…), opened by a scanner: nothing.
    open_every_link(
        &srv.base,
        &text_part(root, "00001-yoko.kato@example.jp.eml"),
    );
    let record = subscriber_record(root, "yoko.kato@example.jp");
    assert!(record.contains("state subscribed"), "{record}");
    assert!(suppressions(root).is_empty());

    let export = text(&tayori(root, &["subscribers", "export"]).stdout);
    let row = export
        .lines()
        .find(|l| l.starts_with("Yoko.Kato@Example.JP,"))
        .unwrap_or_else(|| panic!("{export}"));
    assert!(row.contains(",web,subscribed,web form,"), "{row}");
    assert!(
        row.contains("広告・宣伝を含みます"),
        "the consent text shown: {row}"
    );
    assert!(export
        .lines()
        .next()
        .unwrap()
        .starts_with("email,name,list,state,consent_method"));
}

#[test]
fn honeypot_a_quick_form_a_bad_address_and_a_flood_get_the_same_page_and_no_email() {
    let dir = folder();
    let root = dir.path();
    let srv = start(root);
    let (_, form) = get(&srv.base, "/subscribe");
    let stamp = form
        .split("name=\"t\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "198.51.100.10",
            vec![
                ("email", "bot@example.jp"),
                ("website", "https://spam.example"),
            ],
        ),
        (
            "198.51.100.11",
            vec![("email", "quick@example.jp"), ("t", stamp.as_str())],
        ),
        ("198.51.100.12", vec![("email", "not-an-address")]),
        (
            "198.51.100.13",
            vec![("email", "forged@example.jp"), ("t", "1.AAAA")],
        ),
    ];
    for (ip, form) in &cases {
        let (status, page) = post(&srv.base, "/subscribe", ip, form);
        assert_eq!(status, 200);
        assert!(page.contains(SAME_PAGE));
    }
    // Six requests from one client within the hour: the sixth is dropped.
    for i in 0..6 {
        let email = format!("flood{i}@example.jp");
        let (status, page) = post(
            &srv.base,
            "/subscribe",
            "198.51.100.20",
            &[("email", &email)],
        );
        assert_eq!(status, 200);
        assert!(page.contains(SAME_PAGE));
    }
    wait_for(
        "the five flood confirmations",
        Duration::from_secs(10),
        || {
            outbox(root)
                .iter()
                .filter(|f| f.starts_with("confirm-flood"))
                .count()
                == 5
        },
    );
    // One confirmation per address per hour.
    let (_, page) = post(
        &srv.base,
        "/subscribe",
        "198.51.100.21",
        &[("email", "flood0@example.jp")],
    );
    assert!(page.contains(SAME_PAGE));
    std::thread::sleep(Duration::from_millis(500)); // nothing to await: we assert an absence
    let sent = outbox(root);
    for dropped in ["bot@", "quick@", "not-an-address", "forged@", "flood5@"] {
        assert!(
            !sent.iter().any(|f| f.contains(dropped)),
            "{dropped}: {sent:?}"
        );
    }
    let record = subscriber_record(root, "flood0@example.jp");
    assert!(record.contains("state pending"), "{record}");
}

#[test]
fn the_office_adds_and_removes_by_hand_and_an_unsubscribed_reader_must_confirm_again() {
    let dir = folder();
    let root = dir.path();
    let o = tayori(
        root,
        &[
            "subscribers",
            "add",
            "Phone@Example.JP",
            "--name",
            "電話 太郎",
            "--consent",
            "2026-11-20 電話で口頭の同意",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        tayori(root, &["subscribers", "add", "nonsense", "--consent", "x"])
            .status
            .code(),
        Some(1)
    );
    let list = text(&tayori(root, &["subscribers", "list"]).stdout);
    assert!(
        list.contains("Phone@Example.JP  office  subscribed"),
        "{list}"
    );
    let export = text(&tayori(root, &["subscribers", "export"]).stdout);
    assert!(export.contains("電話で口頭の同意"), "{export}");

    let o = tayori(root, &["subscribers", "remove", "hanako.sato@example.jp"]);
    assert!(o.status.success());
    let export = text(&tayori(root, &["subscribers", "export"]).stdout);
    let row = export
        .lines()
        .find(|l| l.starts_with("hanako.sato@example.jp,"))
        .unwrap();
    assert!(row.contains(",unsubscribed,"), "{row}");

    // Removed, then asking again on the web: pending until confirmed, and not mailed.
    let srv = start(root);
    let (_, page) = post(
        &srv.base,
        "/subscribe",
        "198.51.100.30",
        &[("email", "hanako.sato@example.jp")],
    );
    assert!(page.contains(SAME_PAGE));
    wait_for("a new confirmation", Duration::from_secs(10), || {
        outbox(root).contains(&"confirm-hanako.sato@example.jp.eml".to_string())
    });
    add_post(root);
    wait_for("the issue", Duration::from_secs(20), || {
        outbox(root).iter().any(|f| f.starts_with("00001-"))
    });
    std::thread::sleep(Duration::from_millis(500));
    let sent = outbox(root);
    assert!(
        !sent.contains(&"00001-hanako.sato@example.jp.eml".to_string()),
        "{sent:?}"
    );
    assert!(
        sent.contains(&"00001-phone@example.jp.eml".to_string()),
        "{sent:?}"
    );

    let snippet = text(&tayori(root, &["subscribe-snippet"]).stdout);
    assert!(
        snippet.contains("action=\"https://news.example.jp/subscribe\""),
        "{snippet}"
    );
    assert!(snippet.contains("name=\"website\""));
}

#[test]
#[ignore = "needs the Nu HTML Checker and SpamAssassin: scripts/test installs them and runs ignored tests"]
fn sign_up_pages_pass_the_nu_checker_and_the_confirmation_is_not_spam() {
    let jar = std::env::var("TAYORI_VNU_JAR").expect("TAYORI_VNU_JAR (scripts/test)");
    let sa = std::env::var("TAYORI_SPAMASSASSIN").expect("TAYORI_SPAMASSASSIN (scripts/test)");
    let dir = folder();
    let root = dir.path();
    let srv = start(root);
    let pages = tempfile::tempdir().unwrap();
    let save = |name: &str, (status, html): (u16, String)| {
        assert!(status == 200 || status == 404, "{name}: {status}");
        std::fs::write(pages.path().join(name), html).unwrap();
    };
    save("form.html", get(&srv.base, "/subscribe"));
    save(
        "sent.html",
        post(
            &srv.base,
            "/subscribe",
            "198.51.100.40",
            &[("email", "nu@example.jp")],
        ),
    );
    wait_for("the confirmation", Duration::from_secs(10), || {
        outbox(root).contains(&"confirm-nu@example.jp.eml".to_string())
    });
    let mail = text_part(root, "confirm-nu@example.jp.eml");
    let link = mail
        .split_whitespace()
        .find(|w| w.starts_with("https://news.example.jp/subscribe/confirm/"))
        .unwrap();
    let path = link
        .trim_start_matches("https://news.example.jp")
        .to_string();
    save("confirm.html", get(&srv.base, &path));
    save("done.html", post(&srv.base, &path, "198.51.100.40", &[]));
    save("invalid.html", get(&srv.base, "/subscribe/confirm/forged"));
    let files: Vec<_> = std::fs::read_dir(pages.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let report = nu_errors(&jar, &files);
    assert!(report.is_empty(), "Nu HTML Checker:\n{report}");

    let eml = root.join("outbox/confirm-nu@example.jp.eml");
    let SpamVerdict { score, details, .. } = spamassassin(&sa, &eml);
    eprintln!("confirmation email: SpamAssassin score {score}");
    assert!(score <= 1.0, "score {score}:\n{details}");
}

#[test]
#[ignore = "needs Chromium, playwright-core and aiosmtpd: scripts/test installs them and runs ignored tests"]
fn a_reader_signs_up_in_a_real_browser_and_gets_the_next_issue() {
    let tools = std::env::var("TAYORI_NODE_TOOLS").expect("TAYORI_NODE_TOOLS (scripts/test)");
    let server = SmtpServer::start(&python(), &[]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = fresh_folder(Some(&format!(
        "{}subscribe:\n  list: web\n  welcome: true\n",
        smtp_block(server.port, 2)
    )));
    let root = dir.path();
    // The browser follows the links, so they point at this server.
    let cfg = std::fs::read_to_string(root.join("tayori.yaml"))
        .unwrap()
        .replace("schedule: \"0 9 * * Mon\"", "schedule: \"*/2 * * * * *\"")
        .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"))
        .replace(
            "public_url: http://127.0.0.1:8080",
            &format!("public_url: http://127.0.0.1:{port}"),
        );
    std::fs::write(root.join("tayori.yaml"), cfg).unwrap();
    assert!(tayori(root, &["build"]).status.success());
    let _d = start(root);

    let copy = browser_script(&tools, "signup-browser.mjs");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let reader = "browser.reader@example.jp";
    let o = std::process::Command::new("node")
        .arg(&copy)
        .arg(&out)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(reader)
        .arg(server.dir.path().join("received.jsonl"))
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "the browser found:\n{report}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for page in ["form", "sent", "confirm", "done"] {
        for scheme in ["light", "dark"] {
            assert!(out.join(format!("signup-{page}-375-{scheme}.png")).exists());
        }
    }
    wait_for("the welcome email", Duration::from_secs(10), || {
        server.received().iter().any(|m| {
            m["rcpt"][0] == reader && m["subject"].as_str().unwrap().contains("ありがとう")
        })
    });
    add_post(root);
    wait_for(
        "the next issue to the new reader",
        Duration::from_secs(20),
        || {
            server.received().iter().any(|m| {
                m["rcpt"][0] == reader
                    && m["subject"] == "面会交流のルールを決めるときに考えておきたいこと"
            })
        },
    );
}

/// What the store says of an address's confirmation: attempts made, when one was sent, when
/// the next attempt is due.
fn confirmation_of(root: &Path, address: &str) -> (i64, Option<String>, Option<String>) {
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    db.query_row(
        "SELECT confirmation_attempts, confirmation_sent_at, confirmation_due FROM signups
         WHERE address = ?1",
        [address],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap_or((0, None, None))
}

#[test]
#[ignore = "needs aiosmtpd: scripts/test installs it and runs ignored tests"]
fn a_confirmation_lost_to_a_relay_outage_is_sent_once_when_the_relay_is_back_even_after_a_restart()
{
    let port = free_port(); // the relay's port, with nothing listening yet
    let dir = folder_with(&smtp_block(port, 1));
    let root = dir.path();
    let reader = "outage@example.jp";
    let srv = start(root);

    let (status, page) = post(
        &srv.base,
        "/subscribe",
        "198.51.100.40",
        &[("email", reader)],
    );
    assert_eq!(status, 200);
    assert!(page.contains(SAME_PAGE), "the page answers as usual");
    wait_for("a failed attempt", Duration::from_secs(10), || {
        confirmation_of(root, reader).0 >= 1
    });
    let (_, sent, due) = confirmation_of(root, reader);
    assert_eq!(sent, None, "nothing was sent");
    assert!(due.is_some(), "and it is due again");

    // Asking again while the first is unsent neither locks the reader out nor makes two.
    let (status, page) = post(
        &srv.base,
        "/subscribe",
        "198.51.100.41",
        &[("email", reader)],
    );
    assert_eq!(status, 200);
    assert!(page.contains(SAME_PAGE));

    // The daemon dies with the relay still down; the queue is in the store.
    drop(srv);
    let srv = start(root);
    let relay = SmtpServer::start(&python(), &["--port", &port.to_string()]);
    wait_for("the confirmation", Duration::from_secs(60), || {
        relay.per_recipient().contains_key(reader)
    });
    wait_for(
        "the confirmation recorded as sent",
        Duration::from_secs(10),
        || confirmation_of(root, reader).1.is_some(),
    );
    let (attempts, _, due) = confirmation_of(root, reader);
    assert_eq!(due, None, "nothing more queued after {attempts} attempts");
    assert_eq!(relay.per_recipient()[reader], 1, "exactly one confirmation");
    eprintln!("confirmation sent after {attempts} attempts across a restart");

    // Its link is the one that works.
    let mail = relay
        .received()
        .into_iter()
        .find(|m| m["rcpt"][0] == reader)
        .unwrap();
    let text = mail["text"].as_str().unwrap().to_string();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("https://news.example.jp/subscribe/confirm/"))
        .expect("a confirmation link");
    let path = link.trim_start_matches("https://news.example.jp");
    let (status, page) = post(&srv.base, path, "198.51.100.40", &[]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("登録が完了しました"));
}

#[test]
fn one_mailbox_however_written_gets_one_confirmation_an_hour_and_an_ipv6_client_is_its_64() {
    let dir = folder();
    let root = dir.path();
    let srv = start(root);
    let lure = format!(
        "{}http://evil.example/pay",
        "【重要】未払いの請求があります。".repeat(3)
    );
    assert!(lure.len() <= 200);
    let spellings = [
        ("198.51.100.50", "victim@target.example"),
        ("198.51.100.51", "\"victim\"@target.example"),
        ("198.51.100.52", "Victim@Target.Example"),
        ("198.51.100.53", "victim@例え.jp"),
        ("198.51.100.54", "victim@xn--r8jz45g.jp"),
        ("198.51.100.55", "\"victim\"@例え.JP"),
    ];
    for (ip, email) in spellings {
        let (status, page) = post(
            &srv.base,
            "/subscribe",
            ip,
            &[("email", email), ("name", &lure)],
        );
        assert_eq!((status, page.contains(SAME_PAGE)), (200, true), "{email}");
    }
    for file in [
        "confirm-victim@target.example.eml",
        "confirm-victim@xn--r8jz45g.jp.eml",
    ] {
        wait_for(file, Duration::from_secs(10), || {
            outbox(root).contains(&file.to_string())
        });
        let eml = std::fs::read_to_string(root.join("outbox").join(file)).unwrap();
        let mail = eml_part(&eml, "text/plain");
        assert!(
            !mail.contains("未払い") && !mail.contains("evil.example"),
            "the name given is not repeated: {mail}"
        );
    }
    std::thread::sleep(Duration::from_millis(500)); // nothing to await: we assert an absence
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    let rows: Vec<(String, i64)> = db
        .prepare("SELECT address, confirmation_attempts FROM signups ORDER BY address")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            ("victim@target.example".to_string(), 1),
            ("victim@xn--r8jz45g.jp".to_string(), 1)
        ],
        "one sign-up and one confirmation per mailbox"
    );

    // Six addresses of one IPv6 /64 are one client: the sixth request is dropped; another /64
    // is another client.
    for i in 1..=6 {
        let email = format!("six{i}@example.jp");
        let ip = format!("2001:db8:1:2::{i:x}");
        let (status, page) = post(&srv.base, "/subscribe", &ip, &[("email", &email)]);
        assert_eq!((status, page.contains(SAME_PAGE)), (200, true));
    }
    post(
        &srv.base,
        "/subscribe",
        "2001:db8:1:3::1",
        &[("email", "next64@example.jp")],
    );
    wait_for(
        "five of the /64 and one of the next",
        Duration::from_secs(10),
        || {
            let sent = outbox(root);
            sent.iter().filter(|f| f.starts_with("confirm-six")).count() == 5
                && sent.contains(&"confirm-next64@example.jp.eml".to_string())
        },
    );
    std::thread::sleep(Duration::from_millis(500)); // nothing to await: we assert an absence
    assert!(!outbox(root).contains(&"confirm-six6@example.jp.eml".to_string()));
}

#[test]
fn a_sign_up_posted_from_another_site_gets_403_and_no_email() {
    let dir = folder();
    let root = dir.path();
    let srv = start(root);
    let cases = [
        ("https://evil.example", "evil@example.jp", 403),
        ("null", "null@example.jp", 403),
        (
            "https://news.example.jp.evil.example",
            "suffix@example.jp",
            403,
        ),
        ("http://news.example.jp", "plain-http@example.jp", 403),
        ("https://news.example.jp", "public-url@example.jp", 200),
        ("https://example.jp", "site-url@example.jp", 200),
    ];
    for (i, (origin, email, want)) in cases.iter().enumerate() {
        let ip = format!("198.51.100.{}", 60 + i);
        let (status, _) = post_with(
            &srv.base,
            "/subscribe",
            &ip,
            &[("origin", origin)],
            &[("email", email)],
        );
        assert_eq!(status, *want, "Origin: {origin}");
    }
    wait_for(
        "the two allowed confirmations",
        Duration::from_secs(10),
        || {
            let sent = outbox(root);
            ["public-url", "site-url"]
                .iter()
                .all(|w| sent.contains(&format!("confirm-{w}@example.jp.eml")))
        },
    );
    std::thread::sleep(Duration::from_millis(500)); // nothing to await: we assert an absence
    let sent = outbox(root);
    for refused in ["evil@", "null@", "suffix@", "plain-http@"] {
        assert!(
            !sent.iter().any(|f| f.contains(refused)),
            "{refused}: {sent:?}"
        );
    }
}

#[test]
#[ignore = "needs aiosmtpd: scripts/test installs it and runs ignored tests"]
fn tayori_send_sends_a_confirmation_left_pending_and_a_5xx_for_the_address_is_never_retried() {
    let port = free_port();
    let dir = folder_with(&smtp_block(port, 1));
    let root = dir.path();
    let srv = start(root);
    let pending = "pending@example.jp";
    post(
        &srv.base,
        "/subscribe",
        "198.51.100.70",
        &[("email", pending)],
    );
    wait_for("a failed attempt", Duration::from_secs(10), || {
        confirmation_of(root, pending).0 >= 1
    });
    drop(srv);
    // `send` sends the confirmations that are due: wait out the attempt's backoff.
    wait_for("the retry to come due", Duration::from_secs(30), || {
        confirmation_of(root, pending).2.is_some_and(|due| {
            chrono::DateTime::parse_from_rfc3339(&due).unwrap() <= chrono::Utc::now()
        })
    });

    // The relay is back, refusing one address for good; no daemon runs, but `send` does.
    let refused = "refused@example.jp";
    let relay = SmtpServer::start(
        &python(),
        &["--port", &port.to_string(), "--reject-550", refused],
    );
    let o = tayori(root, &["send"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        relay.per_recipient().get(pending),
        Some(&1),
        "sent by `send`"
    );
    assert!(confirmation_of(root, pending).1.is_some());

    let srv = start(root);
    post(
        &srv.base,
        "/subscribe",
        "198.51.100.71",
        &[("email", refused)],
    );
    wait_for("the refusal recorded", Duration::from_secs(10), || {
        confirmation_of(root, refused).0 >= 1
    });
    let (attempts, sent, due) = confirmation_of(root, refused);
    assert_eq!(
        (attempts, sent, due),
        (1, None, None),
        "refused: not retried"
    );
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    let error: String = db
        .query_row(
            "SELECT confirmation_error FROM signups WHERE address = ?1",
            [refused],
            |r| r.get(0),
        )
        .unwrap();
    assert!(error.contains("550"), "{error}");
    assert_eq!(relay.per_recipient().get(refused), None);
}

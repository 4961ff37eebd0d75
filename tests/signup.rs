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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .header("x-forwarded-for", ip)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn get(base: &str, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// The text part of an `.eml` in `outbox/`, decoded.
fn text_part(root: &Path, file: &str) -> String {
    let eml = std::fs::read_to_string(root.join("outbox").join(file)).unwrap();
    eml_part(&eml, "text/plain")
}

fn folder() -> tempfile::TempDir {
    let dir = fresh_folder(Some("subscribe:\n  list: web\n  keep_ip: true\n"));
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
    assert!(mail.contains("加藤 陽子 様"), "{mail}");
    assert!(
        mail.contains("登録") && mail.contains("住所:"),
        "the legal footer: {mail}"
    );
    let link = mail
        .split_whitespace()
        .find(|w| w.starts_with("https://news.example.jp/subscribe/confirm/"))
        .expect("a confirmation link");
    let path = link.trim_start_matches("https://news.example.jp");
    let eml =
        std::fs::read_to_string(root.join("outbox/confirm-yoko.kato@example.jp.eml")).unwrap();
    assert!(eml.contains("Subject: =?utf-8?"), "encoded subject");

    // A GET (what a mail scanner does) shows a button and confirms nothing.
    let (status, page) = get(&srv.base, path);
    assert_eq!(status, 200);
    assert!(page.contains("<form method=\"post\"") && page.contains("登録を確定する"));
    let record = text(&tayori(root, &["status", "--subscriber", "yoko.kato@example.jp"]).stdout);
    assert!(record.contains("state pending"), "{record}");

    let confirming = std::time::Instant::now();
    let (status, page) = post(&srv.base, path, "198.51.100.1", &[]);
    eprintln!("confirm: answered in {:?}", confirming.elapsed());
    assert_eq!(status, 200);
    assert!(page.contains("登録が完了しました"));
    let (status, _) = post(&srv.base, path, "198.51.100.1", &[]);
    assert_eq!(status, 200, "confirming twice is harmless");
    let record = text(&tayori(root, &["status", "--subscriber", "yoko.kato@example.jp"]).stdout);
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
    let record = text(&tayori(root, &["status", "--subscriber", "late@example.jp"]).stdout);
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
    let record = text(&tayori(root, &["status", "--subscriber", "flood0@example.jp"]).stdout);
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
    let o = std::process::Command::new(&sa)
        .args(["-L", "-t"])
        .stdin(std::fs::File::open(&eml).unwrap())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let score: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("X-Spam-Status: "))
        .and_then(|l| l.split("score=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {out}"));
    eprintln!("confirmation email: SpamAssassin score {score}");
    assert!(score <= 1.0, "score {score}:\n{out}");
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

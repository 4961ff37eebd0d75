//! Post by email against the real binary: messages written by Python's `email` package are
//! dropped into a Maildir (or delivered to a real Dovecot read over IMAPS with IDLE and POP3S),
//! `tayori run` reads them, and what lands in `posts/`, what is published, what is answered to
//! whom (with `In-Reply-To`) and what the office is alerted about is observed from outside:
//! aiosmtpd for the mail, `posts/` and `public/` for the rest. Nothing from a stranger or a
//! forger ever reaches `posts/`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

const SAKURA: &str = "sakura@example.jp";
const OFFICE: &str = "office@example.jp";
const TRUSTED: &str = "mx.example.jp";
const PASS: &str = "mx.example.jp; spf=pass smtp.mailfrom=example.jp; dkim=pass header.d=example.jp; dmarc=pass (p=none) header.from=example.jp";

/// A folder with a store whose `editor:` reads `inbox` every second.
fn folder(smtp: Option<u16>, inbox: &str, review: &str) -> tempfile::TempDir {
    let dir = fresh_folder(smtp.map(|p| smtp_block(p, 2)).as_deref());
    let cfg = dir.path().join("tayori.yaml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "editor:\n  to: [{SAKURA}, {OFFICE}]\n  review: {review}\n  inbox: {inbox}\n  poll: 1s\n  trusted_authserv_id: {TRUSTED}\n"
    ));
    std::fs::write(&cfg, text).unwrap();
    let o = tayori(dir.path(), &["build"]);
    assert!(o.status.success(), "{}", text_of(&o.stderr));
    dir
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A Maildir (`new/`, `cur/`, `tmp/`) in `dir`.
fn maildir(dir: &Path) -> PathBuf {
    let m = dir.join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(m.join(sub)).unwrap();
    }
    m
}

/// Writes a message with make_mail.py (`args` after the output path) and returns its bytes.
fn mail(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    let script = fixtures().join("../support/make_mail.py");
    let o = Command::new(python())
        .arg(&script)
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "make_mail.py: {}", text_of(&o.stderr));
    std::fs::read(&out).unwrap()
}

/// Delivers `bytes` into the Maildir as a mail server does: written in tmp/, renamed into new/.
fn drop_into(maildir: &Path, name: &str, bytes: &[u8]) {
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, maildir.join("new").join(name)).unwrap();
}

/// A Word file made by python-docx (the Japanese Word sample).
fn python_docx(dir: &Path) -> PathBuf {
    let out = dir.join("原稿.docx");
    let script = fixtures().join("../support/make_docx.py");
    let o = Command::new(python())
        .arg(script)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text_of(&o.stderr));
    out
}

/// A Word file converted by LibreOffice from an HTML page with a heading.
fn libreoffice_docx(dir: &Path) -> PathBuf {
    let html = dir.join("lo-kiji.html");
    std::fs::write(
        &html,
        "<html><head><meta charset=\"utf-8\"><title>財産分与</title></head><body><h1>財産分与の基本</h1><p>夫婦で築いた財産は原則として半分ずつ分けます。</p><h2>対象になるもの</h2><p>預貯金、不動産、保険の解約返戻金など。</p></body></html>",
    )
    .unwrap();
    let o = Command::new("soffice")
        .args([
            "--headless",
            "--convert-to",
            "docx:MS Word 2007 XML",
            "--outdir",
        ])
        .arg(dir)
        .arg(&html)
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "soffice: {}", text_of(&o.stderr));
    dir.join("lo-kiji.docx")
}

fn posts(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("posts"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn today() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y-%m-%d")
        .to_string()
}

fn office_mail(server: &SmtpServer, kind: &str) -> Vec<serde_json::Value> {
    server
        .received()
        .into_iter()
        .filter(|m| m["headers"]["X-Tayori-Kind"] == kind)
        .collect()
}

fn wait_mail(server: &SmtpServer, kind: &str, n: usize) -> Vec<serde_json::Value> {
    wait_for(&format!("{n} {kind} mail"), Duration::from_secs(60), || {
        office_mail(server, kind).len() >= n
    });
    office_mail(server, kind)
}

/// The answer whose `In-Reply-To` is `id`.
fn answer_to<'a>(mails: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    mails
        .iter()
        .find(|m| m["headers"]["In-Reply-To"] == id)
        .unwrap_or_else(|| panic!("no answer to {id} among {mails:#?}"))
}

#[test]
#[ignore = "needs aiosmtpd and python-docx: scripts/test installs them and runs ignored tests"]
fn a_word_file_and_a_plain_mail_vouched_for_are_published_and_answered_while_a_forger_and_a_stranger_publish_nothing(
) {
    let server = SmtpServer::start(&python(), &[]);
    let work = tempfile::tempdir().unwrap();
    let inbox = maildir(work.path());
    let dir = folder(
        Some(server.port),
        &format!("maildir://{}", inbox.display()),
        "30d",
    );
    let root = dir.path();
    // An hour between polls: the second forgery below comes in by the watch on new/.
    let cfg = root.join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("poll: 1s", "poll: 1h");
    std::fs::write(&cfg, text).unwrap();
    let docx = python_docx(work.path());
    let word = mail(
        work.path(),
        "word.eml",
        &[
            "--from",
            &format!("山本 さくら <{SAKURA}>"),
            "--subject",
            "今週の記事です",
            "--message-id",
            "<word-1@example.jp>",
            "--references",
            "<earlier-0@example.jp>",
            "--auth",
            PASS,
            "--text",
            "記事を添付します。\n\n-- \n山本 さくら\n",
            "--attach",
            docx.to_str().unwrap(),
        ],
    );
    let plain = mail(
        work.path(),
        "plain.eml",
        &[
            "--from", SAKURA,
            "--subject", "年末年始の休業のお知らせ",
            "--message-id", "<plain-1@example.jp>",
            "--auth", PASS,
            "--text", "12月29日から1月3日まで休業いたします。\n\nご相談の予約はメールで承ります。\n\nOn Mon, Nov 30, 2026 at 9:00 AM 事務局 <office@example.jp> wrote:\n> 休業のお知らせを出してください\n\n-- \n山本 さくら\n",
        ],
    );
    // The same address, vouched for by another server only; the trusted one says dmarc=fail.
    let forged = mail(
        work.path(),
        "forged.eml",
        &[
            "--from", SAKURA,
            "--subject", "至急: 号外",
            "--message-id", "<forged-1@evil.example>",
            "--auth", "mx.evil.example; dmarc=pass header.from=example.jp",
            "--auth", "mx.example.jp; spf=fail smtp.mailfrom=evil.example; dmarc=fail (p=none) header.from=example.jp",
            "--text", "偽の記事\n",
        ],
    );
    let stranger = mail(
        work.path(),
        "stranger.eml",
        &[
            "--from",
            "someone@stranger.example",
            "--subject",
            "記事を載せてください",
            "--message-id",
            "<s-1@stranger.example>",
            "--auth",
            "mx.example.jp; dmarc=pass header.from=stranger.example",
            "--text",
            "宣伝です\n",
        ],
    );
    drop_into(&inbox, "1.word", &word);
    drop_into(&inbox, "2.plain", &plain);
    drop_into(&inbox, "3.forged", &forged);
    drop_into(&inbox, "4.stranger", &stranger);
    let d = Daemon::start(root, &[]);

    // Her two messages land in posts/, dated, and nothing else does.
    let date = today();
    let word_file = format!("{date}-原稿.docx");
    let plain_file = format!("{date}-mail-1.txt");
    wait_for("two posts", Duration::from_secs(30), || {
        posts(root).len() >= 2
    });
    let receipts = wait_mail(&server, "receipt", 2);
    assert_eq!(posts(root), vec![plain_file.clone(), word_file.clone()]);
    let txt = std::fs::read_to_string(root.join("posts").join(&plain_file)).unwrap();
    println!("{plain_file}:\n{txt}");
    assert!(
        txt.starts_with("年末年始の休業のお知らせ\n\n12月29日から"),
        "{txt}"
    );
    assert!(
        !txt.contains("休業のお知らせを出してください") && !txt.contains("wrote:"),
        "quote dropped: {txt}"
    );
    assert!(!txt.contains("山本 さくら"), "signature dropped: {txt}");

    // Published: the archive links both.
    let index = std::fs::read_to_string(root.join("public/index.html")).unwrap();
    assert!(
        index.contains("年末年始の休業のお知らせ"),
        "plain mail published"
    );
    let feed = std::fs::read_to_string(root.join("public/feed.xml")).unwrap();
    assert_eq!(feed.matches("<item>").count(), 2, "two posts in the feed");

    // Each is answered to her alone, in the thread of her message.
    for r in &receipts {
        println!(
            "receipt: {} to {} in reply to {}\n{}",
            r["subject"], r["rcpt"], r["headers"]["In-Reply-To"], r["text"]
        );
    }
    let w = answer_to(&receipts, "<word-1@example.jp>");
    assert_eq!(
        w["rcpt"],
        serde_json::json!([SAKURA]),
        "to the editor who sent it"
    );
    assert_eq!(w["subject"], "Re: 今週の記事です");
    let refs = w["headers"]["References"].as_str().unwrap();
    assert!(
        refs.contains("<earlier-0@example.jp>") && refs.contains("<word-1@example.jp>"),
        "{refs}"
    );
    assert!(
        w["text"]
            .as_str()
            .unwrap()
            .contains("https://example.jp/blog/"),
        "with the post's address"
    );
    let p = answer_to(&receipts, "<plain-1@example.jp>");
    assert_eq!(p["rcpt"], serde_json::json!([SAKURA]));
    assert_eq!(p["subject"], "Re: 年末年始の休業のお知らせ");
    assert!(p["text"]
        .as_str()
        .unwrap()
        .contains("年末年始の休業のお知らせ"));

    // The proof of the pending issue answers her too (review: 30d: due at once).
    let proofs = wait_mail(&server, "proof", 1);
    let last = proofs.last().unwrap();
    println!(
        "proof: {} in reply to {}",
        last["subject"], last["headers"]["In-Reply-To"]
    );
    assert!(last["headers"]["In-Reply-To"]
        .as_str()
        .is_some_and(|i| i.ends_with("@example.jp>")));

    // The forger: nothing published, one alert to the office (both editors).
    let alerts = wait_mail(&server, "alert", 1);
    println!("alert: {}\n{}", alerts[0]["subject"], alerts[0]["text"]);
    assert!(alerts[0]["subject"]
        .as_str()
        .unwrap()
        .contains("なりすまし"));
    assert!(alerts[0]["text"].as_str().unwrap().contains(SAKURA));
    let alerted: Vec<&str> = alerts
        .iter()
        .map(|a| a["rcpt"][0].as_str().unwrap())
        .collect();
    wait_for("the alert to both editors", Duration::from_secs(30), || {
        office_mail(&server, "alert").len() >= 2
    });
    println!("alerted: {alerted:?}");

    // A second forgery within the hour: still nothing published, no second alert.
    let again = mail(
        work.path(),
        "forged2.eml",
        &[
            "--from",
            SAKURA,
            "--subject",
            "もう一度",
            "--message-id",
            "<forged-2@evil.example>",
            "--auth",
            "mx.example.jp; dmarc=fail header.from=example.jp",
            "--text",
            "偽の記事 2\n",
        ],
    );
    drop_into(&inbox, "5.forged", &again);
    wait_for("the second forgery read", Duration::from_secs(30), || {
        inbox.join("cur/5.forged:2,S").exists()
    });

    // The stranger: no answer, left unread; the others are marked seen.
    let everyone: Vec<String> = server
        .received()
        .iter()
        .flat_map(|m| m["rcpt"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(
        !everyone.iter().any(|a| a.contains("stranger")),
        "never answered: {everyone:?}"
    );
    assert!(inbox.join("new/4.stranger").exists(), "left unread");
    for seen in ["1.word", "2.plain", "3.forged"] {
        assert!(
            inbox.join(format!("cur/{seen}:2,S")).exists(),
            "{seen} marked seen"
        );
    }
    assert_eq!(
        posts(root).len(),
        2,
        "nothing from the forger or the stranger"
    );
    let alerts = office_mail(&server, "alert");
    let mut rcpts: Vec<&str> = alerts
        .iter()
        .map(|a| a["rcpt"][0].as_str().unwrap())
        .collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        [OFFICE, SAKURA],
        "one alert an hour, to every editor"
    );
    assert!(
        office_mail(&server, "resolved").is_empty(),
        "nothing clears a forgery"
    );
    assert_eq!(
        d.lines_with("cause=\"forged\""),
        1,
        "the second forgery is not told"
    );
    assert_eq!(
        d.lines_with("not from an editor"),
        1,
        "a stranger is logged once"
    );

    let status = text_of(&tayori(root, &["status"]).stdout);
    println!("{status}");
    assert!(status.contains("editor inbox: last read"), "{status}");
    assert!(
        status.contains("messages taken: 2; refused: 0; from strangers (left unread): 1; forged (nothing published, alerted): 2"),
        "{status}"
    );
    assert!(d.stop().success());
}

#[test]
#[ignore = "needs Python's email package, python-docx and LibreOffice: scripts/test installs them and runs ignored tests"]
fn every_attachment_is_checked_before_it_is_written_and_each_refusal_is_answered() {
    let work = tempfile::tempdir().unwrap();
    let inbox = maildir(work.path());
    let dir = folder(None, &format!("maildir://{}", inbox.display()), "0");
    let root = dir.path();
    let config_before = std::fs::read(root.join("tayori.yaml")).unwrap();
    let yaml = work.path().join("tayori.yaml");
    std::fs::write(&yaml, "site: {title: 乗っ取り}\n").unwrap();
    let md = work.path().join("note.md");
    std::fs::write(
        &md,
        "---\ntitle: 面会交流の Q&A\n---\n\n面会交流は子どものための制度です。\n",
    )
    .unwrap();
    let huge = work.path().join("huge.txt");
    std::fs::write(&huge, "あ".repeat(10 * 1024 * 1024)).unwrap(); // 30 MB
    let photo = work.path().join("photo.jpg");
    std::fs::write(&photo, b"\xff\xd8\xff\xe0 not really a photo").unwrap();
    let lo = libreoffice_docx(work.path());
    let many = mail(
        work.path(),
        "many.eml",
        &[
            "--from",
            SAKURA,
            "--subject",
            "記事いろいろ",
            "--message-id",
            "<many-1@example.jp>",
            "--auth",
            PASS,
            "--text",
            "添付をご確認ください。\n",
            "--attach",
            &format!("{}=../../tayori.yaml", yaml.display()),
            "--attach",
            &format!("{}=../../面会交流.md", md.display()),
            "--attach",
            huge.to_str().unwrap(),
            "--attach",
            photo.to_str().unwrap(),
            "--attach",
            lo.to_str().unwrap(),
            "--zip-bomb",
            "bomb.docx",
        ],
    );
    assert!(many.len() > 30_000_000, "a 30 MB attachment");
    // An HTML-only message, as some phone mail apps send.
    let phone = mail(
        work.path(),
        "phone.eml",
        &[
            "--from", SAKURA,
            "--subject", "スマホから",
            "--message-id", "<phone-1@example.jp>",
            "--auth", PASS,
            "--html", "<div dir=\"ltr\"><p>離婚後の<b>親権</b>について書きました。</p><p>続きは来週です。</p></div><br><div>-- <br>iPhoneから送信</div>",
        ],
    );
    // Everything refused: the answer says why though nothing was written.
    let refused = mail(
        work.path(),
        "refused.eml",
        &[
            "--from",
            SAKURA,
            "--subject",
            "写真だけ",
            "--message-id",
            "<photo-1@example.jp>",
            "--auth",
            PASS,
            "--text",
            "写真です\n",
            "--attach",
            photo.to_str().unwrap(),
        ],
    );
    drop_into(&inbox, "1.many", &many);
    drop_into(&inbox, "2.phone", &phone);
    drop_into(&inbox, "3.refused", &refused);
    let d = Daemon::start(root, &[]);
    let date = today();
    let expected = vec![
        format!("{date}-lo-kiji.docx"),
        format!("{date}-mail-1.txt"),
        format!("{date}-面会交流.md"),
    ];
    wait_for("three posts", Duration::from_secs(60), || {
        posts(root).len() >= 3
    });
    wait_for("three answers", Duration::from_secs(60), || {
        outbox(root)
            .iter()
            .filter(|f| f.starts_with("editor-receipt"))
            .count()
            >= 3
    });
    assert_eq!(
        posts(root),
        expected,
        "only the good attachments, under safe names"
    );
    assert_eq!(
        std::fs::read(root.join("tayori.yaml")).unwrap(),
        config_before,
        "never outside posts/"
    );
    assert!(!work.path().join("tayori.yaml.bak").exists());
    let phone_txt = std::fs::read_to_string(root.join("posts").join(&expected[1])).unwrap();
    println!("{}:\n{phone_txt}", expected[1]);
    assert!(
        phone_txt.starts_with("スマホから\n\n離婚後の親権について書きました。"),
        "{phone_txt}"
    );
    assert!(
        !phone_txt.contains('<') && !phone_txt.contains("iPhoneから送信"),
        "{phone_txt}"
    );
    let index = std::fs::read_to_string(root.join("public/index.html")).unwrap();
    for title in ["財産分与の基本", "面会交流の Q&amp;A", "スマホから"] {
        assert!(index.contains(title), "{title} published");
    }

    let answers: Vec<String> = outbox(root)
        .iter()
        .filter(|f| f.starts_with("editor-receipt"))
        .map(|f| std::fs::read_to_string(root.join("outbox").join(f)).unwrap())
        .collect();
    let to = |id: &str| {
        answers
            .iter()
            .find(|a| a.contains(&format!("In-Reply-To: {id}")))
            .unwrap_or_else(|| panic!("no answer to {id}"))
    };
    let many_answer = eml_part(to("<many-1@example.jp>"), "text/plain").replace("\r\n", "\n");
    println!("answer to the mail with many attachments:\n{many_answer}");
    assert!(to("<many-1@example.jp>").contains(&format!("To: {SAKURA}")));
    for (name, why) in [
        (
            "../../tayori.yaml",
            "only .docx, .md and .txt files become posts",
        ),
        (
            "huge.txt",
            "too big: 30.0 MiB; a text file may be at most 2 MiB",
        ),
        ("photo.jpg", "only .docx, .md and .txt files become posts"),
        ("bomb.docx", "unpack to more than 32 MiB"),
    ] {
        let told = format!("受け付けられません: {name}\n  ");
        let at = many_answer
            .find(&told)
            .unwrap_or_else(|| panic!("{name} in\n{many_answer}"));
        let line = many_answer[at + told.len()..].lines().next().unwrap();
        assert!(line.contains(why), "{name}: {why} in {line}");
    }
    assert!(many_answer.contains("財産分与の基本") && many_answer.contains("面会交流の Q&A"));
    let photo_answer = eml_part(to("<photo-1@example.jp>"), "text/plain");
    println!("answer to the photo only:\n{photo_answer}");
    assert!(
        photo_answer.contains("photo.jpg")
            && photo_answer.contains("公開するものはありませんでした")
    );
    assert!(to("<phone-1@example.jp>").contains("Subject: Re:"));

    // The same name again the same day: the file is replaced, an update of the post.
    let fixed = work.path().join("fixed.md");
    std::fs::write(
        &fixed,
        "---\ntitle: 面会交流の Q&A（改訂）\n---\n\n面会交流は子どものための制度です。改訂しました。\n",
    )
    .unwrap();
    let update = mail(
        work.path(),
        "update.eml",
        &[
            "--from",
            SAKURA,
            "--subject",
            "修正版です",
            "--message-id",
            "<update-1@example.jp>",
            "--auth",
            PASS,
            "--text",
            "修正しました\n",
            "--attach",
            &format!("{}=面会交流.md", fixed.display()),
        ],
    );
    drop_into(&inbox, "5.update", &update);
    let answered = |id: &str| {
        outbox(root)
            .into_iter()
            .filter(|f| f.starts_with("editor-receipt"))
            .map(|f| std::fs::read_to_string(root.join("outbox").join(f)).unwrap())
            .find(|eml| eml.contains(&format!("In-Reply-To: {id}")))
    };
    wait_for("the update's answer", Duration::from_secs(30), || {
        answered("<update-1@example.jp>").is_some()
    });
    assert_eq!(posts(root), expected, "replaced, not added");
    let md_now = std::fs::read_to_string(root.join("posts").join(&expected[2])).unwrap();
    assert!(md_now.contains("改訂しました"));
    let told = eml_part(&answered("<update-1@example.jp>").unwrap(), "text/plain");
    println!("answer to the update:\n{told}");
    assert!(told.contains("更新: 面会交流の Q&A（改訂）"), "{told}");

    // Another date, the same name: a second post under one address is refused before it is
    // written.
    let again = mail(
        work.path(),
        "again.eml",
        &[
            "--from",
            SAKURA,
            "--subject",
            "同じ名前",
            "--message-id",
            "<again-1@example.jp>",
            "--auth",
            PASS,
            "--text",
            "もう一度\n",
            "--attach",
            &format!("{}=2026-01-05-面会交流.md", md.display()),
        ],
    );
    drop_into(&inbox, "4.again", &again);
    wait_for(
        "the answer about the taken name",
        Duration::from_secs(30),
        || answered("<again-1@example.jp>").is_some(),
    );
    assert_eq!(posts(root), expected, "nothing written for a taken address");
    let last = answered("<again-1@example.jp>").unwrap();
    assert!(
        eml_part(&last, "text/plain").contains("another post already has the address `面会交流`")
    );

    let status = text_of(&tayori(root, &["status"]).stdout);
    println!("{status}");
    assert!(
        status.contains("messages taken: 3; refused: 2;"),
        "{status}"
    );
    assert!(status.contains("refused: bomb.docx"), "{status}");
    assert!(d.stop().success());
}

#[test]
#[ignore = "needs Dovecot (Debian dovecot-imapd, dovecot-pop3d), Python's email package and root: scripts/test installs them and runs ignored tests"]
fn an_imap_inbox_is_read_at_once_under_idle_and_a_pop3_inbox_once_across_restarts() {
    use support::dovecot::{Dovecot, PASSWORD};
    let dovecot = Dovecot::start();
    let work = tempfile::tempdir().unwrap();
    let dir = folder(
        None,
        &format!("imaps://bounce@127.0.0.1:{}/INBOX", dovecot.imaps),
        "0",
    );
    let root = dir.path();
    // An hour between polls: only IDLE can bring the message in within the test.
    let cfg = root.join("tayori.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("poll: 1s", "poll: 1h");
    std::fs::write(&cfg, text).unwrap();
    let env = [
        ("SSL_CERT_FILE", dovecot.ca.as_str()),
        ("TAYORI_INBOX_PASSWORD", PASSWORD),
    ];
    let d = Daemon::start(root, &env);
    wait_for("the first reading", Duration::from_secs(20), || {
        text_of(&tayori(root, &["status"]).stdout).contains("editor inbox: last read")
    });
    // IDLE is held once the first reading is done; give the watch its connection.
    wait_for("an IDLE session", Duration::from_secs(20), || {
        std::fs::read_to_string(&dovecot.log)
            .unwrap_or_default()
            .matches("Login:")
            .count()
            >= 2
    });
    let stranger = mail(
        work.path(),
        "s.eml",
        &[
            "--from",
            "x@stranger.example",
            "--subject",
            "広告",
            "--auth",
            PASS,
            "--text",
            "広告です\n",
        ],
    );
    dovecot.deliver("1.stranger", &text_of(&stranger));
    let plain = mail(
        work.path(),
        "p.eml",
        &[
            "--from",
            SAKURA,
            "--subject",
            "IMAP から",
            "--message-id",
            "<imap-1@example.jp>",
            "--auth",
            PASS,
            "--text",
            "IDLE で届いた記事です。\n",
        ],
    );
    dovecot.deliver("2.plain", &text_of(&plain));
    wait_for("the mailed post", Duration::from_secs(30), || {
        posts(root).len() == 1
    });
    assert_eq!(posts(root), vec![format!("{}-mail-1.txt", today())]);
    wait_for("marked seen", Duration::from_secs(10), || {
        dovecot
            .messages()
            .iter()
            .any(|m| m.starts_with("cur/2.plain") && m.ends_with('S'))
    });
    let messages = dovecot.messages();
    println!("{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("1.stranger") && !m.ends_with('S')),
        "the stranger's stays unseen"
    );
    assert!(d.stop().success());

    // POP3 has no flags: the same message is remembered, not taken twice across restarts.
    let cfg_text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            &format!("imaps://bounce@127.0.0.1:{}/INBOX", dovecot.imaps),
            &format!("pop3s://bounce@127.0.0.1:{}", dovecot.pop3s),
        )
        .replace("poll: 1h", "poll: 1s");
    std::fs::write(&cfg, cfg_text).unwrap();
    let pop = mail(
        work.path(),
        "pop.eml",
        &[
            "--from",
            SAKURA,
            "--subject",
            "POP3 から",
            "--message-id",
            "<pop-1@example.jp>",
            "--auth",
            PASS,
            "--text",
            "POP3 で届いた記事です。\n",
        ],
    );
    dovecot.deliver("3.pop", &text_of(&pop));
    let last_read = || {
        let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
        db.query_row(
            "SELECT value FROM meta WHERE key = 'inbox_last_read'",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap_or_default()
    };
    for _ in 0..2 {
        let before = last_read();
        let d = Daemon::start(root, &env);
        wait_for("a POP3 reading", Duration::from_secs(30), || {
            let now = last_read();
            now != before && !now.contains(' ')
        });
        wait_for("the POP3 post", Duration::from_secs(30), || {
            posts(root).len() == 2
        });
        assert!(d.stop().success());
    }
    assert_eq!(posts(root).len(), 2, "each message once: {:?}", posts(root));
    let status = text_of(&tayori(root, &["status"]).stdout);
    println!("{status}");
    assert!(status.contains("messages taken: 2;"), "{status}");
}

#[test]
fn an_inbox_unreadable_for_an_hour_alerts_the_office_once_and_is_resolved_when_it_reads_again() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("Maildir");
    let dir = folder(None, &format!("maildir://{}", missing.display()), "0");
    let root = dir.path();
    // The inbox has been failing for two hours already (as a daemon would have recorded it).
    let db = rusqlite::Connection::open(root.join("state/tayori.sqlite3")).unwrap();
    let since = (chrono::Utc::now() - chrono::TimeDelta::hours(2)).to_rfc3339();
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('editor_inbox_failing_since', ?1)",
        [&since],
    )
    .unwrap();
    let d = Daemon::start(root, &[]);
    let kind_files = |kind: &str| -> Vec<String> {
        outbox(root)
            .into_iter()
            .filter(|f| f.starts_with(&format!("editor-{kind}-")))
            .map(|f| std::fs::read_to_string(root.join("outbox").join(f)).unwrap())
            .collect()
    };
    wait_for("the alert", Duration::from_secs(30), || {
        !kind_files("alert").is_empty()
    });
    let alert = eml_part(&kind_files("alert")[0], "text/plain");
    println!("{alert}");
    assert!(
        alert.contains("記事の受付用メールボックスを読めない状態が"),
        "{alert}"
    );
    maildir(work.path());
    wait_for("the resolution", Duration::from_secs(30), || {
        !kind_files("resolved").is_empty()
    });
    assert_eq!(kind_files("alert").len(), 1, "told once");
    assert!(d.stop().success());
}

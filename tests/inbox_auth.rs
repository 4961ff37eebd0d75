//! Who may post by email, against real parts: messages signed by dkimpy with keys whose
//! `<selector>._domainkey` TXT records a real DNS server (dnsmasq on a loopback port) serves,
//! checked by `tayori::inbox_auth::verdict` through its resolver. The editor is
//! sakura@example.jp; the trusted server is mx.example.jp.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::dns::{dnsmasq, txt};
use support::*;
use tayori::inbox_auth::{verdict, Resolver, Verdict};

const EDITOR: &str = "sakura@example.jp";
const TRUSTED: &str = "mx.example.jp";

/// Keys for `sel` at each domain, published by a dnsmasq (dropped with it).
struct World {
    keys: tempfile::TempDir,
    _dns: Spawned,
    port: u16,
}

impl World {
    fn start(domains: &[&str]) -> World {
        let keys = tempfile::tempdir().unwrap();
        let mut records = Vec::new();
        for d in domains {
            let (_, public) = rsa_key(keys.path(), d);
            records.push(txt(
                &format!("sel._domainkey.{d}"),
                &format!("v=DKIM1; k=rsa; p={public}"),
            ));
            // Authoritative for the domain: a name it does not have is NXDOMAIN, as on the
            // Internet, not a refusal.
            records.push(format!("--local=/{d}/"));
        }
        let (dns, port) = dnsmasq(&records);
        World {
            keys,
            _dns: dns,
            port,
        }
    }

    /// `message` signed by dkimpy as `d=domain`, `s=selector` with that domain's key.
    fn sign(&self, message: &str, domain: &str, selector: &str, extra: &[&str]) -> Vec<u8> {
        let key: PathBuf = self.keys.path().join(format!("{domain}.pem"));
        let mut child = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_sign.py"))
            .arg(&key)
            .args([domain, selector])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "dkimpy: {}", text(&out.stderr));
        out.stdout
    }

    fn verdict(&self, raw: &[u8], trusted: Option<&str>) -> Verdict {
        verdict_through(self.port, raw, trusted)
    }
}

/// The verdict with the DNS server on `port` of this machine.
fn verdict_through(port: u16, raw: &[u8], trusted: Option<&str>) -> Verdict {
    {
        let editors = vec!["Sakura@Example.jp".to_string(), "office@example.jp".into()];
        let server = format!("127.0.0.1:{port}").parse().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let resolver = Resolver::new(Some(server)).unwrap();
            verdict(raw, &editors, trusted, &resolver).await
        })
    }
}

/// A plain message as a phone's mail app writes it, with CRLF line ends.
fn message(from: &str, headers: &str, body: &str) -> String {
    format!(
        "{headers}From: {from}\r\nTo: posts@example.jp\r\nSubject: =?UTF-8?B?5LuK5pyI44Gu44GK55+l44KJ44Gb?=\r\nDate: Mon, 30 Nov 2026 09:00:00 +0900\r\nMessage-ID: <1@phone.example.jp>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
    )
}

const BODY: &str = "離婚後の共同親権について、今月の解説です。\r\n\r\n-- \r\nさくら法律事務所\r\n";

fn forged_because(v: Verdict) -> String {
    match v {
        Verdict::Forged(why) => {
            eprintln!("Forged: {why}");
            why
        }
        other => panic!("expected Forged, got {other:?}"),
    }
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn a_message_signed_by_the_editors_own_domain_is_the_editors_lowercased() {
    let w = World::start(&["example.jp"]);
    let raw = w.sign(
        &message("Sakura <SAKURA@example.jp>", "", BODY),
        "example.jp",
        "sel",
        &[],
    );
    assert_eq!(w.verdict(&raw, None), Verdict::Editor(EDITOR.into()));
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn a_signature_that_cannot_be_checked_while_dns_fails_is_neither_taken_nor_refused() {
    let w = World::start(&["example.jp"]);
    let raw = w.sign(&message(EDITOR, "", BODY), "example.jp", "sel", &[]);
    // Nothing answers DNS on this port: every look-up fails, for now.
    let v = verdict_through(free_port(), &raw, Some(TRUSTED));
    match v {
        Verdict::Unsure(why) => assert!(why.contains(EDITOR), "{why}"),
        other => panic!("expected Unsure, got {other:?}"),
    }
    assert_eq!(w.verdict(&raw, None), Verdict::Editor(EDITOR.into()));
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn a_body_changed_after_signing_is_forged() {
    let w = World::start(&["example.jp"]);
    let signed = w.sign(&message(EDITOR, "", BODY), "example.jp", "sel", &[]);
    let tampered = String::from_utf8(signed)
        .unwrap()
        .replace("今月の解説", "振込先の変更");
    let why = forged_because(w.verdict(tampered.as_bytes(), Some(TRUSTED)));
    assert!(
        why.contains("d=example.jp") && why.contains("body hash"),
        "{why}"
    );
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn a_valid_signature_of_another_domain_is_forged_for_an_editors_from() {
    let w = World::start(&["example.jp", "mailer.example"]);
    let raw = w.sign(&message(EDITOR, "", BODY), "mailer.example", "sel", &[]);
    let why = forged_because(w.verdict(&raw, None));
    assert!(
        why.contains("d=mailer.example: not aligned with example.jp"),
        "{why}"
    );
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn a_signature_of_a_subdomain_is_aligned_with_the_from_domain() {
    let w = World::start(&["mail.example.jp"]);
    let raw = w.sign(&message(EDITOR, "", BODY), "mail.example.jp", "sel", &[]);
    assert_eq!(w.verdict(&raw, None), Verdict::Editor(EDITOR.into()));
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn an_unsigned_message_from_an_editors_address_is_forged() {
    let w = World::start(&["example.jp"]);
    let why = forged_because(w.verdict(message(EDITOR, "", BODY).as_bytes(), Some(TRUSTED)));
    assert!(why.contains("no signature"), "{why}");
    assert!(why.contains("none in the message"), "{why}");
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn a_strangers_valid_signature_makes_a_stranger_not_an_editor() {
    let w = World::start(&["client.example"]);
    let raw = w.sign(
        &message("taro@client.example", "", BODY),
        "client.example",
        "sel",
        &[],
    );
    assert_eq!(w.verdict(&raw, Some(TRUSTED)), Verdict::Stranger);
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn a_signature_over_part_of_the_body_is_forged() {
    let w = World::start(&["example.jp"]);
    let raw = w.sign(
        &message(EDITOR, "", BODY),
        "example.jp",
        "sel",
        &["--length"],
    );
    let why = forged_because(w.verdict(&raw, None));
    assert!(why.contains("l="), "{why}");
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn a_signature_whose_key_is_not_in_dns_is_forged() {
    let w = World::start(&["example.jp"]);
    let raw = w.sign(&message(EDITOR, "", BODY), "example.jp", "gone", &[]);
    let why = forged_because(w.verdict(&raw, None));
    assert!(why.contains("d=example.jp: DNS record not found"), "{why}");
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn the_trusted_servers_dmarc_pass_vouches_for_an_unsigned_message_and_no_other_servers() {
    let w = World::start(&["example.jp"]);
    let by = |server: &str, result: &str| {
        message(
            EDITOR,
            &format!(
                "Received: from mx.example.jp by imap.example.jp with LMTP\r\nAuthentication-Results: {server};\r\n dkim=none; spf=pass (sender SPF authorized) smtp.mailfrom=example.jp;\r\n dmarc={result} (p=quarantine) header.from=example.jp\r\n"
            ),
            BODY,
        )
    };
    let trusted = by("MX.EXAMPLE.JP", "pass");
    assert_eq!(
        w.verdict(trusted.as_bytes(), Some(TRUSTED)),
        Verdict::Editor(EDITOR.into())
    );
    // Without editor.trusted_authserv_id, no header is believed.
    assert!(matches!(
        w.verdict(trusted.as_bytes(), None),
        Verdict::Forged(_)
    ));
    let other = by("relay.example", "pass");
    let why = forged_because(w.verdict(other.as_bytes(), Some(TRUSTED)));
    assert!(why.contains("not the trusted mx.example.jp"), "{why}");
    let failed = by(TRUSTED, "fail");
    let why = forged_because(w.verdict(failed.as_bytes(), Some(TRUSTED)));
    assert!(why.contains("dmarc=fail"), "{why}");
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn an_aligned_signature_is_enough_even_when_the_trusted_server_says_fail() {
    let w = World::start(&["example.jp"]);
    let raw = w.sign(&message(EDITOR, "", BODY), "example.jp", "sel", &[]);
    let mut with_fail = b"Authentication-Results: mx.example.jp; dmarc=fail\r\n".to_vec();
    with_fail.extend_from_slice(&raw);
    assert_eq!(
        w.verdict(&with_fail, Some(TRUSTED)),
        Verdict::Editor(EDITOR.into())
    );
}

#[test]
#[ignore = "needs dnsmasq and dkimpy: scripts/test installs them and runs ignored tests"]
fn a_signed_message_with_a_second_from_or_another_sender_is_not_an_editors() {
    let w = World::start(&["example.jp"]);
    let raw = w.sign(&message(EDITOR, "", BODY), "example.jp", "sel", &[]);
    assert_eq!(w.verdict(&raw, None), Verdict::Editor(EDITOR.into()));
    // A From field added above the signed one: mail apps show the top one.
    let mut two_from = b"From: evil@evil.example\r\n".to_vec();
    two_from.extend_from_slice(&raw);
    assert_eq!(w.verdict(&two_from, None), Verdict::Stranger);
    let mut other_sender = b"Sender: evil@evil.example\r\n".to_vec();
    other_sender.extend_from_slice(&raw);
    assert_eq!(w.verdict(&other_sender, None), Verdict::Stranger);
}

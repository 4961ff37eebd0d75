//! `tayori doctor` against a real DNS server (dnsmasq on a loopback port, serving the records
//! of each case): a domain set up right, one without DMARC, one whose DKIM key is not ours.

mod support;

use std::path::Path;
use support::dns::{dnsmasq as dns, txt};
use support::*;

fn key(dir: &Path, name: &str) -> (String, String) {
    let (pem, public) = rsa_key(dir, name);
    (pem.display().to_string(), public)
}

fn folder(pem: &str) -> tempfile::TempDir {
    fresh_folder(Some(&format!(
        "smtp:\n  url: smtp://127.0.0.1:2525\n  dkim:\n    domain: example.jp\n    selector: news\n    private_key_file: {pem}\nbounces:\n  address: bounces@example.jp\n"
    )))
}

fn doctor(root: &Path, port: u16) -> (Option<i32>, String) {
    let o = tayori(
        root,
        &["doctor", "--resolver", &format!("127.0.0.1:{port}")],
    );
    (o.status.code(), text(&o.stdout) + &text(&o.stderr))
}

#[test]
#[ignore = "needs dnsmasq: scripts/test installs it and runs ignored tests"]
fn doctor_passes_a_domain_set_up_right_and_names_what_is_missing_or_wrong() {
    let keys = tempfile::tempdir().unwrap();
    let (pem, public) = key(keys.path(), "ours");
    let (_, other) = key(keys.path(), "other");
    let spf = txt("example.jp", "v=spf1 ip4:192.0.2.1 -all");
    let dkim = |p: &str| {
        txt(
            "news._domainkey.example.jp",
            &format!("v=DKIM1; k=rsa; p={p}"),
        )
    };
    let dmarc = txt(
        "_dmarc.example.jp",
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.jp",
    );
    let mx = "--mx-host=example.jp,mx.example.jp,10".to_string();

    let dir = folder(&pem);
    let (_dns, port) = dns(&[spf.clone(), dkim(&public), dmarc.clone(), mx.clone()]);
    let (code, out) = doctor(dir.path(), port);
    eprintln!("{out}");
    assert_eq!(code, Some(0), "{out}");
    for check in ["SPF OK", "DKIM OK", "DMARC OK", "MX OK"] {
        assert!(out.contains(check), "{check}: {out}");
    }
    assert!(
        out.contains("quarantine") && out.contains("mx.example.jp"),
        "{out}"
    );
    drop(_dns);

    let (_dns, port) = dns(&[spf.clone(), dkim(&public), mx.clone()]);
    let (code, out) = doctor(dir.path(), port);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("DMARC NG") && out.contains("_dmarc.example.jp"),
        "{out}"
    );
    drop(_dns);

    let (_dns, port) = dns(&[spf, dkim(&other), dmarc, mx]);
    let (code, out) = doctor(dir.path(), port);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("DKIM NG") && out.contains("一致しません"),
        "{out}"
    );
}

//! Every real bounce report of `tests/fixtures/bounces` (from Sisimai's public corpus: Postfix,
//! Gmail, Exchange, Office 365, au/EZweb, docomo, RFC 3464, ARF) goes through tayori's reader
//! and classifier, and the decision per address is compared with what the Sisimai classifier
//! (`libsisimai-perl` 4.25) reads from the same report (`expected.jsonl`), mapped through the
//! table of DESIGN.md "Bounces and pacing".

mod support;

use std::collections::BTreeMap;

use tayori::bounces::{parse, Cause};

/// What DESIGN.md's table does with each of Sisimai's reasons.
fn cause_of(reason: &str) -> Cause {
    match reason {
        "userunknown" | "hostunknown" | "hasmoved" | "notaccept" => Cause::AddressGone,
        "feedback" => Cause::Complaint,
        "mailboxfull" | "filtered" | "suspend" | "expired" | "onhold" => Cause::ReaderSide,
        "blocked" | "rejected" | "policyviolation" | "spamdetected" | "securityerror"
        | "toomanyconn" | "norelaying" | "virusdetected" | "mesgtoobig" | "contenterror"
        | "syntaxerror" | "exceedlimit" => Cause::SenderSide,
        "vacation" | "delivered" => Cause::NotABounce,
        _ => Cause::Other,
    }
}

#[derive(serde::Deserialize)]
struct Expected {
    file: String,
    recipient: String,
    reason: String,
}

#[test]
fn tayori_reads_every_real_report_and_agrees_with_sisimai_where_it_matters() {
    let dir = support::fixtures().join("bounces");
    let expected: Vec<Expected> = std::fs::read_to_string(dir.join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut agree = 0;
    let mut found = 0;
    let mut confusion: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut dangerous = Vec::new();
    for e in &expected {
        let bytes = std::fs::read(dir.join("maildir").join(&e.file)).unwrap();
        let report = parse(&bytes).unwrap_or_else(|| panic!("{}: not read", e.file));
        let want = cause_of(&e.reason);
        let recipient = e.recipient.to_lowercase();
        let failure = report.failures.iter().find(|f| f.address == recipient);
        let got = match (&report.complaint, failure) {
            (Some(_), _) => Cause::Complaint,
            (None, Some(f)) => f.cause(),
            (None, None) => {
                confusion
                    .entry((e.reason.clone(), "recipient not found".into()))
                    .or_default()
                    .push(e.file.clone());
                continue;
            }
        };
        found += 1;
        if got == want {
            agree += 1;
        } else {
            confusion
                .entry((e.reason.clone(), format!("{got:?}")))
                .or_default()
                .push(e.file.clone());
        }
        // The harm that must never happen: suppressing a reader for what is about us or the
        // network (it would silently drop a real client, or a whole carrier's). DESIGN.md
        // names 5.4.4 (no route to the domain) as an address that does not exist, where
        // Sisimai reads a network error: DESIGN.md decides.
        let design_says_gone = failure.is_some_and(|f| f.status == "5.4.4");
        if got.suppresses() && !want.suppresses() && want != Cause::ReaderSide && !design_says_gone
        {
            dangerous.push(format!("{}: Sisimai {} → tayori {got:?}", e.file, e.reason));
        }
    }
    eprintln!(
        "{} reports: recipient found in {found}; tayori's decision agrees with Sisimai's reading in {agree} ({:.0}%)",
        expected.len(),
        100.0 * agree as f64 / expected.len() as f64
    );
    for ((reason, got), files) in &confusion {
        eprintln!("  Sisimai {reason} → tayori {got}: {}", files.join(" "));
    }
    assert!(
        dangerous.is_empty(),
        "suppressed for a cause that is not the reader's:\n{}",
        dangerous.join("\n")
    );
    assert!(
        found * 100 >= expected.len() * 90,
        "recipient found in only {found}"
    );
    // Where they differ, tayori reads a delay warning as no bounce, remote trouble as "other"
    // rather than "expired", and unambiguous words ("User unknown") over Sisimai's per-server
    // rules; every difference keeps a reader at least as safe (the check above).
    assert!(
        agree * 100 >= expected.len() * 60,
        "agreement {agree} of {}",
        expected.len()
    );
}

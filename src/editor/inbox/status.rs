//! What `tayori status` says about the editors' inbox.

use super::LAST_READ;
use crate::store::Store;

/// What `tayori status` says about the inbox: the last reading, the messages taken, refused
/// (with why), from strangers and forged, and the files still waiting for their receipt.
/// `local` shows a stored time in the site's zone.
pub fn status_lines(store: &Store, local: impl Fn(&str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    match store.meta(LAST_READ).ok().flatten() {
        None => out.push("editor inbox: not read yet".to_string()),
        Some(last) => match last.split_once(' ') {
            None => out.push(format!("editor inbox: last read {}", local(&last))),
            Some((at, why)) => out.push(format!(
                "editor inbox: last reading failed {}: {why}",
                local(at)
            )),
        },
    }
    // A store not yet migrated by this version has no inbox tables: nothing more to say.
    let messages = store.inbox_messages().unwrap_or_default();
    let count = |o: &str| messages.iter().filter(|m| m.outcome == o).count();
    out.push(format!(
        "  messages taken: {}; refused: {}; from strangers (left unread): {}; forged (nothing published, alerted): {}; unreadable: {}",
        count("taken"),
        count("refused"),
        count("stranger"),
        count("forged"),
        count("unreadable")
    ));
    for m in messages.iter().take(20) {
        out.push(format!(
            "  {:<10} {}  {}  「{}」",
            m.outcome,
            local(&m.read_at),
            if m.sender.is_empty() { "?" } else { &m.sender },
            m.subject
        ));
        for d in m.detail.lines() {
            out.push(format!("             {d}"));
        }
    }
    for (file, sender, at) in store.inbox_waiting().unwrap_or_default() {
        out.push(format!(
            "  waiting for its receipt: posts/{file} (from {sender}, written {})",
            local(&at)
        ));
    }
    out
}

//! The text/plain part, written from the content model (never by stripping the HTML).
//! Every line stays within RFC 5322's 998-octet limit.

use super::email::{GREETING, UNSUBSCRIBE_URL};
use super::{display_date, Entry};
use crate::config::Config;
use crate::content::Kind;

/// Longest line we write, in octets; RFC 5322 §2.1.1 allows 998.
const MAX_LINE_OCTETS: usize = 900;

/// Renders the text part of an issue.
pub(super) fn issue(
    config: &Config,
    entries: &[&Entry],
    subject: &str,
    view_url: &str,
    keep: Option<usize>,
) -> String {
    let tz = config.tz();
    let mut out = String::new();
    out.push_str(&config.site.title);
    out.push_str("\nブラウザで表示する: ");
    out.push_str(view_url);
    out.push_str("\n\n");
    out.push_str(GREETING);
    out.push_str("\n\n");
    if entries.len() > 1 {
        out.push_str(&format!("{subject}\n\n"));
    }
    for (i, e) in entries.iter().enumerate() {
        let p = &e.post;
        if i > 0 {
            out.push_str("\n――――――――――――――――――――\n\n");
        }
        let mark = if p.kind == Kind::Note { "◆ " } else { "" };
        out.push_str(&format!("{mark}{}\n", p.title));
        out.push_str(&format!("{}\n", display_date(&e.published, &tz)));
        out.push_str(&format!("{}\n\n", config.post_url(&p.slug)));
        push_block(&mut out, &p.lead.text);
        if !p.toc.is_empty() {
            out.push_str("【目次】\n");
            for t in &p.toc {
                let indent = if t.level > 1 { "    " } else { "  " };
                out.push_str(&format!("{indent}{}\n", t.title));
            }
            out.push('\n');
        }
        for s in p.sections.iter().take(keep.unwrap_or(usize::MAX)) {
            if s.level == 1 {
                out.push_str(&format!("■ {}\n\n", s.title));
            } else {
                out.push_str(&format!("◇ {}\n\n", s.title));
            }
            push_block(&mut out, &s.body.text);
        }
        if keep.is_some_and(|k| k < p.sections.len()) {
            out.push_str(&format!(
                "この記事の続きはウェブでお読みいただけます: {}\n\n",
                config.post_url(&p.slug)
            ));
        }
        if let Some(note) = &p.editors_note {
            out.push_str("【編集後記】\n\n");
            push_block(&mut out, &note.text);
        }
    }
    out.push_str("――――――――――――――――――――\n");
    out.push_str(&footer(config));
    wrap_long_lines(&out, MAX_LINE_OCTETS)
}

fn push_block(out: &mut String, text: &str) {
    let t = text.trim_end();
    if !t.is_empty() {
        out.push_str(t);
        out.push_str("\n\n");
    }
}

/// The legal footer (text): sender, postal address, contact, how to unsubscribe.
pub(super) fn footer(config: &Config) -> String {
    let s = &config.sender;
    let (name, address) = config.sender_parts();
    let mut f = format!(
        "このメールは「{}」の配信にご登録いただいた方にお送りしています。\n送信者: {name}\n",
        config.site.title
    );
    if let Some(l) = super::lawyer_line(config) {
        f.push_str(&format!("{l}\n"));
    }
    if let Some(a) = &s.address {
        f.push_str(&format!("住所: {a}\n"));
    }
    if let Some(t) = &s.phone {
        f.push_str(&format!("電話: {t}\n"));
    }
    let contact = s.reply_to.clone().unwrap_or(address);
    f.push_str(&format!("お問い合わせ: {contact}\n"));
    f.push_str(&format!(
        "配信の停止（登録解除）はこちら: {UNSUBSCRIBE_URL}\n"
    ));
    f
}

/// Breaks lines longer than `max` octets at character boundaries.
fn wrap_long_lines(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut rest = line;
        while rest.trim_end_matches('\n').len() > max {
            let mut cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&rest[..cut]);
            out.push('\n');
            rest = &rest[cut..];
        }
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_long_japanese_lines_at_character_boundaries() {
        let long = "あ".repeat(1000); // 3000 octets
        let wrapped = wrap_long_lines(&format!("{long}\n短い\n"), 900);
        assert!(wrapped.lines().all(|l| l.len() <= 900));
        assert_eq!(wrapped.replace('\n', ""), format!("{long}短い"));
    }
}

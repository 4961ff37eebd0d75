//! Small text rules every stage shares; a leaf module (it imports nothing of ours), so the
//! configuration can use it too.

/// Whether `s` can name a post (its slug) or a subscriber list: letters, digits, `-` and `_`,
/// at least one — safe as a file name and in a URL path.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
}

/// `url` as it may be shown: any password replaced by `***` (also in a URL that does not
/// parse: whatever stands between the scheme and the last `@` is dropped).
pub fn redacted_url(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url) {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        return u.to_string();
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***@{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Collapses every run of white space (line breaks included) into one space, and drops
/// control characters: titles and tags end up in mail headers and feeds.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lowercase hex of bytes: content hashes, ETags, webhook ids, the generated key.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::is_name;

    #[test]
    fn names_are_letters_digits_dashes_and_underscores() {
        for ok in ["menkai-koryu", "養育費_2026", "web"] {
            assert!(is_name(ok), "{ok}");
        }
        for bad in ["", "a b", "../x", "a.html", "a/b", "a%2Fb"] {
            assert!(!is_name(bad), "{bad}");
        }
    }
}

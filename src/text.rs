//! Small text rules every stage shares; a leaf module (it imports nothing of ours), so the
//! configuration can use it too.

/// Whether `s` can name a post (its slug) or a subscriber list: letters, digits, `-` and `_`,
/// at least one — safe as a file name and in a URL path.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
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

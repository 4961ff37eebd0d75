//! Reading an `Authentication-Results` header field (RFC 8601 §2.2): the authserv-id, then
//! `method=result` statements separated by `;`, each with an optional `reason=` and
//! `ptype.property=value` pairs. Comments in parentheses are CFWS and carry no meaning: a
//! `dmarc=pass` inside one, or inside a quoted `reason`, is not a result.

/// One `method=result` statement (RFC 8601 §2.2 `resinfo`), lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResInfo {
    /// `dkim`, `spf`, `dmarc`… (a method version after `/` is dropped).
    pub method: String,
    /// `pass`, `fail`, `none`…
    pub result: String,
    /// `ptype.property` (lowercased) and its value, e.g. `header.from` = `example.jp`.
    pub props: Vec<(String, String)>,
}

/// A whole header field: who wrote it and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AuthResults {
    /// The authserv-id as written (compare case-insensitively).
    pub authserv_id: String,
    /// Empty for `; none`.
    pub results: Vec<ResInfo>,
}

/// Parses a header field's value (folded or not). `Err` says in a few words what is wrong; a
/// field we cannot read vouches for nothing.
pub(super) fn parse(value: &str) -> Result<AuthResults, String> {
    let text = strip_comments(value)?;
    let mut c = Cursor {
        s: text.chars().collect(),
        i: 0,
    };
    c.skip_ws();
    let authserv_id = c.value().ok_or("no authserv-id")?;
    c.skip_ws();
    if c.peek().is_some_and(|ch| ch.is_ascii_digit()) {
        // RFC 8601 §2.2: the version is 1; a field of another version is not understood.
        let version = c.take_while(|ch| ch.is_ascii_digit());
        if version != "1" {
            return Err(format!("version {version} (only 1 is known)"));
        }
    }
    let (mut results, mut none) = (Vec::new(), false);
    loop {
        c.skip_ws();
        if c.at_end() {
            break;
        }
        if !c.eat(';') {
            return Err(format!("expected ';' at {}", c.rest()));
        }
        c.skip_ws();
        if results.is_empty() && c.rest().eq_ignore_ascii_case("none") {
            none = true;
            break;
        }
        results.push(c.resinfo()?);
    }
    if results.is_empty() && !none {
        return Err("no result".into());
    }
    Ok(AuthResults {
        authserv_id,
        results,
    })
}

/// The value with every comment (nested, with quoted-pairs) turned into a space; quoted
/// strings are kept as they are (a `(` inside one is text).
fn strip_comments(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted) = (0usize, false);
    let mut chars = value.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if quoted || depth > 0 => {
                let escaped = chars.next().ok_or("a '\\' at the end")?;
                if quoted {
                    out.push('\\');
                    out.push(escaped);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(ch);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth.checked_sub(1).ok_or("a ')' without '('")?;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth > 0 => {}
            _ => out.push(ch),
        }
    }
    if quoted {
        return Err("an unterminated quoted string".into());
    }
    if depth > 0 {
        return Err("an unterminated comment".into());
    }
    Ok(out)
}

struct Cursor {
    s: Vec<char>,
    i: usize,
}

impl Cursor {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn rest(&self) -> String {
        self.s[self.i..]
            .iter()
            .collect::<String>()
            .trim()
            .to_string()
    }

    fn eat(&mut self, ch: char) -> bool {
        let hit = self.peek() == Some(ch);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn skip_ws(&mut self) {
        self.take_while(|ch| matches!(ch, ' ' | '\t' | '\r' | '\n'));
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let start = self.i;
        while self.peek().is_some_and(&keep) {
            self.i += 1;
        }
        self.s[start..self.i].iter().collect()
    }

    /// RFC 8601 `Keyword` (letters, digits, `-`; `_` seen in the wild), lowercased.
    fn keyword(&mut self) -> Option<String> {
        let word = self.take_while(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        (!word.is_empty()).then(|| word.to_ascii_lowercase())
    }

    /// RFC 2045 `value`: a quoted-string (unescaped) or a token.
    fn value(&mut self) -> Option<String> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let token =
            self.take_while(|ch| !ch.is_ascii_control() && !"()<>@,;:\\\"/[]?= ".contains(ch));
        (!token.is_empty()).then_some(token)
    }

    fn quoted(&mut self) -> Option<String> {
        self.eat('"');
        let mut out = String::new();
        loop {
            match self.peek()? {
                '"' => {
                    self.i += 1;
                    return Some(out);
                }
                '\\' => {
                    out.push(*self.s.get(self.i + 1)?);
                    self.i += 2;
                }
                ch => {
                    out.push(ch);
                    self.i += 1;
                }
            }
        }
    }

    /// A property's value (RFC 8601 `pvalue`): a quoted-string, or everything up to the next
    /// space or `;` — an address, a domain, `@domain`, base64 with `/`, `+` and `=`.
    fn pvalue(&mut self) -> Option<String> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let word = self.take_while(|ch| !ch.is_whitespace() && ch != ';');
        (!word.is_empty()).then_some(word)
    }

    /// `method[/version] = result`, then any `reason=` and `ptype.property=value`.
    fn resinfo(&mut self) -> Result<ResInfo, String> {
        let method = self
            .keyword()
            .ok_or_else(|| format!("no method at {}", self.rest()))?;
        self.skip_ws();
        if self.eat('/') {
            self.skip_ws();
            self.take_while(|ch| ch.is_ascii_digit());
            self.skip_ws();
        }
        if !self.eat('=') {
            return Err(format!("{method}: no '='"));
        }
        self.skip_ws();
        let result = self.keyword().ok_or(format!("{method}: no result"))?;
        let mut props = Vec::new();
        loop {
            self.skip_ws();
            if self.at_end() || self.peek() == Some(';') {
                return Ok(ResInfo {
                    method,
                    result,
                    props,
                });
            }
            let ptype = self.keyword().ok_or(format!("{method}: bad property"))?;
            self.skip_ws();
            let key = if ptype == "reason" {
                ptype
            } else if self.eat('.') {
                self.skip_ws();
                let property = self.keyword().ok_or(format!("{method}: bad property"))?;
                format!("{ptype}.{property}")
            } else {
                return Err(format!("{method}: '{ptype}' is not ptype.property"));
            };
            self.skip_ws();
            if !self.eat('=') {
                return Err(format!("{method}: {key} without '='"));
            }
            self.skip_ws();
            let value = if key == "reason" {
                self.value()
            } else {
                self.pvalue()
            };
            props.push((key, value.ok_or(format!("{method}: empty value"))?));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmarc_of(value: &str) -> Vec<(String, Vec<(String, String)>)> {
        parse(value)
            .unwrap()
            .results
            .into_iter()
            .filter(|r| r.method == "dmarc")
            .map(|r| (r.result, r.props))
            .collect()
    }

    #[test]
    fn a_plain_field_gives_its_authserv_id_and_each_result_with_its_properties() {
        let r = parse("mx.example.jp; dkim=pass header.d=example.jp header.s=sel; spf=pass smtp.mailfrom=sakura@example.jp; dmarc=pass header.from=example.jp").unwrap();
        assert_eq!(r.authserv_id, "mx.example.jp");
        let methods: Vec<_> = r
            .results
            .iter()
            .map(|r| (r.method.as_str(), r.result.as_str()))
            .collect();
        assert_eq!(
            methods,
            [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
        );
        assert_eq!(
            r.results[1].props,
            [("smtp.mailfrom".into(), "sakura@example.jp".into())]
        );
        assert_eq!(
            r.results[2].props,
            [("header.from".into(), "example.jp".into())]
        );
    }

    #[test]
    fn comments_quoted_strings_a_version_and_folding_are_read_as_rfc_8601_says() {
        let folded = "mx.example.jp 1 (the office's MX);\r\n\tdkim=pass (2048-bit key; unprotected)\r\n header.d=example.jp header.b=\"Ab/c+d=\" reason=\"a (b)\";\r\n dmarc=pass (p=none dis=none) header.from=example.jp";
        let r = parse(folded).unwrap();
        assert_eq!(r.authserv_id, "mx.example.jp");
        assert_eq!(r.results.len(), 2);
        assert_eq!(
            r.results[0].props,
            [
                ("header.d".into(), "example.jp".into()),
                ("header.b".into(), "Ab/c+d=".into()),
                ("reason".into(), "a (b)".into()),
            ]
        );
        assert_eq!(dmarc_of(folded)[0].0, "pass");
    }

    #[test]
    fn a_quoted_authserv_id_and_a_method_version_are_accepted() {
        let r = parse("\"mx.example.jp\"; dkim/1 = pass header.i=@example.jp header.b=AbC/d+e")
            .unwrap();
        assert_eq!(r.authserv_id, "mx.example.jp");
        assert_eq!(r.results[0].method, "dkim");
        assert_eq!(
            r.results[0].props[0],
            ("header.i".into(), "@example.jp".into())
        );
        assert_eq!(r.results[0].props[1], ("header.b".into(), "AbC/d+e".into()));
    }

    #[test]
    fn dmarc_fail_is_read_as_fail_and_results_are_lowercased() {
        assert_eq!(
            dmarc_of("MX.example.jp; DMARC=FAIL header.from=example.jp")[0].0,
            "fail"
        );
        assert_eq!(dmarc_of("mx.example.jp; dmarc=Pass")[0].0, "pass");
    }

    #[test]
    fn dmarc_pass_in_a_comment_or_a_quoted_reason_is_no_result() {
        assert!(dmarc_of("mx.example.jp; dkim=fail (dmarc=pass) header.d=example.jp").is_empty());
        assert!(dmarc_of("mx.example.jp; dkim=fail reason=\"dmarc=pass\"").is_empty());
        assert!(dmarc_of("mx.example.jp (; dmarc=pass); spf=none").is_empty());
        assert_eq!(
            dmarc_of("mx.example.jp; dkim=fail (a comment (nested; dmarc=pass)) ; dmarc=fail")[0].0,
            "fail"
        );
    }

    #[test]
    fn none_is_an_empty_result_and_an_id_alone_is_no_result() {
        assert!(parse("mx.example.jp; none").unwrap().results.is_empty());
        assert!(parse("mx.example.jp").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn a_field_that_breaks_the_grammar_is_refused_with_the_reason() {
        // Microsoft 365 writes no authserv-id: the first word would be a method.
        assert!(
            parse("spf=pass smtp.mailfrom=example.jp; dmarc=pass header.from=example.jp").is_err()
        );
        assert!(parse("mx.example.jp; dmarc=pass (unterminated")
            .unwrap_err()
            .contains("comment"));
        assert!(parse("mx.example.jp; dmarc=pass reason=\"open")
            .unwrap_err()
            .contains("quoted"));
        assert!(parse("mx.example.jp; dmarc pass").is_err());
        assert!(parse("mx.example.jp; dmarc=pass header=from").is_err());
        assert!(parse("mx.example.jp 2; dmarc=pass")
            .unwrap_err()
            .contains("version 2"));
        assert!(parse("mx.example.jp; dmarc=pass)")
            .unwrap_err()
            .contains("')'"));
    }
}

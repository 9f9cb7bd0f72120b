//! Checking `--selector` before the operator starts.
//!
//! The apiserver refuses a malformed label selector with 400 on every list
//! and watch, which a watcher would retry forever: the operator would run,
//! Ready never coming, reconciling nothing. So `clusterscale run` checks the
//! selector at start, with Kubernetes' own grammar
//! (`k8s.io/apimachinery/pkg/labels`), and exits with a usage error instead.
//!
//! Accepted, comma-separated: `key`, `!key`, `key=value`, `key==value`,
//! `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key>N`, `key<N`.
//! Keys are qualified names (`[prefix/]name`), values label values.

/// The selector itself when it is a valid Kubernetes label selector; a
/// message naming the offending part otherwise. Used as the clap value
/// parser of `--selector`.
pub fn parse_label_selector(selector: &str) -> Result<String, String> {
    let tokens = lex(selector)?;
    let mut p = Parser { tokens, at: 0 };
    if p.tokens.is_empty() {
        return Ok(selector.to_string());
    }
    loop {
        p.requirement()?;
        match p.next() {
            None => return Ok(selector.to_string()),
            Some(Tok::Comma) => {
                if p.peek().is_none() {
                    return Err("a ',' must be followed by another requirement".into());
                }
            }
            Some(t) => return Err(format!("expected ',' or the end, found {}", t.show())),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    In,
    NotIn,
    Open,
    Close,
    Comma,
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Ident(s) => format!("{s:?}"),
            Tok::Not => "'!'".into(),
            Tok::Eq => "'='".into(),
            Tok::DoubleEq => "'=='".into(),
            Tok::NotEq => "'!='".into(),
            Tok::Gt => "'>'".into(),
            Tok::Lt => "'<'".into(),
            Tok::In => "'in'".into(),
            Tok::NotIn => "'notin'".into(),
            Tok::Open => "'('".into(),
            Tok::Close => "')'".into(),
            Tok::Comma => "','".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '<' | '>')
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if is_special(c) {
            chars.next();
            let second = chars.peek().copied();
            let tok = match (c, second) {
                ('!', Some('=')) => {
                    chars.next();
                    Tok::NotEq
                }
                ('=', Some('=')) => {
                    chars.next();
                    Tok::DoubleEq
                }
                ('!', _) => Tok::Not,
                ('=', _) => Tok::Eq,
                ('(', _) => Tok::Open,
                (')', _) => Tok::Close,
                (',', _) => Tok::Comma,
                ('<', _) => Tok::Lt,
                _ => Tok::Gt,
            };
            out.push(tok);
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || is_special(c) {
                break;
            }
            word.push(c);
            chars.next();
        }
        out.push(match word.as_str() {
            "in" => Tok::In,
            "notin" => Tok::NotIn,
            _ => Tok::Ident(word),
        });
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn requirement(&mut self) -> Result<(), String> {
        let negated = self.peek() == Some(&Tok::Not);
        if negated {
            self.next();
        }
        let key = match self.next() {
            Some(Tok::Ident(k)) => k,
            Some(t) => return Err(format!("expected a label key, found {}", t.show())),
            None => return Err("expected a label key, found the end".into()),
        };
        check_key(&key)?;
        if negated {
            return Ok(());
        }
        match self.peek().cloned() {
            None | Some(Tok::Comma) => Ok(()),
            Some(Tok::Eq | Tok::DoubleEq | Tok::NotEq) => {
                self.next();
                match self.peek().cloned() {
                    Some(Tok::Ident(v)) => {
                        self.next();
                        check_value(&key, &v)
                    }
                    // `key=` selects the empty value.
                    None | Some(Tok::Comma) => Ok(()),
                    Some(t) => Err(format!("expected a value for {key:?}, found {}", t.show())),
                }
            }
            Some(op @ (Tok::Gt | Tok::Lt)) => {
                self.next();
                match self.next() {
                    Some(Tok::Ident(v)) if v.parse::<i64>().is_ok() => Ok(()),
                    Some(t) => Err(format!(
                        "{} needs an integer value for {key:?}, found {}",
                        op.show(),
                        t.show()
                    )),
                    None => Err(format!("{} needs an integer value for {key:?}", op.show())),
                }
            }
            Some(op @ (Tok::In | Tok::NotIn)) => {
                self.next();
                self.value_set(&key, &op)
            }
            Some(t) => Err(format!(
                "expected an operator (=, ==, !=, in, notin, <, >) or ',' after {key:?}, found {}",
                t.show()
            )),
        }
    }

    /// `( v1, v2, ... )`: at least one value.
    fn value_set(&mut self, key: &str, op: &Tok) -> Result<(), String> {
        match self.next() {
            Some(Tok::Open) => {}
            Some(t) => {
                return Err(format!(
                    "expected '(' after {}, found {}",
                    op.show(),
                    t.show()
                ))
            }
            None => return Err(format!("expected '(' after {}", op.show())),
        }
        // Kubernetes reads an empty entry (`(a,)`, `(,a)`) as the empty value.
        let mut values = 0;
        let mut want_value = true;
        loop {
            match self.next() {
                Some(Tok::Ident(v)) if want_value => {
                    check_value(key, &v)?;
                    values += 1;
                    want_value = false;
                }
                Some(Tok::Comma) => {
                    if want_value {
                        values += 1;
                    }
                    want_value = true;
                }
                Some(Tok::Close) => {
                    if want_value && values > 0 {
                        values += 1;
                    }
                    break;
                }
                Some(t) => {
                    return Err(format!(
                        "expected ',' or ')' in the values of {key:?}, found {}",
                        t.show()
                    ))
                }
                None => return Err(format!("the values of {key:?} lack a closing ')'")),
            }
        }
        if values == 0 {
            return Err(format!(
                "{} needs at least one value for {key:?}",
                op.show()
            ));
        }
        Ok(())
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS-1123 subdomain: lowercase labels of `[a-z0-9-]`, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns_subdomain(p) {
            return Err(format!(
                "label key {key:?}: the prefix {p:?} must be a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)"
            ));
        }
    }
    if !is_name(name) {
        return Err(format!(
            "label key {key:?}: the name must be 1-63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || is_name(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} of {key:?}: must be at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_label_selector as parse;

    #[test]
    fn accepts_kubernetes_selectors() {
        for ok in [
            "",
            "shard=a",
            "shard==a",
            "shard!=a",
            "shard",
            "!shard",
            "shard in (a, b)",
            "shard notin (a)",
            "shard=a,tier!=gold,!legacy",
            "example.com/shard=a",
            "app.kubernetes.io/name = clusterscale",
            "size>3",
            "size<10",
            "shard=",
            "shard in (a,)",
            " shard = a , env in ( prod , staging ) ",
        ] {
            assert_eq!(parse(ok).as_deref(), Ok(ok), "{ok:?} should be accepted");
        }
    }

    #[test]
    fn refuses_malformed_selectors_with_a_reason() {
        for (bad, why) in [
            ("shard in (a", "closing ')'"),
            ("shard in ()", "at least one value"),
            ("shard in a", "expected '('"),
            ("=a", "expected a label key"),
            ("shard=a,", "followed by another requirement"),
            ("shard=a b", "expected ',' or the end"),
            ("shard=a=b", "expected ',' or the end"),
            ("Shard/x=a", "DNS subdomain"),
            ("a/b/c=d", "label key"),
            ("-shard=a", "label key \"-shard\""),
            ("shard=-a", "label value \"-a\""),
            ("shard=a!", "found '!'"),
            ("size>three", "integer"),
            ("!shard=a", "expected ',' or the end"),
            (",", "expected a label key"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e:?} should contain {why:?}");
        }
        let long = format!("shard={}", "a".repeat(64));
        assert!(parse(&long).unwrap_err().contains("at most 63"));
    }
}

use std::fmt;

use regex::Regex;
use thiserror::Error;

use crate::model::Alert;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One label matcher in Alertmanager syntax: `name="value"`, `name!="value"`,
/// `name=~"regex"`, `name!~"regex"`. Regexes are anchored at both ends.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid matcher {text:?}: {reason}")]
pub struct MatcherError {
    pub text: String,
    pub reason: String,
}

impl Matcher {
    pub fn parse(text: &str) -> Result<Matcher, MatcherError> {
        let error = |reason: String| MatcherError {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        let name_end = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| {
                error("expected an operator (=, !=, =~ or !~) after the label name".into())
            })?;
        let name = &trimmed[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(error(
                "a label name must match [a-zA-Z_][a-zA-Z0-9_]*".into(),
            ));
        }
        let rest = trimmed[name_end..].trim_start();
        let (op, rest) = [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ]
        .into_iter()
        .find_map(|(token, op)| rest.strip_prefix(token).map(|r| (op, r)))
        .ok_or_else(|| {
            error(format!(
                "expected an operator (=, !=, =~ or !~) after {name:?}"
            ))
        })?;
        let value = parse_value(rest.trim()).map_err(error)?;
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| error(format!("bad regular expression: {e}")))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
            regex,
        })
    }

    /// A missing label reads as the empty string, as in Alertmanager; the
    /// alert's severity stands in for a missing `severity` label.
    pub fn matches(&self, alert: &Alert) -> bool {
        let value = match alert.labels.get(self.name.as_str()) {
            Some(v) => v.as_str(),
            None if self.name == "severity" => alert.severity.as_str(),
            None => "",
        };
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (_, None) => unreachable!("regex operators always carry a compiled regex"),
        }
    }
}

/// A double-quoted value with `\"` and `\\` escapes, or a bare word.
fn parse_value(text: &str) -> Result<String, String> {
    let Some(inner) = text.strip_prefix('"') else {
        if text.contains(char::is_whitespace) || text.contains('"') {
            return Err("a value with spaces or quotes must be written in double quotes".into());
        }
        return Ok(text.to_string());
    };
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            // Other escapes stay as written, so regexes like `5\d\d` work.
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => value.push(escaped),
                Some(other) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return Err("missing closing double quote".into()),
            },
            '"' => {
                return if chars.as_str().trim().is_empty() {
                    Ok(value)
                } else {
                    Err(format!(
                        "unexpected text after the closing quote: {:?}",
                        chars.as_str()
                    ))
                };
            }
            c => value.push(c),
        }
    }
    Err("missing closing double quote".into())
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escaped = self.value.replace('\\', "\\\\").replace('"', "\\\"");
        write!(f, "{}{}\"{}\"", self.name, self.op.as_str(), escaped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;
    use crate::test_support::alert;

    #[test]
    fn parses_all_four_operators_with_spaces_and_bare_values() {
        let a = alert(&[("team", "db"), ("env", "prod")]);
        assert!(Matcher::parse("team=\"db\"").unwrap().matches(&a));
        assert!(Matcher::parse(" team != web ").unwrap().matches(&a));
        assert!(Matcher::parse("env =~ \"prod|staging\"")
            .unwrap()
            .matches(&a));
        assert!(!Matcher::parse("env!~\"pr.*\"").unwrap().matches(&a));
        assert_eq!(
            Matcher::parse("env =~ prod").unwrap().to_string(),
            "env=~\"prod\""
        );
    }

    #[test]
    fn regexes_are_anchored() {
        let m = Matcher::parse("job=~\"a\"").unwrap();
        assert!(m.matches(&alert(&[("job", "a")])));
        assert!(!m.matches(&alert(&[("job", "ab")])));
    }

    #[test]
    fn regex_escapes_are_kept() {
        let m = Matcher::parse(r#"code=~"5\d\d""#).unwrap();
        assert!(m.matches(&alert(&[("code", "503")])));
        assert!(!m.matches(&alert(&[("code", "5xx")])));
    }

    #[test]
    fn quoted_values_unescape() {
        let m = Matcher::parse(r#"msg="say \"hi\" \\ bye""#).unwrap();
        assert_eq!(m.value, r#"say "hi" \ bye"#);
        assert_eq!(m.to_string(), r#"msg="say \"hi\" \\ bye""#);
    }

    #[test]
    fn missing_label_is_empty_and_severity_falls_back_to_the_field() {
        let mut a = alert(&[("team", "db")]);
        a.severity = Severity::Critical;
        assert!(Matcher::parse("zone=\"\"").unwrap().matches(&a));
        assert!(!Matcher::parse("team!=\"\"").unwrap().matches(&alert(&[])));
        assert!(Matcher::parse("severity=\"critical\"").unwrap().matches(&a));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Matcher::parse("team").unwrap_err();
        assert!(e.to_string().contains("expected an operator"), "{e}");
        let e = Matcher::parse("env=~\"(\"").unwrap_err();
        assert!(e.to_string().contains("bad regular expression"), "{e}");
        let e = Matcher::parse("env=\"prod").unwrap_err();
        assert!(
            e.to_string().contains("missing closing double quote"),
            "{e}"
        );
        let e = Matcher::parse("9x=\"a\"").unwrap_err();
        assert!(e.to_string().contains("label name"), "{e}");
    }
}

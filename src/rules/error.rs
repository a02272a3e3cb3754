use std::fmt;

use serde_saphyr::Location;

/// One problem in a rule file, located and explained:
/// `rules/web.yaml:12:5: policy "web": unknown field `treshold` (did you mean `threshold`?)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub policy: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl RuleError {
    pub fn at(file: &str, loc: Location, policy: Option<&str>, message: impl Into<String>) -> Self {
        RuleError {
            file: file.to_string(),
            line: loc.line(),
            column: loc.column(),
            policy: policy.map(str::to_string),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(p) = &self.policy {
            write!(f, "policy \"{p}\": ")?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleError {}

/// The closest of `candidates` to `word`, if it is a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and the same for
/// variants): a "did you mean" hint.
pub fn hint_for_serde_message(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("unknown ")?;
    let word = rest.split('`').nth(1)?;
    let expected = rest.split_once("expected")?.1;
    let expected = expected.split(" at line ").next().unwrap_or(expected);
    let expected = expected
        .trim_start()
        .trim_start_matches("one of")
        .trim_start_matches("either");
    let choices: Vec<&str> = expected
        .split([',', '|'])
        .flat_map(|c| c.split(" or "))
        .map(|c| c.trim().trim_matches('`'))
        .filter(|c| !c.is_empty())
        .collect();
    did_you_mean(word, choices.iter().copied()).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            did_you_mean("treshold", ["threshold", "metric"]),
            Some("threshold")
        );
        assert_eq!(did_you_mean("zzz", ["threshold", "metric"]), None);
        let m = "unknown field `treshold`, expected one of `metric`, `operator`, `threshold`, `for`, `adjust`";
        assert_eq!(
            hint_for_serde_message(m).as_deref(),
            Some("did you mean `threshold`?")
        );
    }
}

//! Configuration errors people can act on: every unknown key of the file at
//! once (each with its line, column and the closest allowed name), and the
//! line of a key that fails validation.

use std::ops::Range;

/// The errors of parsing `text`, as many as can be found: after an unknown
/// key the parse is tried again without it (an unknown key cannot hide a
/// required one), so one run names every misspelt key. `parse` returns the
/// message and the byte span of the first error.
pub fn all_parse_errors<T>(
    text: &str,
    mut parse: impl FnMut(&str) -> Result<T, (String, Option<Range<usize>>)>,
) -> Result<T, Vec<String>> {
    let mut text = text.to_string();
    // (where, message): reported in the order of the file.
    let mut errors: Vec<(usize, String)> = Vec::new();
    let in_order = |mut errors: Vec<(usize, String)>| {
        errors.sort_by_key(|(at, _)| *at);
        errors.into_iter().map(|(_, m)| m).collect::<Vec<_>>()
    };
    for _ in 0..MAX_ERRORS {
        match parse(&text) {
            Ok(v) if errors.is_empty() => return Ok(v),
            Ok(_) => return Err(in_order(errors)),
            Err((message, span)) => {
                let unknown = unknown_field(&message);
                let at = span.as_ref().map_or(usize::MAX, |s| s.start);
                errors.push((at, with_suggestion(&message, unknown.as_ref())));
                match (unknown, span) {
                    (Some(_), Some(span)) if span.end <= text.len() => blank_line(&mut text, span),
                    _ => return Err(in_order(errors)),
                }
            }
        }
    }
    Err(in_order(errors))
}

/// At most this many errors are reported from one file.
const MAX_ERRORS: usize = 20;

/// The name and the allowed names of a serde "unknown field" message.
struct Unknown {
    name: String,
    allowed: Vec<String>,
}

fn unknown_field(message: &str) -> Option<Unknown> {
    let rest = &message[message.find("unknown field `")? + "unknown field `".len()..];
    let name = rest[..rest.find('`')?].to_string();
    let allowed = rest
        .split_once("expected ")
        .map(|(_, list)| {
            list.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(Unknown { name, allowed })
}

/// The message, with "did you mean `x`?" when an allowed name is close.
fn with_suggestion(message: &str, unknown: Option<&Unknown>) -> String {
    let Some(u) = unknown else {
        return message.trim_end().to_string();
    };
    match closest(&u.name, &u.allowed) {
        Some(best) => format!("{}\ndid you mean `{best}`?", message.trim_end()),
        None => message.trim_end().to_string(),
    }
}

/// The allowed name nearest to `name`, if it is near enough to be a typo.
pub fn closest<'a>(name: &str, allowed: &'a [String]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(name, a), a))
        .filter(|(d, a)| *d <= (a.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.as_str())
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (diag + usize::from(ca != *cb)).min(row[j] + 1).min(up + 1);
            diag = up;
        }
    }
    row[b.len()]
}

/// Turns the line holding `span` into a comment of the same length, so the
/// lines and columns of what follows stay where they were.
fn blank_line(text: &mut String, span: Range<usize>) {
    let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let end = text[span.start..]
        .find('\n')
        .map_or(text.len(), |i| span.start + i);
    let blank = if end > start {
        format!("#{}", " ".repeat(text[start..end].chars().count() - 1))
    } else {
        String::new()
    };
    text.replace_range(start..end, &blank);
}

/// Where `key` (`window.length`, `sources[1].path`, `data_dir`) is set in
/// `text`: its 1-based line and column, when it is there.
pub fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    let (table, leaf) = match key.rsplit_once('.') {
        Some((t, l)) => (Some(t), l),
        None => (None, key),
    };
    // `sources[1]` is the second `[[sources]]`.
    let (name, nth) = match table.and_then(|t| t.split_once('[')) {
        Some((n, i)) => (Some(n), i.trim_end_matches(']').parse::<usize>().ok()),
        None => (table, None),
    };
    let mut in_table = name.is_none();
    let mut seen = 0usize;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') {
            let header = t.trim_matches(|c| c == '[' || c == ']' || c == ' ');
            in_table = match (name, nth) {
                (Some(n), Some(want)) if header == n => {
                    seen += 1;
                    seen == want + 1
                }
                (Some(n), None) => header == n,
                _ => false,
            };
            continue;
        }
        if in_table
            && let Some(rest) = t.strip_prefix(leaf)
            && rest.trim_start().starts_with('=')
        {
            return Some((i + 1, line.len() - t.len() + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<crate::config::Config, (String, Option<Range<usize>>)> {
        toml::from_str(text).map_err(|e: toml::de::Error| (e.to_string(), e.span()))
    }

    #[test]
    fn every_misspelt_key_is_named_at_once_with_the_closest_one() {
        let text =
            "[window]\nlenght = \"10s\"\nmax_futur = \"1m\"\n[run]\ncheckpoint_intervl = \"1s\"\n";
        let errors = all_parse_errors(text, parse).err().unwrap_or_default();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].contains("line 2") && errors[0].ends_with("did you mean `length`?"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("line 3") && errors[1].ends_with("did you mean `max_future`?"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("line 5")
                && errors[2].ends_with("did you mean `checkpoint_interval`?"),
            "{}",
            errors[2]
        );
    }

    #[test]
    fn a_type_error_stops_the_list_and_a_clean_file_parses() {
        let errors = all_parse_errors("[window]\nlenght = \"1s\"\nlength = true\n", parse)
            .err()
            .unwrap_or_default();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(all_parse_errors("[window]\nlength = \"5s\"\n", parse).is_ok());
    }

    #[test]
    fn nothing_close_suggests_nothing() {
        let allowed = vec!["length".to_string(), "apps".to_string()];
        assert_eq!(closest("zzzzzzzz", &allowed), None);
        assert_eq!(closest("lengths", &allowed), Some("length"));
    }

    #[test]
    fn keys_are_found_in_their_tables() {
        let text = "data_dir = \"d\"\n[window]\nlength = \"1s\"\n[[sources]]\npath = \"a\"\n[[sources]]\n  path = \"\"\n[run]\npoll_interval = \"0s\"\n";
        assert_eq!(locate(text, "data_dir"), Some((1, 1)));
        assert_eq!(locate(text, "window.length"), Some((3, 1)));
        assert_eq!(locate(text, "sources[1].path"), Some((7, 3)));
        assert_eq!(locate(text, "run.poll_interval"), Some((9, 1)));
        assert_eq!(locate(text, "run.missing"), None);
    }
}

//! What parsing a TOML file strictly needs, shared by `config.toml` and `policy.toml`:
//! the context ([`Cx`]) that turns toml_edit's byte spans into the lines people read and
//! builds each file's own error at one, the TOML syntax error, the span helpers and the
//! unknown-key check.

use std::marker::PhantomData;
use std::ops::Range;
use std::path::Path;

use toml_edit::{Item, TableLike};

/// Largest day count in either file (`warn_days`, `stale_days`, `max_days`...): ten years;
/// more is surely a typo.
pub const MAX_DAYS: i64 = 3650;

/// A file's error type: built from the file as shown, the line when known, and the
/// problem.
pub trait AtLine {
    /// The error for `path` at `line`.
    fn at_line(path: String, line: Option<usize>, message: String) -> Self;
}

/// What every parse error needs: the text (for line numbers) and the file's name; `E` is
/// the file's error type.
pub struct Cx<'a, E> {
    text: &'a str,
    path: String,
    error: PhantomData<fn() -> E>,
}

impl<'a, E: AtLine> Cx<'a, E> {
    /// The context for `text`, read from `path` (only used in messages).
    pub fn new(text: &'a str, path: &Path) -> Cx<'a, E> {
        Cx {
            text,
            path: path.display().to_string(),
            error: PhantomData,
        }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        line_of(self.text, span)
    }

    /// An error at `span` (its line, when known).
    pub fn error(&self, span: Option<Range<usize>>, message: String) -> E {
        E::at_line(self.path.clone(), self.line(span), message)
    }

    /// A whole number of days from `min` to [`MAX_DAYS`].
    pub fn days(
        &self,
        key: &str,
        item: &Item,
        span: Option<Range<usize>>,
        min: i64,
    ) -> Result<u32, E> {
        let n = item.as_integer().ok_or_else(|| {
            self.error(
                span.clone(),
                format!(
                    "{key} must be a whole number of days, not {}",
                    item.type_name()
                ),
            )
        })?;
        match u32::try_from(n) {
            Ok(d) if (min..=MAX_DAYS).contains(&n) => Ok(d),
            _ => Err(self.error(
                span,
                format!("{key} must be from {min} to {MAX_DAYS} days, not {n}"),
            )),
        }
    }

    /// The text as a TOML document, or its syntax error at its line.
    pub fn document(&self) -> Result<toml_edit::Document<&'a str>, E> {
        toml_edit::Document::parse(self.text).map_err(|e| {
            self.error(
                e.span(),
                format!("TOML syntax error: {}", e.message().trim_end()),
            )
        })
    }
}

/// `":line"`, or nothing when the line is not known: what follows the file in a message.
pub fn line_suffix(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// The span of a key.
pub fn key_span(table: &dyn TableLike, key: &str) -> Option<Range<usize>> {
    table.key(key).and_then(|k| k.span())
}

/// The span of a key's value, else of the key (an implicit table has no span of its own).
pub fn value_span(table: &dyn TableLike, key: &str) -> Option<Range<usize>> {
    table
        .get(key)
        .and_then(Item::span)
        .or_else(|| key_span(table, key))
}

/// Refuses keys not in `known`: a misspelt key must not be silently ignored.
pub fn check_keys<E: AtLine>(
    cx: &Cx<'_, E>,
    table: &dyn TableLike,
    known: &[&str],
    what: &str,
) -> Result<(), E> {
    match table.iter().find(|(k, _)| !known.contains(k)) {
        None => Ok(()),
        Some((key, _)) => Err(cx.error(
            key_span(table, key),
            format!(
                "{what}: unknown key {key:?}; known keys: {}",
                known.join(", ")
            ),
        )),
    }
}

/// The 1-based line where `span` starts in `text`.
pub fn line_of(text: &str, span: Option<Range<usize>>) -> Option<usize> {
    let start = span?.start.min(text.len());
    Some(
        text.as_bytes()[..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one() {
        let text = "a = 1\nb = 2\n";
        assert_eq!(line_of(text, Some(0..1)), Some(1));
        assert_eq!(line_of(text, Some(6..7)), Some(2));
        assert_eq!(line_of(text, Some(99..100)), Some(3));
        assert_eq!(line_of(text, None), None);
    }
}

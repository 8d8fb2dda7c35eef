//! Line numbers for errors about TOML files (`config.toml`, `policy.toml`): toml_edit
//! reports byte spans; people read lines.

use std::ops::Range;

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

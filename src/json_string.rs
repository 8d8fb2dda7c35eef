//! JSON strings written by hand, escaped exactly as `serde_json` escapes them, for the two
//! lines every git request writes (its answer and its audit line): serde's general path
//! (a flattened enum, every key escaped byte by byte, the answer serialised twice to size
//! its buffer) took a sixth of a `get`'s instructions (callgrind). Tests hold both lines
//! and every string to `serde_json`'s output.

/// How JSON writes each byte: 0 as it is, `u` as `\u00XX`, else `\` and this letter.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `text` as a JSON string.
pub fn push(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[plain_from..i]);
        plain_from = i + 1;
        match escape {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
            short => out.extend_from_slice(&[b'\\', short]),
        }
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}

/// How many bytes [`push`] appends for `text`.
pub fn len(text: &str) -> usize {
    let escaped: usize = text
        .bytes()
        .map(|byte| match ESCAPE[usize::from(byte)] {
            0 => 1,
            b'u' => 6,
            _ => 2,
        })
        .sum();
    escaped + 2
}

#[cfg(test)]
mod tests {
    /// Every byte that JSON escapes, and some it does not, alone and among others.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut texts: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        texts.extend(
            [
                "",
                "protocol=https\nhost=github.com\npassword=ghp_x\n",
                "quote \" backslash \\ tab \t bell \u{7} del \u{7f}",
                "é ✓ 𝄞 \u{2028}",
                "\u{0}\u{1f}end",
            ]
            .map(String::from),
        );
        for text in &texts {
            let mut ours = Vec::new();
            super::push(&mut ours, text);
            assert_eq!(ours, serde_json::to_vec(text).unwrap(), "{text:?}");
            assert_eq!(super::len(text), ours.len(), "{text:?}");
        }
    }
}

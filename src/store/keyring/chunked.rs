//! Values larger than one keyring item, split over several items, for stores with a
//! small per-item limit (Windows Credential Manager: a 2,560-byte blob). Platform-neutral,
//! so that it is tested on every OS; only the stores that need it use it.
//!
//! A value that fits in one item is written as it is, alone (so a short value reads the
//! same as one written before splitting existed, or by another tool). A larger value is
//! written as a head item under the key, holding a header and the first piece, plus
//! continuation items `<key>#a1`, `<key>#a2`... The header says which set of continuation
//! items (`a` or `b`), how many pieces, the value's length and its SHA-256, so a set that
//! is incomplete or mixed is refused as corrupt, never served as a shorter secret.
//!
//! A write never touches what the current head refers to: the new pieces go to the other
//! set (`b` when the head names `a`), then the head is written (the one step that switches
//! from the old value to the new), then the pieces nothing refers to any more are removed.
//! A crash at any point leaves either the old or the new value readable, never a mix; what
//! it leaves behind is removed by the next write or delete of that key.
//!
//! Continuation items of a set always form a prefix `#x1..#xk`: they are written in
//! ascending and removed in descending order, so the cleanup finds them all.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::super::StoreError;
use crate::secret::Secret;

/// How a store counts an item's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Bytes of the value as UTF-8.
    Utf8Bytes,
    /// Bytes of the value as UTF-16 (two per code unit): what Credential Manager stores
    /// for a password.
    Utf16Bytes,
}

impl Measure {
    fn of_char(self, c: char) -> usize {
        match self {
            Measure::Utf8Bytes => c.len_utf8(),
            Measure::Utf16Bytes => 2 * c.len_utf16(),
        }
    }

    fn of(self, s: &str) -> usize {
        match self {
            Measure::Utf8Bytes => s.len(),
            Measure::Utf16Bytes => 2 * s.encode_utf16().count(),
        }
    }
}

/// The largest item a store takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// At most this many...
    pub max: usize,
    /// ...of these per item.
    pub measure: Measure,
}

/// Credential Manager's items, with a margin: its limit is `CRED_MAX_CREDENTIAL_BLOB_SIZE`
/// = 2,560 bytes of blob, and `windows-native-keyring-store` writes a password as UTF-16
/// (two bytes a code unit: its error says "2560 chars", but it counts bytes, so 1,280 ASCII
/// characters fit). Items are kept to 2,048 bytes in case a Windows version counts the
/// limit differently. Here rather than in `wincred.rs` so that the tests on every OS split
/// with the very limit Windows uses.
pub const CREDENTIAL_MANAGER: Limit = Limit {
    max: 2048,
    measure: Measure::Utf16Bytes,
};

/// Raw items of one store: the layer this module splits values over.
pub trait Items {
    /// The item `name`, `None` when there is none.
    fn read(&self, name: &str) -> Result<Option<Secret>, StoreError>;
    /// Writes the item `name`, replacing it.
    fn write(&self, name: &str, value: &str) -> Result<(), StoreError>;
    /// Removes the item `name`; a missing item is not an error.
    fn remove(&self, name: &str) -> Result<(), StoreError>;
    /// The error for a value under `key` that cannot be put together; `detail` never
    /// holds secret bytes.
    fn corrupt(&self, key: &str, detail: String) -> StoreError;
    /// The error for a value too large to be split (more than [`MAX_PARTS`] items).
    fn too_large(&self, key: &str, detail: String) -> StoreError;
}

/// Marks a head item. Starts with a control character no token or JSON text starts with;
/// a value that does start with it anyway is always written split, so it reads back.
const MAGIC: &str = "\u{1}helperd-split/";
/// The format version written after [`MAGIC`].
const VERSION: &str = "1";
/// The most items one value is split into (four digits in the header).
pub const MAX_PARTS: usize = 9999;
/// More bytes than an item of any store holds (Windows: 2,560), to refuse a header whose
/// length no set of parts could fill before allocating for it.
const MAX_ITEM_BYTES: usize = 64 * 1024;
/// Hex digits of the SHA-256 kept in the header (128 bits).
const DIGEST_HEX: usize = 32;

/// The two sets of continuation items.
const SLOTS: [char; 2] = ['a', 'b'];

/// The name of continuation item `index` (from 1) of `slot` for `key`.
pub fn part_name(key: &str, slot: char, index: usize) -> String {
    format!("{key}#{slot}{index}")
}

/// What a head item says.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    slot: char,
    parts: usize,
    len: usize,
    digest: String,
}

impl Header {
    /// Fixed width, so the header's size does not depend on the value.
    fn encode(&self) -> String {
        format!(
            "{MAGIC}{VERSION}:{}:{:04}:{:010}:{}\n",
            self.slot, self.parts, self.len, self.digest
        )
    }

    /// The header and the rest of a head item; `Ok(None)` for an item without one.
    fn decode(item: &str) -> Result<Option<(Header, &str)>, String> {
        let Some(rest) = item.strip_prefix(MAGIC) else {
            return Ok(None);
        };
        let (line, data) = rest.split_once('\n').ok_or("its split header has no end")?;
        let fields: Vec<&str> = line.split(':').collect();
        let [version, slot, parts, len, digest] = fields[..] else {
            return Err("its split header has the wrong number of fields".into());
        };
        if version != VERSION {
            return Err(format!(
                "its split header has version {version:?}, not {VERSION} (written by a newer helperd?)"
            ));
        }
        let slot = match slot {
            "a" => 'a',
            "b" => 'b',
            _ => return Err("its split header names an unknown set of parts".into()),
        };
        let parts: usize = parts
            .parse()
            .ok()
            .filter(|n| (1..=MAX_PARTS).contains(n))
            .ok_or("its split header has a bad part count")?;
        let len: usize = len
            .parse()
            .map_err(|_| "its split header has a bad length")?;
        if digest.len() != DIGEST_HEX || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("its split header has a bad checksum field".into());
        }
        let header = Header {
            slot,
            parts,
            len,
            digest: digest.to_string(),
        };
        Ok(Some((header, data)))
    }
}

fn digest(value: &str) -> String {
    let hash = Sha256::digest(value.as_bytes());
    hash.iter()
        .take(DIGEST_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value under `key`: one item as it is, or a split value put together and checked.
pub fn get(items: &impl Items, key: &str) -> Result<Option<Secret>, StoreError> {
    let Some(head) = items.read(key)? else {
        return Ok(None);
    };
    let (header, first) = match Header::decode(head.expose()) {
        Ok(Some(decoded)) => decoded,
        Ok(None) => return Ok(Some(head)),
        Err(detail) => return Err(items.corrupt(key, detail)),
    };
    if header.len > header.parts.saturating_mul(MAX_ITEM_BYTES) {
        return Err(items.corrupt(
            key,
            format!(
                "its split header says {} bytes in {} parts, more than parts can hold",
                header.len, header.parts
            ),
        ));
    }
    // The whole length is reserved first and never exceeded: a string that grows leaves
    // copies of the secret in freed memory that nothing zeroizes.
    let mut buf = Zeroizing::new(String::with_capacity(header.len));
    for index in 0..header.parts {
        let part = if index == 0 {
            None
        } else {
            let name = part_name(key, header.slot, index);
            match items.read(&name)? {
                Some(part) => Some(part),
                None => {
                    return Err(items.corrupt(
                        key,
                        format!(
                            "part {} of {} ({name}) is missing; the value was not served",
                            index + 1,
                            header.parts
                        ),
                    ))
                }
            }
        };
        let piece = part.as_ref().map_or(first, Secret::expose);
        if buf.len() + piece.len() > header.len {
            return Err(items.corrupt(
                key,
                format!(
                    "part {} of {} makes the value longer than its split header says; the \
                     value was not served",
                    index + 1,
                    header.parts
                ),
            ));
        }
        buf.push_str(piece);
    }
    let value = Secret::new(std::mem::take(&mut *buf));
    if value.expose().len() != header.len {
        return Err(items.corrupt(
            key,
            format!(
                "its {} parts hold {} of the {} bytes its header says; the value was not served",
                header.parts,
                value.expose().len(),
                header.len
            ),
        ));
    }
    if digest(value.expose()) != header.digest {
        return Err(items.corrupt(
            key,
            format!(
                "its {} parts do not match the checksum in its header (a part from another \
                 write?); the value was not served",
                header.parts
            ),
        ));
    }
    Ok(Some(value))
}

/// Writes `value` under `key`, split when it does not fit in one item of `limit`.
pub fn set(items: &impl Items, limit: Limit, key: &str, value: &str) -> Result<(), StoreError> {
    if limit.measure.of(value) <= limit.max && !value.starts_with(MAGIC) {
        items.write(key, value)?;
        for slot in SLOTS {
            remove_parts_from(items, key, slot, 1)?;
        }
        return Ok(());
    }

    // The set the current head refers to is left alone until the new head is written.
    let current = match items.read(key)? {
        Some(head) => Header::decode(head.expose())
            .ok()
            .flatten()
            .map(|(h, _)| h.slot),
        None => None,
    };
    let slot = match current {
        Some('a') => 'b',
        _ => 'a',
    };
    let header_len = limit.measure.of(&Header {
        slot,
        parts: 0,
        len: 0,
        digest: "0".repeat(DIGEST_HEX),
    }
    .encode());
    if limit.max < header_len + 4 {
        // Cannot happen for a real store (Windows: 2,560 bytes); a piece must hold a char.
        return Err(items.too_large(key, format!("items of {} are too small", limit.max)));
    }
    let pieces = split(value, limit, limit.max - header_len);
    if pieces.len() > MAX_PARTS {
        return Err(items.too_large(
            key,
            format!(
                "the value needs {} items, more than the {MAX_PARTS} a value may be split into",
                pieces.len()
            ),
        ));
    }
    for (index, piece) in pieces.iter().enumerate().skip(1) {
        items.write(&part_name(key, slot, index), piece)?;
    }
    let header = Header {
        slot,
        parts: pieces.len(),
        len: value.len(),
        digest: digest(value),
    };
    let head = Secret::new(header.encode() + pieces[0]);
    items.write(key, head.expose())?;
    // Left over from an earlier write of this set that did not finish.
    remove_parts_from(items, key, slot, pieces.len())?;
    let other = if slot == 'a' { 'b' } else { 'a' };
    remove_parts_from(items, key, other, 1)
}

/// Removes the value under `key` and all its parts. The head goes first: from then on the
/// value is gone, whatever happens to the rest.
pub fn delete(items: &impl Items, key: &str) -> Result<(), StoreError> {
    items.remove(key)?;
    for slot in SLOTS {
        remove_parts_from(items, key, slot, 1)?;
    }
    Ok(())
}

/// `value` in pieces of at most `limit.max` (the first at most `first_max`), cut between
/// chars (never inside a UTF-16 surrogate pair).
fn split(value: &str, limit: Limit, first_max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut size, mut max) = (0, 0, first_max);
    for (at, c) in value.char_indices() {
        let cost = limit.measure.of_char(c);
        if size + cost > max {
            pieces.push(&value[start..at]);
            (start, size, max) = (at, 0, limit.max);
        }
        size += cost;
    }
    pieces.push(&value[start..]);
    pieces
}

/// Removes continuation items `from..` of `slot`, highest first so that what is left
/// is still a prefix if this stops half-way.
fn remove_parts_from(
    items: &impl Items,
    key: &str,
    slot: char,
    from: usize,
) -> Result<(), StoreError> {
    let mut end = from;
    while items.read(&part_name(key, slot, end))?.is_some() {
        end += 1;
    }
    for index in (from..end).rev() {
        items.remove(&part_name(key, slot, index))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

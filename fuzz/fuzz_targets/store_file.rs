//! The encrypted file store's `secrets.enc`: header, decryption and the map, on any bytes.
#![no_main]

use helperd::store::file::read_for_fuzzing;
use libfuzzer_sys::fuzz_target;

/// A fixed key: the seed corpus holds files encrypted with it (scripts/fuzz.sh makes them).
const KEY: [u8; 32] = *b"helperd fuzzing key, 32 bytes!!!";

fuzz_target!(|data: &[u8]| {
    let _ = read_for_fuzzing(data, &KEY);
});

//! A request line from the daemon's socket: decoded into a request or a refusal, never a
//! panic, and a refusal never quotes what was sent (it may be a secret).
#![no_main]

use helperd::daemon::line::{parse, Incoming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Incoming::Reply(response) = parse(data) {
        if let helperd::wire::wire::Reply::Error { message, .. } = &response.reply {
            // A long enough run of the input must not come back in the message.
            if let Ok(text) = std::str::from_utf8(data) {
                for word in text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| w.len() >= 24)
                {
                    assert!(!message.contains(word), "the refusal quotes the request");
                }
            }
        }
    }
});

//! git's key=value input to a credential helper: parsed, and when it parses, every value
//! it holds can be written back only as a valid answer (no value with a newline).
#![no_main]

use helperd::gitproto::{Answer, GitCredential};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cred) = GitCredential::parse(text) {
        let mut answer = Answer::new();
        for (key, value) in [
            ("protocol", cred.protocol.as_deref()),
            ("host", cred.host.as_deref()),
            ("path", cred.path.as_deref()),
            ("username", cred.username.as_deref()),
            ("password", cred.password.as_ref().map(|p| p.expose())),
        ] {
            if let Some(value) = value {
                // Parsed values never hold what would forge a line of an answer.
                assert!(
                    answer.push(key, value).is_ok(),
                    "{key} was accepted but cannot be answered"
                );
            }
        }
        let out = answer.finish();
        assert_eq!(
            out.expose().matches('\n').count(),
            out.expose().lines().count()
        );
    }
});

//! URLs as people paste them: every reader agrees on where the userinfo ends, and no
//! redaction prints the password.
#![no_main]

use helperd::location::{Location, UrlPrefix};
use helperd_wire::url::split_userinfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Location::parse_url_with_user(url);
    let _ = UrlPrefix::parse(url);
    let redacted = helperd_wire::wire::redact_userinfo(url);
    let audited = helperd::audit_event::redact_url(url);
    if let Some((_, Some(userinfo), _)) = split_userinfo(url) {
        if let Some((_, password)) = userinfo.split_once(':') {
            // The password, where it is long enough to be told apart from the rest.
            let rest_of_url = url.replacen(password, "", 1);
            if password.len() >= 6 && !rest_of_url.contains(password) {
                assert!(
                    !redacted.contains(password),
                    "redact_userinfo printed the password"
                );
                assert!(
                    !audited.contains(password),
                    "redact_url printed the password"
                );
            }
        }
    }
});

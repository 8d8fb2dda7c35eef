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
    if let Some((scheme, Some(userinfo), rest)) = split_userinfo(url) {
        // Exactly the password's place is masked, whatever it held.
        if let Some((user, _)) = userinfo.split_once(':') {
            assert_eq!(redacted, format!("{scheme}://{user}:<redacted>@{rest}"));
        }
        // The audit log's form drops the whole userinfo (and the query): nothing else.
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        assert_eq!(audited, format!("{scheme}://{}", &rest[..end]));
    }
});

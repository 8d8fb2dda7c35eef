//! URLs as people paste them: every reader agrees on where the userinfo ends, no redaction
//! prints the password, and a parsed prefix or location prints back to itself.
#![no_main]

use helperd::location::{Location, UrlPrefix};
use helperd_wire::url::{redact_password, split_userinfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(loc) = Location::parse_url(url) {
        assert_eq!(Location::parse_url(&loc.to_string()), Ok(loc));
    }
    if let Ok(prefix) = UrlPrefix::parse(url) {
        assert_eq!(UrlPrefix::parse(&prefix.to_string()), Ok(prefix));
    }
    let redacted = redact_password(url);
    let audited = helperd::audit_event::redact_url(url);
    if let Some((scheme, Some(userinfo), _)) = split_userinfo(url) {
        // The password's place is masked, whatever it held.
        if let Some((user, _)) = userinfo.split_once(':') {
            assert!(redacted.starts_with(&format!("{scheme}://{user}:<redacted>@")));
            // The audit log's form drops everything up to the last `@`, and the query.
            let after_scheme = audited.split_once("://").map_or("", |(_, rest)| rest);
            assert!(!after_scheme.contains('@'), "{audited}");
        }
    }
});

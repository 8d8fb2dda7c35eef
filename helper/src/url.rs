//! URL text: where a URL's userinfo (`user:password@`) ends, `%XX` decoding, and the two
//! redactors every output uses (errors, `which`, `status`, the audit log, logs, the support
//! bundle), so that no message prints a password whatever characters it holds.
//!
//! This is the part of URL handling that needs no tables: it lives in this small client
//! crate, which git starts on every operation and which links no `url` crate (its IDNA
//! tables would weigh more than the rest of the client). Normalising a host for routing
//! (case, default port, IDN, trailing dot) needs those tables and lives in the daemon's
//! `helperd::location`, which calls this module for everything else.
//!
//! Parsing follows git's reading: the authority ends at the first `/` after the scheme,
//! and the userinfo at the last `@` before it, so a password may hold `?`, `#` or `@`. A
//! password with a `/` leaves no plausible host before that `/`: then everything up to the
//! last `@` before the query or fragment goes, since treating too much as userinfo beats
//! printing a password.
//!
//! Redaction is stricter still, because a password may also hold a `/` followed by digits
//! (`https://u:12/x@host/`, which git reads as host `u`, port 12): whenever the authority
//! holds a `:` that could begin a password and an `@` follows anywhere, everything up to
//! the last `@` is masked. That can hide a port and a path with an `@` in it
//! (`https://host:8443/a@b`): printing too little beats printing a password.

/// `(scheme, userinfo, the rest)`: `https://u:p@h/x` gives `("https", Some("u:p"), "h/x")`.
/// `None` when there is no `://`.
pub fn split_userinfo(url: &str) -> Option<(&str, Option<&str>, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let at = match authority.rfind('@') {
        Some(at) => Some(at),
        None if !plausible_authority(authority) => {
            let end = rest.find(['?', '#']).unwrap_or(rest.len());
            rest[..end].rfind('@')
        }
        None => None,
    };
    Some(match at {
        Some(at) => (scheme, Some(&rest[..at]), &rest[at + 1..]),
        None => (scheme, None, rest),
    })
}

/// `host`, `host:port` or `[v6]:port`, up to a query or fragment: what an authority
/// without userinfo looks like.
fn plausible_authority(authority: &str) -> bool {
    let authority = &authority[..authority.find(['?', '#']).unwrap_or(authority.len())];
    let port = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => authority[end + 1..].strip_prefix(':'),
            None => return false,
        }
    } else {
        authority.split_once(':').map(|(_, port)| port)
    };
    port.is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Percent-encodes one URL path segment (a username, an email, `acme/app` as one GitLab
/// project id -> `acme%2Fapp`), keeping RFC 3986's unreserved characters. Used by the
/// daemon's API paths.
pub fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes strictly: exactly two hex digits (no sign, unlike
/// `u8::from_str_radix`); `None` for a malformed escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A URL as redaction reads it: `(scheme, user, whether a password may follow the user,
/// what follows the userinfo)`; `None` without `://` or without userinfo.
fn redaction_split(url: &str) -> Option<(&str, &str, bool, &str)> {
    let (scheme, userinfo, _) = split_userinfo(url)?;
    let rest = &url[scheme.len() + "://".len()..];
    // The `:` that starts a password: in git's userinfo, else anywhere in the authority
    // (`u:12/x@h`, which git reads as host `u`, port 12).
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let colon = match userinfo {
        Some(info) => info.find(':'),
        None => None,
    }
    .or_else(|| rest[..authority_end].find(':'));
    match (colon, rest.rfind('@')) {
        (Some(colon), Some(at)) if colon < at => {
            Some((scheme, &rest[..colon], true, &rest[at + 1..]))
        }
        // No password: only a user name, where git's reading ends it.
        _ => userinfo.map(|user| (scheme, user, false, &rest[user.len() + 1..])),
    }
}

/// A URL without a scheme (a typo such as `user:pw@host/path`, or an scp-like
/// `user@host:path`) read as if it had one, so that its userinfo is found all the same:
/// `(the prefix added, the URL to read)`.
fn with_scheme(url: &str) -> (&'static str, std::borrow::Cow<'_, str>) {
    match url.contains("://") {
        true => ("", url.into()),
        false => ("x://", format!("x://{url}").into()),
    }
}

/// What follows a host (`host/path...`) with a userinfo-like `...:...@` past the host
/// masked: git hands a path over as it is, and a path may carry another URL with its
/// password (`/org/https://user:pw@host/x`), where `#`, `?` and `/` end nothing. From the
/// start of the path segment holding the first `:` that an `@` follows, up to the last
/// `@`, becomes `<redacted>`: `h/org/https://u:p#w@x/r` -> `h/org/<redacted>@x/r`.
fn mask_userinfo_past_host(rest: &str) -> std::borrow::Cow<'_, str> {
    let host_end = rest.find('/').unwrap_or(rest.len());
    let path = &rest[host_end..];
    let colon = path
        .rfind('@')
        .and_then(|at| path[..at].find(':').map(|colon| (colon, at)));
    match colon {
        Some((colon, at)) => {
            let start = path[..colon].rfind('/').map_or(0, |slash| slash + 1);
            format!(
                "{}{}<redacted>{}",
                &rest[..host_end],
                &path[..start],
                &path[at..]
            )
            .into()
        }
        None => rest.into(),
    }
}

/// `scheme://user:password@host/...` -> `scheme://user:<redacted>@host/...`: for messages
/// that show the URL the user wrote (`which`, config errors, request logs). A URL without
/// a password comes back unchanged. So does one without a scheme but with a password
/// (`user:pw@host/`, which no parser accepts and every error quotes): masked likewise, as
/// is a `user:password@` further on, in the path (`https://h/org/https://u:pw@x/`).
pub fn redact_password(url: &str) -> String {
    let (prefix, schemed) = with_scheme(url);
    let redacted = match redaction_split(&schemed) {
        Some((scheme, user, true, rest)) => {
            format!(
                "{scheme}://{user}:<redacted>@{}",
                mask_userinfo_past_host(rest)
            )
        }
        _ => {
            let (head, rest) = match redaction_split(&schemed) {
                Some((scheme, user, false, rest)) => (format!("{scheme}://{user}@"), rest),
                _ => match schemed.split_once("://") {
                    Some((scheme, rest)) => (format!("{scheme}://"), rest),
                    None => return url.to_string(),
                },
            };
            match mask_userinfo_past_host(rest) {
                std::borrow::Cow::Owned(masked) => format!("{head}{masked}"),
                std::borrow::Cow::Borrowed(_) => return url.to_string(),
            }
        }
    };
    redacted
        .strip_prefix(prefix)
        .unwrap_or(&redacted)
        .to_string()
}

/// Strips what could carry a credential from a URL before it is logged for good (the
/// audit log): the whole userinfo, a `user:password@` further on in the path (masked as
/// [`redact_password`] does), the query (`?private_token=...`) and the fragment.
/// `https://user:pass@host/path?q` -> `https://host/path`. An scp-like `user@host:path`
/// loses its `user@` too.
pub fn redact_for_log(url: &str) -> String {
    // The common case, every git request's audit line: nothing that could be stripped.
    // Without an `@` there is no userinfo anywhere, and without `?` or `#` no query or
    // fragment; with a scheme the reading below gives the URL back unchanged.
    if url.contains("://") && !url.contains(['@', '?', '#']) {
        return url.to_string();
    }
    redact_for_log_by_reading(url)
}

/// [`redact_for_log`] for a URL that may hold something to strip.
fn redact_for_log_by_reading(url: &str) -> String {
    // An scp-like `user@host:path` has no scheme: read as if it had one.
    let (prefix, schemed) = with_scheme(url);
    let (scheme, rest) = match redaction_split(&schemed) {
        Some((scheme, _, _, rest)) => (scheme, rest),
        None => match schemed.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("", &*schemed),
        },
    };
    // Masked before the query and fragment go: a `#` or `?` may be inside the password.
    let rest = mask_userinfo_past_host(rest);
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let redacted = format!("{scheme}://{}", &rest[..end]);
    redacted
        .strip_prefix(prefix)
        .unwrap_or(&redacted)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut for URLs with nothing to strip gives what reading them gives, for
    /// every URL of up to 6 characters after the scheme from the characters that matter
    /// to the reading (`:` a port or password, `/` a path, `[` an IPv6 host).
    #[test]
    fn the_shortcut_agrees_with_the_reading() {
        let alphabet = ['h', ':', '/', '1', '[', ']'];
        let mut tails = vec![String::new()];
        for _ in 0..6 {
            let longer: Vec<String> = tails
                .iter()
                .filter(|t| t.len() == tails.last().unwrap().len())
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            tails.extend(longer);
        }
        for tail in &tails {
            for url in [
                format!("https://{tail}"),
                format!("x://h{tail}"),
                tail.clone(),
            ] {
                assert_eq!(
                    redact_for_log(&url),
                    redact_for_log_by_reading(&url),
                    "{url}"
                );
            }
        }
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(percent_encode_segment("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(percent_encode_segment("me@example.com"), "me%40example.com");
        assert_eq!(percent_encode_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn userinfo_ends_where_git_ends_it_and_never_earlier() {
        #[rustfmt::skip]
        let cases = [
            ("https://h.example/x", None, "h.example/x"),
            ("https://u@h.example/x", Some("u"), "h.example/x"),
            ("https://u:p@h.example", Some("u:p"), "h.example"),
            ("https://u:p#secret@h.example/x.git", Some("u:p#secret"), "h.example/x.git"),
            ("https://u:p?se@cret@h.example/", Some("u:p?se@cret"), "h.example/"),
            ("https://u:p/w@h.example/", Some("u:p/w"), "h.example/"),
            ("https://u:p%40s@h.example:8443/a", Some("u:p%40s"), "h.example:8443/a"),
            ("https://h.example:8443/a?x=1#f", None, "h.example:8443/a?x=1#f"),
            ("https://[::1]:8443/a", None, "[::1]:8443/a"),
        ];
        for (url, userinfo, rest) in cases {
            let (scheme, u, r) = split_userinfo(url).unwrap();
            assert_eq!((scheme, u, r), ("https", userinfo, rest), "{url}");
        }
        assert_eq!(split_userinfo("no-scheme"), None);
    }

    #[test]
    fn redaction_masks_every_password_git_could_read() {
        #[rustfmt::skip]
        let cases = [
            ("https://x-access-token:ghp_abc@github.com/a.git", "https://x-access-token:<redacted>@github.com/a.git"),
            ("https://u:p#s@h/x", "https://u:<redacted>@h/x"),
            ("https://u:12/x@h/p", "https://u:<redacted>@h/p"),
            ("https://u:1/?x@h/", "https://u:<redacted>@h/"),
            ("https://bob@h/p", "https://bob@h/p"),
            ("https://h/p@q", "https://h/p@q"),
            ("https://h:8443/p", "https://h:8443/p"),
            ("not a url", "not a url"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_password(url), redacted, "{url}");
        }
        assert_eq!(redact_for_log("https://u:12/x@h/p?q"), "https://h/p");
    }

    #[test]
    fn redaction_masks_a_password_in_a_url_inside_the_path() {
        // git's `path=` as the audit log's URL holds it: `#`, `?` and `/` end nothing.
        for secret in ["Sec#ret1", "Sec?ret2", "Sec/ret3", "Sec@ret4", "Sec%40ret5"] {
            let url = format!("https://h.example/org/https://user:{secret}@x.example/r.git");
            assert_eq!(
                redact_password(&url),
                "https://h.example/org/<redacted>@x.example/r.git"
            );
            assert_eq!(
                redact_for_log(&url),
                "https://h.example/org/<redacted>@x.example/r.git"
            );
            // A password in the userinfo already masks up to the last `@` (the host too).
            let both = format!("https://u:{secret}@h.example/o/u:{secret}@x/r");
            assert_eq!(redact_password(&both), "https://u:<redacted>@x/r");
            assert_eq!(redact_for_log(&both), "https://x/r");
        }
        // A path with only one of the two, or neither, is kept.
        for url in [
            "https://h/a:b/c",
            "https://h/a/b@c",
            "https://bob@h/a@b",
            "https://h/",
        ] {
            assert_eq!(redact_password(url), url);
        }
        assert_eq!(redact_for_log("https://h/a:b/c?q"), "https://h/a:b/c");
    }

    #[test]
    fn redaction_masks_a_password_in_a_url_without_a_scheme() {
        // A typo no parser accepts, quoted by every error about it (`runtime add --url`).
        #[rustfmt::skip]
        let cases = [
            ("user:Sec#ret1@h.example/org/", "user:<redacted>@h.example/org/"),
            ("user:Sec?ret2@h.example/", "user:<redacted>@h.example/"),
            ("user:Sec/ret3@h.example/", "user:<redacted>@h.example/"),
            ("user:Sec@ret4@h.example", "user:<redacted>@h.example"),
            ("user:Sec%40ret5@h.example/", "user:<redacted>@h.example/"),
            // No password: unchanged.
            ("git@github.com:acme/app.git", "git@github.com:acme/app.git"),
            ("h.example/org", "h.example/org"),
            ("bob@h.example/org", "bob@h.example/org"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_password(url), redacted, "{url}");
        }
        assert_eq!(
            redact_for_log("git@github.com:acme/app.git"),
            "github.com:acme/app.git"
        );
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a%20b%7e").as_deref(), Some("a b~"));
        for bad in ["%", "%4", "%zz", "%+1", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}

//! Where a URL's userinfo (`user:password@`) ends: the one reading every part of helperd
//! uses to parse, redact and print URLs, so that no message can print a password whatever
//! characters it holds.
//!
//! git's reading: the authority ends at the first `/` after the scheme, and the userinfo
//! at the last `@` before it, so a password may hold `?`, `#` or `@`. A password with a
//! `/` leaves no plausible host before that `/`: then everything up to the last `@` before
//! the query or fragment goes, since treating too much as userinfo beats printing a
//! password.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

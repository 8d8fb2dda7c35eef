//! URL prefixes from `config.toml` and locations from git's requests, normalised the same
//! way so that routing (`crate::runtime`) compares them with plain string equality:
//! scheme lower-case; the host lower-case, an internationalised name in its punycode
//! form (`bücher.example` is `xn--bcher-kva.example`, as curl sends it), without a
//! trailing dot (`github.com.` is `github.com`), the scheme's default port dropped; the
//! path %-decoded, without leading or trailing `/`, with dot segments resolved and a
//! trailing `.git` removed. Pure: no I/O, and no knowledge of runtimes or the configuration.
//!
//! The daemon's half of the one URL module: where the userinfo ends, `%XX` decoding and
//! redaction are `helperd_wire::url`'s (shared with the small client, which must not link
//! the `url` crate); host names go through the `url` crate's IDNA and IP parsing here
//! (WHATWG URL rules, which is what browsers and curl's IDN support agree on).

use std::fmt;

use helperd_wire::url::percent_decode;

/// A URL prefix of a runtime, e.g. `https://github.com/acme/`, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlPrefix {
    /// Lower-case scheme, e.g. `https`.
    pub scheme: String,
    /// The host (or `*.` wildcard domain) with its port, normalised.
    pub host: HostPattern,
    /// %-decoded, without leading or trailing `/`; empty for a host-wide prefix.
    pub path: String,
}

/// The host part of a prefix: lower-case `name` or `name:port`, the default port dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Matches this host only.
    Exact(String),
    /// `*.example.com`: holds `example.com` (with its port, if any) and matches exactly one
    /// more label in front of it: `a.example.com`, but not `example.com` nor
    /// `a.b.example.com`, the rule git's own `credential.<url>` matching uses.
    Wildcard(String),
}

/// Where a request goes, normalised like a [`UrlPrefix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Lower-case scheme, e.g. `https`.
    pub scheme: String,
    /// Lower-case `name` or `name:port`, the default port dropped.
    pub host: String,
    /// `None` when git sent no path (`credential.useHttpPath` off) or the path is empty.
    pub path: Option<String>,
}

/// The port a scheme uses when none is written: `https://h:443/` is `https://h/`.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// Escapes what would otherwise end or change the meaning of a path in a URL, so that the
/// canonical text of a prefix parses back to the same prefix.
fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_control() || matches!(c, ' ' | '%' | '?' | '#') {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Normalises a %-decoded path: dot segments resolved (as curl does before the request
/// leaves, so the path compared is the one the server sees), leading and trailing `/`
/// removed, and a trailing `.git` dropped (`acme/app.git` and `acme/app` are one repository).
fn normalise_path(decoded: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let joined = segments.join("/");
    let mut path = joined.trim_matches('/');
    // Every `.git` goes (`app.git.git` is `app`, so the normalised text normalises to
    // itself), but a component that is only ".git" names nothing once stripped, and
    // `..git` or `...git` would become a dot segment (which the server never sees): those
    // stay whole.
    loop {
        let last = path.rsplit('/').next().unwrap_or(path);
        match last.strip_suffix(".git") {
            Some(stem) if !matches!(stem, "" | "." | "..") => {
                path = &path[..path.len() - ".git".len()];
            }
            _ => return path.to_string(),
        }
    }
}

/// A URL split at its delimiters, nothing decoded yet.
struct RawUrl<'a> {
    scheme: String,
    userinfo: Option<&'a str>,
    authority: &'a str,
    path: &'a str,
    has_query: bool,
    has_fragment: bool,
}

fn split_url(url: &str) -> Result<RawUrl<'_>, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("it has no scheme; write it like https://host/path")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!("the scheme {scheme:?} is not a valid URL scheme"));
    }
    // The userinfo first, as git reads it (helperd_wire::url): a password may hold `#`,
    // `?`, `/` or `@`, and none of it may reach a message about the rest.
    let (userinfo, rest) = match helperd_wire::url::split_userinfo(url) {
        Some((_, userinfo, rest)) => (userinfo, rest),
        None => (None, rest),
    };
    // RFC 3986 order: the fragment ends the URL, then the query ends the path.
    let (rest, has_fragment) = match rest.split_once('#') {
        Some((before, _)) => (before, true),
        None => (rest, false),
    };
    let (rest, has_query) = match rest.split_once('?') {
        Some((before, _)) => (before, true),
        None => (rest, false),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };
    Ok(RawUrl {
        scheme: scheme.to_ascii_lowercase(),
        userinfo,
        authority,
        path,
        has_query,
        has_fragment,
    })
}

/// Parses `host[:port]` (or `[v6]:port`), returning the normalised text and whether it is a
/// `*.` wildcard. Strict: this is for URLs a person typed, where a typo must be reported.
fn parse_host(scheme: &str, authority: &str) -> Result<(String, bool), String> {
    let decoded = percent_decode(authority).ok_or("the host has a bad %-escape")?;
    let decoded = decoded.to_lowercase();
    let (name, port) = split_port(&decoded)?;
    let name = without_trailing_dot(name);
    if name.is_empty() {
        return Err("the host is empty".to_string());
    }
    let wildcard = check_host_name(name)?;
    let port = parse_port(port)?;
    let mut host = if wildcard {
        canonical_name(&name["*.".len()..])?
    } else {
        canonical_name(name)?
    };
    if let Some(port) = port.filter(|p| Some(*p) != default_port(scheme)) {
        host.push_str(&format!(":{port}"));
    }
    Ok((host, wildcard))
}

/// `github.com.` (the root made explicit, which DNS resolves to the same host) is
/// `github.com`.
fn without_trailing_dot(name: &str) -> &str {
    match name.strip_suffix('.') {
        Some(stripped) if !stripped.ends_with('.') => stripped,
        _ => name,
    }
}

/// The one spelling of a host name, by the WHATWG URL rules curl and browsers follow: an
/// internationalised name in punycode (`bücher.example` -> `xn--bcher-kva.example`), ASCII
/// lower-case, IP addresses in their usual form (`[0:0::1]` -> `[::1]`).
fn canonical_name(name: &str) -> Result<String, String> {
    if is_plain_ascii_name(name) {
        // What `url::Host::parse` would return unchanged, without its Unicode tables:
        // git sends such a host with every request.
        return Ok(name.to_string());
    }
    match url::Host::parse(name) {
        // IDNA maps some letters to ASCII punctuation (`⒇` -> `(20)`, `⒈` -> `1.`): such a
        // name would not parse back, so it is refused (found by the url fuzz target).
        Ok(url::Host::Domain(domain)) => match check_host_name(&domain) {
            Ok(false) if domain.is_ascii() => Ok(domain),
            _ => Err(format!(
                "the host {name:?} is not a valid host name (it maps to {domain:?})"
            )),
        },
        Ok(url::Host::Ipv4(ip)) => Ok(ip.to_string()),
        Ok(url::Host::Ipv6(ip)) => Ok(format!("[{ip}]")),
        Err(e) => Err(format!("the host {name:?} is not a valid host name ({e})")),
    }
}

/// A lower-case ASCII name of letters, digits, `-` and `_` labels, none in punycode,
/// whose last label starts with a letter (so it is no IPv4 number, which the URL rules
/// rewrite: `0x7f.1` is `127.0.0.1`): the URL rules keep it as it is.
fn is_plain_ascii_name(name: &str) -> bool {
    let plain_label = |l: &str| {
        !l.is_empty()
            && !l.starts_with("xn--")
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    name.split('.').all(plain_label)
        && name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.as_bytes()[0].is_ascii_lowercase())
}

/// The name of a normalised `name[:port]` host, without its port: `github.com:8443` ->
/// `github.com`, `[::1]:8080` -> `[::1]`.
pub fn host_name(host: &str) -> &str {
    split_port(host).map_or(host, |(name, _)| name)
}

/// Splits `name:port`; a bracketed IPv6 address keeps its colons.
fn split_port(host: &str) -> Result<(&str, Option<&str>), String> {
    if host.starts_with('[') {
        let end = host.find(']').ok_or("the host has '[' without ']'")?;
        let (name, rest) = host.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((name, Some(port))),
            None if rest.is_empty() => Ok((name, None)),
            None => Err(format!("unexpected {rest:?} after the host")),
        };
    }
    match host.split_once(':') {
        Some((name, port)) => Ok((name, Some(port))),
        None => Ok((host, None)),
    }
}

fn parse_port(port: Option<&str>) -> Result<Option<u16>, String> {
    let Some(port) = port else { return Ok(None) };
    let valid = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(n) if valid && n != 0 => Ok(Some(n)),
        _ => Err(format!("the port {port:?} is not a number from 1 to 65535")),
    }
}

/// Checks the host's characters and labels; returns whether it is a `*.` wildcard.
fn check_host_name(name: &str) -> Result<bool, String> {
    if name.starts_with('[') {
        // split_port made sure a bracketed name ends with ']'.
        let inner = &name[1..name.len() - 1];
        let ok = !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || ":.".contains(c));
        return if ok {
            Ok(false)
        } else {
            Err(format!("the host {name:?} is not a valid IPv6 address"))
        };
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '*')))
    {
        return Err(format!("the host contains {c:?}"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(format!("the host {name:?} has an empty label"));
    }
    let wildcard = labels[0] == "*";
    if labels
        .iter()
        .skip(usize::from(wildcard))
        .any(|l| l.contains('*'))
    {
        return Err(
            "a wildcard must be the whole first label of the host, as in https://*.example.com/"
                .to_string(),
        );
    }
    // `*.com` would hand the token to every host of a top-level domain: refuse it.
    if wildcard && labels.len() < 3 {
        return Err(
            "a wildcard needs a domain of at least two labels after it, as in https://*.example.com/"
                .to_string(),
        );
    }
    Ok(wildcard)
}

/// Decodes and normalises a URL path, refusing control characters (they could forge a line
/// of git's protocol when echoed).
fn parse_path(raw: &str) -> Result<String, String> {
    let decoded = percent_decode(raw).ok_or("the path has a bad %-escape")?;
    if decoded.chars().any(char::is_control) {
        return Err("the path decodes to a control character".to_string());
    }
    Ok(normalise_path(&decoded))
}

impl UrlPrefix {
    /// Parses a prefix as written in `config.toml`, e.g. `https://github.com/acme/`.
    ///
    /// The error says what is wrong, never echoing a password (userinfo is refused whole).
    pub fn parse(url: &str) -> Result<UrlPrefix, String> {
        let raw = split_url(url)?;
        if raw.userinfo.is_some() {
            return Err(concat!(
                "a user name (user@) is not allowed in a URL prefix; ",
                "set the runtime's username instead"
            )
            .to_string());
        }
        if raw.has_query {
            return Err("a query (?...) is not allowed in a URL prefix".to_string());
        }
        if raw.has_fragment {
            return Err("a fragment (#...) is not allowed in a URL prefix".to_string());
        }
        let (host, wildcard) = parse_host(&raw.scheme, raw.authority)?;
        let host = if wildcard {
            HostPattern::Wildcard(host)
        } else {
            HostPattern::Exact(host)
        };
        Ok(UrlPrefix {
            scheme: raw.scheme,
            host,
            path: parse_path(raw.path)?,
        })
    }

    /// Scheme, host and path all match: the path on a `/` boundary (`acme` matches `acme`
    /// and `acme/app`, never `acme-infra/ops`). A host-wide prefix matches every path, and a
    /// location without a path.
    pub fn matches(&self, loc: &Location) -> bool {
        self.matches_host(loc) && self.matches_path(loc.path.as_deref())
    }

    /// Scheme and host match, whatever the path.
    pub fn matches_host(&self, loc: &Location) -> bool {
        self.scheme == loc.scheme && self.host.matches(&loc.host)
    }

    fn matches_path(&self, path: Option<&str>) -> bool {
        if self.path.is_empty() {
            return true;
        }
        let Some(path) = path else { return false };
        match path.strip_prefix(self.path.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// `https://github.com`, or `https://*.example.com` for a wildcard: the key git's
    /// `credential.<url>.*` settings use for this host.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// Bigger is more specific: an exact host beats a wildcard, then the longer host, then
    /// the longer path (DESIGN.md §6 step 2).
    pub fn specificity(&self) -> (u8, usize, usize) {
        let (exact, len) = match &self.host {
            HostPattern::Exact(h) => (1, h.len()),
            HostPattern::Wildcard(h) => (0, h.len()),
        };
        (exact, len, self.path.len())
    }
}

/// The canonical text, e.g. `https://github.com/acme/`; two prefixes are the same prefix
/// exactly when their canonical texts are equal.
impl fmt::Display for UrlPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.base_url())?;
        if !self.path.is_empty() {
            write!(f, "{}/", percent_encode_path(&self.path))?;
        }
        Ok(())
    }
}

impl HostPattern {
    /// Whether a normalised request host matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(domain) => host.split_once('.').is_some_and(|(label, rest)| {
                rest == domain && !label.is_empty() && !label.contains([':', '[', ']'])
            }),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(domain) => write!(f, "*.{domain}"),
        }
    }
}

/// Lower-cases a host as git sent it and drops the scheme's default port. Lenient: git
/// already parsed the URL, and a host that does not parse simply matches no prefix.
fn normalise_request_host(scheme: &str, host: &str) -> String {
    // What git sends with nearly every request, and what the steps below leave as it is
    // (a plain name: no capitals, port or final dot): spared their allocations.
    if is_plain_ascii_name(host) {
        return host.to_string();
    }
    normalise_any_request_host(scheme, host)
}

/// [`normalise_request_host`] without its shortcut.
fn normalise_any_request_host(scheme: &str, host: &str) -> String {
    let host = host.to_lowercase();
    let Ok((name, port)) = split_port(&host) else {
        return host;
    };
    let Ok(port) = parse_port(port) else {
        return host;
    };
    let name = without_trailing_dot(name);
    let mut normalised = canonical_name(name).unwrap_or_else(|_| name.to_string());
    if let Some(port) = port.filter(|p| Some(*p) != default_port(scheme)) {
        normalised.push_str(&format!(":{port}"));
    }
    normalised
}

impl Location {
    /// From git's request; `None` when git sent no protocol or no host (nothing to route).
    /// git sends the path already %-decoded, so it is not decoded again.
    pub fn from_git(
        protocol: Option<&str>,
        host: Option<&str>,
        path: Option<&str>,
    ) -> Option<Location> {
        let scheme = protocol.filter(|p| !p.is_empty())?.to_ascii_lowercase();
        let host = host.filter(|h| !h.is_empty())?;
        let path = path.map(normalise_path).filter(|p| !p.is_empty());
        Some(Location {
            host: normalise_request_host(&scheme, host),
            scheme,
            path,
        })
    }

    /// Parses a URL as a person types it (`helperctl which URL`). A `user@` is accepted and
    /// ignored; see [`Location::parse_url_with_user`] to get it.
    pub fn parse_url(url: &str) -> Result<Location, String> {
        Self::parse_url_with_user(url).map(|(loc, _)| loc)
    }

    /// Like [`Location::parse_url`], also returning the %-decoded user name of a `user@` or
    /// `user:password@` (the password is dropped, never returned). A query or fragment is
    /// ignored: git never sends one to a credential helper.
    pub fn parse_url_with_user(url: &str) -> Result<(Location, Option<String>), String> {
        let raw = split_url(url)?;
        let user = match raw.userinfo {
            Some(info) => {
                let name = info.split_once(':').map_or(info, |(u, _)| u);
                let name = percent_decode(name).ok_or("the user name has a bad %-escape")?;
                if name.chars().any(char::is_control) {
                    return Err("the user name decodes to a control character".to_string());
                }
                Some(name)
            }
            None => None,
        };
        let (host, wildcard) = parse_host(&raw.scheme, raw.authority)?;
        if wildcard {
            return Err("a request URL cannot have a wildcard host".to_string());
        }
        let path = parse_path(raw.path)?;
        let loc = Location {
            scheme: raw.scheme,
            host,
            path: (!path.is_empty()).then_some(path),
        };
        Ok((loc, user))
    }

    /// `https://github.com`: the URL git matches `credential.<url>.*` settings against when
    /// it sends no path.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.base_url())?;
        if let Some(path) = &self.path {
            f.write_str(&percent_encode_path(path))?;
        }
        Ok(())
    }
}

/// Builders for the tests here and in `crate::runtime`, which match locations too.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Location, UrlPrefix};

    /// protocol, host and path, as git sends them.
    pub type GitRequest<'a> = (&'a str, &'a str, Option<&'a str>);

    pub fn git(proto: &str, host: &str, path: Option<&str>) -> Location {
        Location::from_git(Some(proto), Some(host), path).expect("protocol and host are given")
    }

    pub fn prefix(url: &str) -> UrlPrefix {
        UrlPrefix::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{git, prefix, GitRequest};
    use super::*;

    #[test]
    fn the_request_host_shortcut_agrees_with_the_full_steps() {
        let hosts = [
            "github.com",
            "git.example.org",
            "a-b_c.d9",
            "localhost",
            "GitHub.com",
            "github.com:443",
            "github.com:8443",
            "github.com.",
            "127.0.0.1",
            "0x7f.1",
            "xn--bcher-kva.example",
            "bücher.example",
            "[::1]:8080",
            "host.1",
            "a..b",
        ];
        for host in hosts {
            for scheme in ["https", "http", "ssh"] {
                assert_eq!(
                    normalise_request_host(scheme, host),
                    normalise_any_request_host(scheme, host),
                    "{scheme}://{host}"
                );
            }
        }
    }

    #[test]
    fn prefix_matching_table() {
        #[rustfmt::skip]
        let cases: &[(&str, GitRequest<'_>, bool)] = &[
            // scheme
            ("https://github.com/acme/", ("http", "github.com", Some("acme/app.git")), false),
            ("https://github.com/acme/", ("HTTPS", "github.com", Some("acme/app.git")), true),
            // host case, on both sides
            ("https://github.com/acme/", ("https", "GitHub.COM", Some("acme/app")), true),
            ("HTTPS://GitHub.Com/acme", ("https", "github.com", Some("acme")), true),
            // default ports are dropped on both sides
            ("https://h.example:443/", ("https", "h.example", None), true),
            ("https://h.example/", ("https", "h.example:443", None), true),
            ("http://h.example:80/x", ("http", "h.example", Some("x")), true),
            ("http://h.example:443/", ("http", "h.example", None), false),
            ("http://h.example:443/", ("http", "h.example:443", None), true),
            // other ports are part of the host
            ("https://h.example:8443/", ("https", "h.example", None), false),
            ("https://h.example:8443/", ("https", "h.example:8443", None), true),
            ("https://h.example/", ("https", "h.example:8443", None), false),
            // trailing and leading slashes
            ("https://h.example/acme", ("https", "h.example", Some("acme/app")), true),
            ("https://h.example/acme/", ("https", "h.example", Some("acme")), true),
            ("https://h.example/acme///", ("https", "h.example", Some("acme/")), true),
            ("https://h.example/acme", ("https", "h.example", Some("/acme/app/")), true),
            // .git suffixes
            ("https://h.example/acme/app.git", ("https", "h.example", Some("acme/app")), true),
            ("https://h.example/acme/app", ("https", "h.example", Some("acme/app.git")), true),
            ("https://h.example/acme/app.git/", ("https", "h.example", Some("acme/app.git/")), true),
            ("https://h.example/acme/app", ("https", "h.example", Some("acme/app.github.io")), false),
            ("https://h.example/acme/app", ("https", "h.example", Some("acme/app.git/info")), false),
            ("https://h.example/acme/..git", ("https", "h.example", Some("acme/..git")), true),
            ("https://h.example/acme/..git", ("https", "h.example", Some("acme")), false),
            ("https://h.example/acme/app", ("https", "h.example", Some("acme/app.git.git")), true),
            // percent-encoding in the prefix; git sends paths decoded
            ("https://h.example/%7Euser/", ("https", "h.example", Some("~user/repo.git")), true),
            ("https://h.example/%7euser/", ("https", "h.example", Some("~user")), true),
            ("https://h.example/~user/", ("https", "h.example", Some("~user/x")), true),
            ("https://h.example/my%20org/", ("https", "h.example", Some("my org/x")), true),
            ("https://h.example/my%20org/", ("https", "h.example", Some("my%20org/x")), false),
            // '/' boundaries
            ("https://github.com/acme/", ("https", "github.com", Some("acme")), true),
            ("https://github.com/acme/", ("https", "github.com", Some("acme/app")), true),
            ("https://github.com/acme/", ("https", "github.com", Some("acme-infra/ops")), false),
            ("https://github.com/acme/", ("https", "github.com", Some("acmes")), false),
            ("https://github.com/acme/app", ("https", "github.com", Some("acme/app2")), false),
            ("https://github.com/acme/app", ("https", "github.com", Some("acme")), false),
            // dot segments are resolved, as curl does before the request leaves
            ("https://github.com/acme/", ("https", "github.com", Some("acme/../evil/x")), false),
            ("https://github.com/evil/", ("https", "github.com", Some("acme/../evil/x")), true),
            ("https://github.com/acme/", ("https", "github.com", Some("./acme/app")), true),
            // wildcards: exactly one label
            ("https://*.example.com/", ("https", "a.example.com", None), true),
            ("https://*.example.com/", ("https", "A.Example.COM", None), true),
            ("https://*.example.com/", ("https", "example.com", None), false),
            ("https://*.example.com/", ("https", "a.b.example.com", None), false),
            ("https://*.example.com/", ("https", "aexample.com", None), false),
            ("https://*.example.com/", ("https", "a.example.com:8443", None), false),
            ("https://*.example.com:8443/", ("https", "a.example.com:8443", None), true),
            ("https://*.example.com:8443/", ("https", "a.example.com", None), false),
            ("https://*.example.com:443/", ("https", "a.example.com:443", None), true),
            ("https://*.example.com/team/", ("https", "git.example.com", Some("team/x")), true),
            ("https://*.example.com/team/", ("https", "git.example.com", Some("other/x")), false),
            // host-wide prefix: every path, and no path
            ("https://github.com/", ("https", "github.com", None), true),
            ("https://github.com", ("https", "github.com", Some("any/thing.git")), true),
            ("https://github.com/acme/", ("https", "github.com", None), false),
            ("https://github.com/acme/", ("https", "github.com", Some("")), false),
            // IPv6
            ("http://[::1]:8080/x/", ("http", "[::1]:8080", Some("x/y")), true),
            ("http://[::1]:8080/x/", ("http", "[::1]", Some("x/y")), false),
        ];
        for (url, (proto, host, path), expected) in cases {
            let p = prefix(url);
            let loc = git(proto, host, *path);
            assert_eq!(
                p.matches(&loc),
                *expected,
                "{url} vs {proto}://{host}/{path:?}"
            );
        }
    }

    #[test]
    fn matches_host_ignores_the_path() {
        let p = prefix("https://github.com/acme/");
        assert!(p.matches_host(&git("https", "github.com", None)));
        assert!(p.matches_host(&git("https", "github.com", Some("other/x"))));
        assert!(!p.matches_host(&git("http", "github.com", None)));
        assert!(!p.matches_host(&git("https", "gitlab.com", None)));
    }

    #[test]
    fn malformed_prefixes_say_what_is_wrong() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("github.com/acme", "no scheme"),
            ("htps:/github.com", "no scheme"),
            ("1https://github.com/", "not a valid URL scheme"),
            ("https:///acme", "host is empty"),
            ("https://:8443/", "host is empty"),
            ("https://user@github.com/", "user name (user@) is not allowed"),
            ("https://user:pw@github.com/", "user name (user@) is not allowed"),
            ("https://github.com/acme?tab=1", "query"),
            ("https://github.com/acme#readme", "fragment"),
            ("https://github.com:abc/", "port \"abc\""),
            ("https://github.com:/", "port \"\""),
            ("https://github.com:0/", "port \"0\""),
            ("https://github.com:70000/", "port \"70000\""),
            ("https://github.com:+1/", "port \"+1\""),
            ("https://github.com/%zz/", "bad %-escape"),
            ("https://github.com/%4/", "bad %-escape"),
            ("https://github.com/%+1/", "bad %-escape"),
            ("https://github.com/%FF/", "bad %-escape"),
            ("https://git%zzhub.com/", "bad %-escape"),
            ("https://a.*.example.com/", "wildcard must be the whole first label"),
            ("https://*example.com/", "wildcard must be the whole first label"),
            ("https://a*.example.com/", "wildcard must be the whole first label"),
            ("https://*.*.example.com/", "wildcard must be the whole first label"),
            ("https://*/", "wildcard needs a domain"),
            ("https://*.com/", "wildcard needs a domain"),
            ("https://git hub.com/", "host contains ' '"),
            ("s://\u{2487}", "it maps to \"(20)\""),
            ("https://a\u{2488}b/", "not a valid host name"),
            ("https://github..com/", "empty label"),
            ("https://[::1/", "'[' without ']'"),
            ("https://[zz]/", "not a valid IPv6 address"),
            ("https://github.com/a%0Ab/", "control character"),
        ];
        for (url, expected) in cases {
            let err = UrlPrefix::parse(url).expect_err(url);
            assert!(err.contains(expected), "{url}: {err:?} lacks {expected:?}");
        }
    }

    #[test]
    fn canonical_text_and_base_url() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str)] = &[
            ("HTTPS://GitHub.com:443/acme/app.git/", "https://github.com/acme/app/", "https://github.com"),
            ("https://github.com", "https://github.com/", "https://github.com"),
            ("https://github.com//", "https://github.com/", "https://github.com"),
            ("https://*.Example.com:8443/x", "https://*.example.com:8443/x/", "https://*.example.com:8443"),
            ("https://h.example/my%20org/", "https://h.example/my%20org/", "https://h.example"),
            ("https://h.example/%7Euser", "https://h.example/~user/", "https://h.example"),
            ("https://h.example/100%25/", "https://h.example/100%25/", "https://h.example"),
            ("http://[::1]:8080/x", "http://[::1]:8080/x/", "http://[::1]:8080"),
            ("http://h.example:80/", "http://h.example/", "http://h.example"),
        ];
        for (url, canonical, base) in cases {
            let p = prefix(url);
            assert_eq!(p.to_string(), *canonical, "{url}");
            assert_eq!(p.base_url(), *base, "{url}");
            assert_eq!(
                prefix(canonical),
                p,
                "{canonical} parses back to the same prefix"
            );
        }
    }

    #[test]
    fn prefix_fields() {
        let p = prefix("https://*.Example.com:8443/Team/app.git");
        assert_eq!(p.scheme, "https");
        assert_eq!(p.host, HostPattern::Wildcard("example.com:8443".into()));
        assert_eq!(p.path, "Team/app", "paths keep their case");
    }

    #[test]
    fn specificity_orders_exact_then_host_then_path() {
        let s = |u: &str| prefix(u).specificity();
        assert!(s("https://a.example.com/") > s("https://*.example.com/x/y/z/"));
        assert!(s("https://github.com/acme/") > s("https://github.com/"));
        assert!(s("https://github.com/acme/app/") > s("https://github.com/acme/"));
        assert!(s("https://*.b.example.com/") > s("https://*.example.com/x/"));
        assert_eq!(s("https://github.com/"), (1, "github.com".len(), 0));
    }

    #[test]
    fn locations_from_git() {
        assert_eq!(Location::from_git(None, Some("github.com"), None), None);
        assert_eq!(Location::from_git(Some("https"), None, None), None);
        assert_eq!(Location::from_git(Some("https"), Some(""), None), None);
        let loc = git("HTTPS", "GitHub.com:443", Some("/acme/app.git/"));
        assert_eq!(loc.scheme, "https");
        assert_eq!(loc.host, "github.com");
        assert_eq!(loc.path.as_deref(), Some("acme/app"));
        assert_eq!(git("https", "h.example", Some("/")).path, None);
        // A host git could not make sense of is kept as sent; it matches nothing.
        assert_eq!(git("https", "h.example:x", None).host, "h.example:x");
    }

    #[test]
    fn locations_from_urls() {
        let (loc, user) =
            Location::parse_url_with_user("https://bob:s3cret@GitHub.com/acme/app.git?x=1#top")
                .unwrap();
        assert_eq!(loc, git("https", "github.com", Some("acme/app")));
        assert_eq!(
            user.as_deref(),
            Some("bob"),
            "the password is never returned"
        );
        let (_, user) = Location::parse_url_with_user("https://al%40ice@h.example/").unwrap();
        assert_eq!(user.as_deref(), Some("al@ice"));
        let loc = Location::parse_url("https://github.com").unwrap();
        assert_eq!(loc.path, None);
        assert_eq!(loc.to_string(), "https://github.com/");
        assert!(Location::parse_url("github.com/acme").is_err());
        assert!(Location::parse_url("https://*.example.com/").is_err());
        assert!(Location::parse_url("https://h.example/%zz").is_err());
    }

    /// `protocol` and `host` as git sends them route like the prefix a person wrote,
    /// whatever the case, default port, IDN form or trailing dot of either.
    #[test]
    fn hosts_route_the_same_whatever_their_spelling() {
        #[rustfmt::skip]
        let cases: &[(&str, GitRequest<'_>, bool)] = &[
            ("HTTPS://GitHub.COM:443/", ("https", "github.com", None), true),
            ("https://github.com/", ("HTTPS", "GitHub.COM:443", None), true),
            ("https://github.com./", ("https", "github.com", None), true),
            ("https://github.com/", ("https", "github.com.", None), true),
            ("https://github.com/", ("https", "GITHUB.COM.:443", Some("acme")), true),
            ("https://github.com/", ("https", "github.com..", None), false),
            ("https://bücher.example/", ("https", "xn--bcher-kva.example", None), true),
            ("https://xn--bcher-kva.example/", ("https", "bücher.example", None), true),
            ("https://BÜCHER.example/", ("https", "Bücher.Example.", None), true),
            ("https://b%C3%BCcher.example/", ("https", "bücher.example", None), true),
            ("https://bücher.example/", ("https", "bucher.example", None), false),
            ("https://*.bücher.example/", ("https", "git.xn--bcher-kva.example", None), true),
            ("https://*.example.com./", ("https", "git.example.com.", None), true),
            ("http://[0:0::1]:8080/", ("http", "[::1]:8080", None), true),
        ];
        for (url, (proto, host, path), expected) in cases {
            assert_eq!(
                prefix(url).matches(&git(proto, host, *path)),
                *expected,
                "{url} vs {proto}://{host}"
            );
        }
        assert_eq!(
            prefix("HTTPS://GitHub.COM:443/"),
            prefix("https://github.com/")
        );
        assert_eq!(
            prefix("https://github.com./"),
            prefix("https://github.com/")
        );
        assert_eq!(
            prefix("https://bücher.example/x").to_string(),
            "https://xn--bcher-kva.example/x/"
        );
        assert_eq!(
            Location::parse_url("https://GitHub.com.:443/acme/app.git").unwrap(),
            git("https", "github.com", Some("acme/app"))
        );
        assert_eq!(host_name("github.com:8443"), "github.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
    }

    use proptest::prelude::*;

    /// Ends every generated password (see [`url_with_password`]).
    const MARK: char = '\u{a7}';

    /// Parts of a URL with a password, the password being anything at all.
    fn url_with_password() -> impl Strategy<Value = (String, String, String)> {
        (
            prop::sample::select(vec!["https", "http", "git+https"]),
            "[a-z][a-z0-9._-]{0,8}",
            // Anything, and often what ends a URL's parts early (`12/x`, `p?w#@d`).
            prop_oneof![any::<String>(), "[0-9a-z:/?#@% ]{1,12}"]
                .prop_filter("a password", |p| !p.is_empty()),
            "[a-z0-9-]{1,10}\\.(com|example|org)",
            prop::option::of(1u16..),
            "[a-zA-Z0-9/@.:_~-]{0,20}",
            prop::option::of("[a-z0-9=&@:%]{0,12}"),
        )
            .prop_map(|(scheme, user, password, host, port, path, query)| {
                // A last character nothing else in a URL or a message holds: any text that
                // contains the password is then a leak, never a coincidence (a password
                // `f` is in every message with an "f").
                let password = format!("{password}{MARK}");
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                let before = format!("{scheme}://{user}:");
                let after = format!("@{host}{port}/{path}{query}");
                (
                    format!("{before}{password}{after}"),
                    password,
                    before + &after,
                )
            })
    }

    proptest! {
        /// The fast path for plain ASCII names gives what the URL rules give.
        #[test]
        fn plain_ascii_names_keep_their_url_spelling(name in "[a-z0-9_-]{1,8}(\\.[a-z0-9x_-]{1,8}){0,3}") {
            if is_plain_ascii_name(&name) {
                let by_url = match url::Host::parse(&name) {
                    Ok(url::Host::Domain(d)) => Some(d),
                    _ => None,
                };
                prop_assert_eq!(Some(name.clone()), by_url);
            }
        }

        /// Redaction never leaks the userinfo password of any URL, whatever characters the
        /// password holds, in any form a URL is printed: the two redactors and the parse
        /// errors.
        #[test]
        fn redaction_never_leaks_the_password((url, password, around) in url_with_password()) {
            prop_assert!(!around.contains(MARK));
            let shown = [
                helperd_wire::url::redact_password(&url),
                helperd_wire::url::redact_for_log(&url),
                UrlPrefix::parse(&url).err().unwrap_or_default(),
                Location::parse_url(&url).err().unwrap_or_default(),
            ];
            for text in shown {
                prop_assert!(!text.contains(&password), "{text:?} shows the password of {url:?}");
            }
        }

        /// parse -> display -> parse is stable: the canonical text of a prefix or a
        /// location parses back to the same value, and prints the same again.
            #[test]
        fn parse_display_parse_is_stable(
            scheme in "(?i:https?)",
            host in "([a-zA-Z0-9ü-]{1,8}\\.){0,3}[a-zA-Z0-9ü]{1,8}\\.?",
            port in prop::option::of(1u16..),
            path in "[a-zA-Z0-9 ü~._/%-]{0,24}",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = format!("{scheme}://{host}{port}/{path}");
            if let Ok(p) = UrlPrefix::parse(&url) {
                let text = p.to_string();
                let again = UrlPrefix::parse(&text);
                prop_assert_eq!(again.as_ref(), Ok(&p), "{} -> {}", url, text);
                prop_assert_eq!(again.unwrap().to_string(), text);
            }
            if let Ok(loc) = Location::parse_url(&url) {
                let text = loc.to_string();
                let again = Location::parse_url(&text);
                prop_assert_eq!(again.as_ref(), Ok(&loc), "{} -> {}", url, text);
                prop_assert_eq!(again.unwrap().to_string(), text);
            }
        }
    }
}

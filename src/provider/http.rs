//! The HTTP edge every provider shares: one reqwest client (rustls with *ring*, the OS's
//! trust roots, proxies from the environment, timeouts, a `User-Agent`), the
//! `Authorization` header built here and marked sensitive, answers read with a size cap into
//! zeroized buffers, and transport failures turned into [`ProviderError`]s that name the
//! URL, never a secret.
//!
//! Nothing here logs: a header or body never reaches a log line.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::ProviderError;
use crate::secret::Secret;

/// Time to set up a TCP (and TLS) connection: a host that does not answer in 10 s is down
/// or filtered, and the user is waiting at a prompt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole request, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Every answer helperd reads is a small JSON object; a bigger one is not what was asked.
const MAX_BODY: usize = 1 << 20;

/// `helperd/<version>`: GitHub refuses API requests without a `User-Agent`, and admins can
/// tell helperd's requests apart in their logs.
pub(crate) const USER_AGENT: &str = concat!("helperd/", env!("CARGO_PKG_VERSION"));

/// How a request authenticates.
#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a Secret),
    /// `Authorization: token <token>` (Gitea's documented form).
    Token(&'a Secret),
    /// HTTP Basic with a username and the token as password.
    Basic(&'a str, &'a Secret),
}

/// The shared client.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
}

/// An answer, read whole. The body is zeroized on drop: token endpoints put tokens in it.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Zeroizing<Vec<u8>>,
    /// `host[:port]`, for messages.
    pub host: String,
    /// The URL asked, for messages (URLs never hold secrets: tokens go in headers and bodies).
    pub url: String,
}

impl Http {
    /// `use_env_proxy`: honour `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` (reqwest's
    /// default); the tests turn it off so that their 127.0.0.1 servers are never proxied.
    pub(crate) fn new(use_env_proxy: bool) -> Result<Http, ProviderError> {
        // reqwest is built with `rustls-no-provider` (so that aws-lc-rs, which needs cmake
        // on some targets, is not compiled) and takes the process-wide rustls provider,
        // panicking in `build()` when there is none. Installing *ring* is idempotent: an
        // `Err` means a provider is already installed, which is all that is needed.
        // https://docs.rs/reqwest/0.13/reqwest/tls/index.html (section rustls-no-provider)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // No API helperd calls redirects, and a 307/308 would resend a body holding a
            // token (revocation, refresh, device code) to wherever it points.
            .redirect(reqwest::redirect::Policy::none());
        if !use_env_proxy {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| ProviderError::Setup {
            detail: error_chain(&e),
        })?;
        Ok(Http { client })
    }

    /// A request with `Accept: application/json` and the authentication, not sent yet.
    pub(crate) fn request(
        &self,
        method: Method,
        url: &str,
        auth: Auth<'_>,
    ) -> Result<RequestBuilder, ProviderError> {
        self.request_accepting(method, url, auth, "application/json")
    }

    /// [`request`](Self::request) with another media type in `Accept` (a second
    /// `.header(ACCEPT, ..)` would add a header, not replace this one).
    pub(crate) fn request_accepting(
        &self,
        method: Method,
        url: &str,
        auth: Auth<'_>,
        accept: &'static str,
    ) -> Result<RequestBuilder, ProviderError> {
        let mut builder = self
            .client
            .request(method, url)
            .header(ACCEPT, HeaderValue::from_static(accept));
        if let Some(value) = auth_header(auth)? {
            builder = builder.header(AUTHORIZATION, value);
        }
        Ok(builder)
    }

    /// Sends and reads the whole answer (at most [`MAX_BODY`] bytes); any status is an
    /// `Ok`: what a status means depends on the endpoint.
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Reply, ProviderError> {
        let request = request.build().map_err(|e| ProviderError::Protocol {
            detail: format!("cannot build the request: {}", error_chain(&e)),
        })?;
        let url = request.url().clone();
        let host = host_of(&url);
        let url_text = without_query(&url);
        let unreachable = |e: reqwest::Error| ProviderError::Unreachable {
            url: url_text.clone(),
            detail: error_chain(&e),
        };
        let mut response = self.client.execute(request).await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ProviderError::Protocol {
                    detail: format!("the answer from {url_text} is larger than 1 MiB"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            headers,
            body,
            host,
            url: url_text,
        })
    }
}

impl Reply {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value as text; `None` when absent or not visible ASCII.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON of type `T`. The error names the URL and the position only: a
    /// serde message can quote the offending value, which could be a token.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| ProviderError::Protocol {
            detail: format!(
                "the answer from {} (HTTP {}) is not the JSON expected (line {}, column {})",
                self.url,
                self.status,
                e.line(),
                e.column()
            ),
        })
    }

    /// The token was refused: [`ProviderError::Rejected`] with what the status means.
    pub(crate) fn rejected(&self) -> ProviderError {
        self.rejected_because(status_meaning(self.status))
    }

    pub(crate) fn rejected_because(&self, meaning: impl Into<String>) -> ProviderError {
        ProviderError::Rejected {
            host: self.host.clone(),
            status: self.status,
            meaning: meaning.into(),
        }
    }
}

/// What an HTTP status means for a request made with a token.
pub(crate) fn status_meaning(status: u16) -> &'static str {
    match status {
        401 => "the token is invalid, expired or revoked",
        403 => "the token is not allowed to do this (a missing scope or permission)",
        300..=399 => {
            "a redirect, which helperd does not follow with a token: check the \
                      runtime's URL and api_url (https, the right host)"
        }
        404 => "not found: check the runtime's URL and api_url",
        429 => "too many requests: the host is rate-limiting, try again later",
        500..=599 => "the server failed, try again later",
        _ => "an unexpected status for this request",
    }
}

/// The `Authorization` value, marked sensitive so that hyper never prints it (in `Debug`)
/// and HTTP/2 never indexes it. The intermediate texts are zeroized; the copy inside the
/// `HeaderValue` belongs to reqwest and cannot be.
fn auth_header(auth: Auth<'_>) -> Result<Option<HeaderValue>, ProviderError> {
    let text = match auth {
        Auth::None => return Ok(None),
        Auth::Bearer(token) => prefixed("Bearer ", token.expose()),
        Auth::Token(token) => prefixed("token ", token.expose()),
        Auth::Basic(user, token) => {
            let mut pair =
                Zeroizing::new(String::with_capacity(user.len() + 1 + token.expose().len()));
            pair.push_str(user);
            pair.push(':');
            pair.push_str(token.expose());
            let encoded = base64(pair.as_bytes());
            prefixed("Basic ", &encoded)
        }
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| ProviderError::Protocol {
        detail: "the token (or username) contains characters an HTTP header cannot carry, \
                 such as a line break; check what was pasted"
            .to_string(),
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// `prefix` + `secret` in one allocation, zeroized on drop.
fn prefixed(prefix: &str, secret: &str) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(prefix.len() + secret.len()));
    text.push_str(prefix);
    text.push_str(secret);
    text
}

/// Standard base64 with padding (RFC 4648 §4), for HTTP Basic; zeroized on drop.
fn base64(bytes: &[u8]) -> Zeroizing<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(3) * 4));
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `host` or `host:port` of a URL, for messages.
fn host_of(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("the host");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The URL without its query, for messages.
fn without_query(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// The causes of an error, innermost last, without reqwest's own "error sending request
/// for url (...)" wrapper (the URL is reported separately). The texts come from hyper,
/// rustls and the OS (connection refused, DNS, certificate, timeout): no request content.
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    if e.is_timeout() {
        parts.push("timed out".to_string());
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper-util's "client error (Connect)" only says which step its cause is from.
        let wrapper = text.starts_with("client error (") && cause.source().is_some();
        if !wrapper && !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(failure_kind(e).to_string());
    }
    parts.join(": ")
}

/// What kind of failure a reqwest error with no cause is (its own text names the URL).
fn failure_kind(e: &reqwest::Error) -> &'static str {
    if e.is_builder() {
        "the request could not be built"
    } else if e.is_connect() {
        "the connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read"
    } else {
        "the request failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 §10 test vectors.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()).as_str(), expected);
        }
    }

    #[test]
    fn authorization_is_sensitive_and_well_formed() {
        let token = Secret::new("tok");
        let basic = auth_header(Auth::Basic("me", &token)).unwrap().unwrap();
        assert!(basic.is_sensitive());
        assert_eq!(basic.to_str().unwrap(), "Basic bWU6dG9r");
        let bearer = auth_header(Auth::Bearer(&token)).unwrap().unwrap();
        assert!(bearer.is_sensitive());
        assert_eq!(bearer.to_str().unwrap(), "Bearer tok");
        assert!(format!("{bearer:?}").contains("Sensitive"));
        let gitea = auth_header(Auth::Token(&token)).unwrap().unwrap();
        assert_eq!(gitea.to_str().unwrap(), "token tok");
        assert!(auth_header(Auth::None).unwrap().is_none());
    }

    #[test]
    fn a_token_with_a_line_break_is_refused_without_quoting_it() {
        let token = Secret::new("tok-secret\nX-Evil: 1");
        let err = auth_header(Auth::Bearer(&token)).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("tok-secret"));
    }
}

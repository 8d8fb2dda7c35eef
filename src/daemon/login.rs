//! The login service: `helperctl login` with OAuth, the device flow (GitHub, GitLab) or
//! the browser flow with PKCE on a loopback redirect (Gitea, Forgejo, Codeberg). The
//! host is asked with no lock held; the tokens are stored through the writer.

use helperd_wire::wire::{LoginStep, Reply, Response};

use super::peer::Peer;
use super::replies::{bad_request, provider_error, runtime_named, set_token_error};
use super::state::logins::{BrowserLogin, PendingLogin};
use super::state::State;
use crate::audit::kind;
use crate::config::RuntimeConfig;
use crate::provider::{self, DevicePoll, OAuthAppSource, OAuthTokens, ProviderError, Target};
use crate::secret::Secret;
use crate::token::TokenMeta;

/// How long a browser login may take.
const BROWSER_LOGIN_SECS: u64 = 600;

/// The runtime to log in to, its host, the OAuth app's client id for it (the runtime's
/// own `oauth_client_id`, else the app the administrator registered for the host in the
/// system policy), and the scopes to ask for.
fn oauth_app(
    state: &State,
    name: &str,
) -> Result<(RuntimeConfig, Target, String, Vec<String>), Response> {
    let rt = runtime_named(state, name)?;
    let target = Target::for_runtime(&rt);
    // What git needs there, when the OAuth app names no scopes of its own.
    let defaults = || {
        let scopes = rt.provider.descriptor().oauth.scopes();
        scopes.iter().map(|s| s.to_string()).collect()
    };
    let policy = state.policy.current();
    let (client_id, scopes) = match provider::oauth_app(&rt, policy.as_deref().map(|p| &p.policy)) {
        Some(OAuthAppSource::Runtime(client_id)) => (client_id, defaults()),
        Some(OAuthAppSource::Policy(app)) => (
            app.client_id.clone(),
            app.scopes.clone().unwrap_or_else(defaults),
        ),
        None => return Err(provider_error(provider::oauth_not_registered(&target))),
    };
    Ok((rt.clone(), target, client_id, scopes))
}

fn step(login: LoginStep) -> Response {
    Response::new(Reply::Login {
        login: Box::new(login),
    })
}

/// Unpadded base64url (RFC 4648 §5), as PKCE wants it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn random_base64url(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    base64url(&bytes)
}

/// RFC 7636 §4.2: S256 challenge of a verifier.
fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest;
    base64url(&sha2::Sha256::digest(verifier.as_bytes()))
}

/// Device login, step 1: a device code from the host.
pub async fn device_start(state: &State, runtime_name: &str) -> Response {
    let (rt, target, client_id, scopes) = match oauth_app(state, runtime_name) {
        Ok(app) => app,
        Err(resp) => return resp,
    };
    let client = match state.providers() {
        Ok(c) => c,
        Err(e) => return provider_error(e),
    };
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let code = match client.device_start(&target, &client_id, &scopes).await {
        Ok(c) => c,
        Err(e) => return provider_error(e),
    };
    let answer = LoginStep::Code {
        user_code: code.user_code.clone(),
        verification_uri: code.verification_uri.clone(),
        verification_uri_complete: code.verification_uri_complete.clone(),
        interval: code.interval,
        expires_in: code.expires_in,
    };
    let pending = PendingLogin {
        device_code: code.device_code,
        client_id,
        interval: code.interval,
        deadline: state.now().saturating_add(code.expires_in),
        browser: None,
    };
    state.logins.with(|l| l.insert(rt.name.clone(), pending));
    step(answer)
}

/// Device login, steps 2..n: one poll; stores the token once the user approved.
pub async fn device_poll(state: &State, peer: &Peer, runtime_name: &str) -> Response {
    let rt = match runtime_named(state, runtime_name) {
        Ok(rt) => rt,
        Err(resp) => return resp,
    };
    let pending = state.logins.with(|l| {
        l.get(&rt.name).map(|p| {
            (
                p.device_code.clone(),
                p.client_id.clone(),
                p.interval,
                p.deadline,
            )
        })
    });
    let Some((device_code, client_id, interval, deadline)) = pending else {
        return bad_request(format!(
            "no login in progress for runtime {}; run `helperctl login {}`",
            rt.name, rt.name
        ));
    };
    if state.now() > deadline {
        state.logins.with(|l| l.remove(&rt.name));
        return provider_error(ProviderError::Expired);
    }
    let client = match state.providers() {
        Ok(c) => c,
        Err(e) => return provider_error(e),
    };
    let poll = client
        .device_poll(&Target::for_runtime(&rt), &client_id, &device_code)
        .await;
    match poll {
        Ok(DevicePoll::Pending) => step(LoginStep::Pending { interval }),
        Ok(DevicePoll::SlowDown) => {
            // RFC 8628 §3.5: add 5 seconds to the interval for this and later polls.
            let interval = interval + 5;
            state.logins.with(|l| {
                if let Some(p) = l.get_mut(&rt.name) {
                    p.interval = interval;
                }
            });
            step(LoginStep::Pending { interval })
        }
        Ok(DevicePoll::Done(tokens)) => {
            state.logins.with(|l| l.remove(&rt.name));
            finish(state, peer, &rt, &client_id, tokens, "OAuth device login").await
        }
        Err(e) => {
            state.logins.with(|l| l.remove(&rt.name));
            provider_error(e)
        }
    }
}

/// Browser login, step 1: the page to open, with a fresh PKCE verifier kept here (never
/// sent to helperctl).
pub async fn browser_start(state: &State, runtime_name: &str, redirect_uri: String) -> Response {
    let (rt, target, client_id, _scopes) = match oauth_app(state, runtime_name) {
        Ok(app) => app,
        Err(resp) => return resp,
    };
    if !(redirect_uri.starts_with("http://127.0.0.1:") || redirect_uri.starts_with("http://[::1]:"))
    {
        return bad_request("the redirect must go to the loopback address");
    }
    let client = match state.providers() {
        Ok(c) => c,
        Err(e) => return provider_error(e),
    };
    let verifier = Secret::new(random_base64url(32));
    let login_state = random_base64url(16);
    let challenge = pkce_challenge(verifier.expose());
    let url =
        match client.authorize_url(&target, &client_id, &redirect_uri, &challenge, &login_state) {
            Ok(u) => u,
            Err(e) => return provider_error(e),
        };
    let pending = PendingLogin {
        device_code: Secret::new(""),
        client_id,
        interval: 0,
        deadline: state.now().saturating_add(BROWSER_LOGIN_SECS),
        browser: Some(BrowserLogin {
            verifier,
            state: login_state,
            redirect_uri,
        }),
    };
    state.logins.with(|l| l.insert(rt.name.clone(), pending));
    step(LoginStep::Browser { url })
}

/// Browser login, step 2: the code the host redirected with, exchanged for tokens.
pub async fn browser_finish(
    state: &State,
    peer: &Peer,
    runtime_name: &str,
    code: Secret,
    returned_state: &str,
) -> Response {
    let rt = match runtime_named(state, runtime_name) {
        Ok(rt) => rt,
        Err(resp) => return resp,
    };
    let pending = state.logins.with(|l| l.remove(&rt.name));
    let Some(PendingLogin {
        client_id,
        deadline,
        browser: Some(browser),
        ..
    }) = pending
    else {
        return bad_request(format!(
            "no browser login in progress for runtime {}",
            rt.name
        ));
    };
    // RFC 6749 §10.12: the state ties the redirect to this login (no forged callbacks).
    if returned_state != browser.state {
        return Response::error(
            helperd_wire::wire::ErrorCode::Forbidden,
            "the login's state does not match; nothing was stored",
        );
    }
    if state.now() > deadline {
        return provider_error(ProviderError::Expired);
    }
    let client = match state.providers() {
        Ok(c) => c,
        Err(e) => return provider_error(e),
    };
    let exchanged = client
        .exchange_code(
            &Target::for_runtime(&rt),
            &client_id,
            &code,
            &browser.verifier,
            &browser.redirect_uri,
        )
        .await;
    match exchanged {
        Ok(tokens) => {
            finish(
                state,
                peer,
                &rt,
                &client_id,
                tokens,
                "OAuth browser login (PKCE)",
            )
            .await
        }
        Err(e) => provider_error(e),
    }
}

/// Stores the tokens of a completed login (the access token as the runtime's token, the
/// refresh token beside it), audits it, and answers helperctl.
async fn finish(
    state: &State,
    peer: &Peer,
    rt: &RuntimeConfig,
    client_id: &str,
    tokens: OAuthTokens,
    how: &str,
) -> Response {
    let now = state.now();
    let name = Some(format!("OAuth login {}", crate::timefmt::format_date(now)));
    let mut token = TokenMeta::new(name, now, tokens.expires_at);
    token.scopes = tokens.scopes;
    token.kind = Some("OAuth token".into());
    token.oauth_client_id = Some(client_id.to_string());
    token.refresh_expires_at = tokens.refresh_expires_at;
    token.checked_at = Some(now);
    let stored = state
        .new_token(
            None,
            &rt.name,
            token,
            tokens.access_token,
            tokens.refresh_token,
        )
        .await;
    if let Err(e) = stored {
        return set_token_error(e);
    }
    state
        .audit(peer.event(kind::TOKEN_SET).runtime(&rt.name).reason(how))
        .await;
    step(LoginStep::Done {
        message: format!("logged in: runtime {} has a new OAuth token", rt.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}

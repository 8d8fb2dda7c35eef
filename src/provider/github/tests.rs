//! GitHub against a fake server answering what docs.github.com documents.

use serde_json::json;

use super::parse_expiration;
use crate::provider::fake::{target, FakeReply, FakeServer};
use crate::provider::Provider;
use crate::provider::{DevicePoll, ProviderClient, ProviderError, RevokeOutcome, Target};
use crate::secret::Secret;
use crate::timefmt::unix_now;

const CLASSIC: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";

async fn server() -> (FakeServer, Target) {
    let server = FakeServer::start().await;
    let target = target(Provider::GitHub, &server, "/api/v3");
    (server, target)
}

fn user(login: &str) -> FakeReply {
    FakeReply::json(200, json!({"login": login, "id": 1}))
}

#[test]
fn expiration_header_forms() {
    // 2026-04-01T12:00:00Z
    assert_eq!(
        parse_expiration("2026-04-01 12:00:00 UTC"),
        Some(1_775_044_800)
    );
    assert_eq!(
        parse_expiration("2026-04-01 12:00:00 +0200"),
        Some(1_775_037_600)
    );
    assert_eq!(
        parse_expiration("2026-04-01 12:00:00 -0100"),
        Some(1_775_048_400)
    );
    assert_eq!(
        parse_expiration("2026-04-01 12:00:00 +02:00"),
        Some(1_775_037_600)
    );
    assert_eq!(parse_expiration("2026-04-01"), None);
    assert_eq!(parse_expiration("2026-04-01 12:00:00 CEST"), None);
    assert_eq!(parse_expiration("2026-04-01 12:00:00 +2"), None);
}

#[tokio::test]
async fn classic_token_scopes_and_expiry_are_learned() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v3/user",
        vec![user("octocat")
            .header("X-OAuth-Scopes", "repo, gist, read:org")
            .header(
                "GitHub-Authentication-Token-Expiration",
                "2026-04-01 12:00:00 UTC",
            )],
    );
    let info = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new(CLASSIC))
        .await
        .unwrap();
    assert_eq!(info.login.as_deref(), Some("octocat"));
    assert_eq!(
        info.scopes,
        Some(vec!["repo".into(), "gist".into(), "read:org".into()])
    );
    assert_eq!(info.expires, Some(1_775_044_800));
    assert_eq!(info.kind.as_deref(), Some("classic PAT"));
    assert!(info.missing_git_scopes.is_empty());

    let request = &server.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {CLASSIC}").as_str())
    );
    assert_eq!(
        request.header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(request.header("x-github-api-version"), Some("2022-11-28"));
    let agent = request.header("user-agent").unwrap();
    assert_eq!(agent, concat!("helperd/", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn numeric_offset_expiry_is_learned() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v3/user",
        vec![user("octocat").header("X-OAuth-Scopes", "repo").header(
            "GitHub-Authentication-Token-Expiration",
            "2026-04-01 12:00:00 +0200",
        )],
    );
    let info = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new(CLASSIC))
        .await
        .unwrap();
    assert_eq!(info.expires, Some(1_775_037_600));
}

#[tokio::test]
async fn no_expiry_header_means_no_expiry() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v3/user",
        vec![user("octocat").header("X-OAuth-Scopes", "repo")],
    );
    let info = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new(CLASSIC))
        .await
        .unwrap();
    assert_eq!(info.expires, None);
    assert!(info.notes.is_empty());
}

#[tokio::test]
async fn an_unreadable_expiry_is_a_note_not_a_guess() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v3/user",
        vec![user("octocat")
            .header("X-OAuth-Scopes", "repo")
            .header("GitHub-Authentication-Token-Expiration", "next tuesday")],
    );
    let info = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new(CLASSIC))
        .await
        .unwrap();
    assert_eq!(info.expires, None);
    assert!(info.notes[0].contains("next tuesday"), "{:?}", info.notes);
}

#[tokio::test]
async fn missing_repo_scope_is_reported() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v3/user",
        vec![user("octocat").header("X-OAuth-Scopes", "public_repo, gist")],
    );
    let info = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new(CLASSIC))
        .await
        .unwrap();
    assert_eq!(info.missing_git_scopes, ["repo"]);
    assert!(info.notes.iter().any(|n| n.contains("public_repo")));
}

#[tokio::test]
async fn a_401_is_a_rejection() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v3/user",
        vec![FakeReply::json(401, json!({"message": "Bad credentials"}))],
    );
    let err = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new(CLASSIC))
        .await
        .unwrap_err();
    match &err {
        ProviderError::Rejected {
            status, meaning, ..
        } => {
            assert_eq!(*status, 401);
            assert!(meaning.contains("invalid, expired or revoked"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("HTTP 401"));
}

#[tokio::test]
async fn fine_grained_tokens_report_no_scopes() {
    let (server, target) = server().await;
    // GitHub sends an empty X-OAuth-Scopes for fine-grained tokens; it means nothing.
    server.route(
        "GET",
        "/api/v3/user",
        vec![user("octocat").header("X-OAuth-Scopes", "")],
    );
    let info = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new("github_pat_11ABCDEF_xyz"))
        .await
        .unwrap();
    assert_eq!(info.kind.as_deref(), Some("fine-grained PAT"));
    assert_eq!(info.scopes, None);
    assert!(info.missing_git_scopes.is_empty());
    assert!(info.notes[0].contains("cannot report their permissions"));
}

#[tokio::test]
async fn an_installation_token_works_without_a_user() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v3/user",
        vec![FakeReply::json(
            403,
            json!({"message": "Resource not accessible by integration"}),
        )
        .header(
            "GitHub-Authentication-Token-Expiration",
            "2026-04-01 12:00:00 UTC",
        )],
    );
    let info = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new("ghs_installation"))
        .await
        .unwrap();
    assert_eq!(info.kind.as_deref(), Some("installation token"));
    assert_eq!(info.login, None);
    assert_eq!(info.expires, Some(1_775_044_800));
}

#[tokio::test]
async fn device_flow_pending_then_slow_down_then_success() {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/login/device/code",
        vec![FakeReply::json(
            200,
            json!({
                "device_code": "3584d83530557fdd1f46af8289938c8ef79f9dc5",
                "user_code": "WDJB-MJHT",
                "verification_uri": "https://github.com/login/device",
                "expires_in": 900,
                "interval": 5
            }),
        )],
    );
    server.route(
        "POST",
        "/login/oauth/access_token",
        vec![
            // GitHub answers these with HTTP 200 and an error field.
            FakeReply::json(200, json!({"error": "authorization_pending"})),
            FakeReply::json(200, json!({"error": "slow_down", "interval": 10})),
            FakeReply::json(
                200,
                json!({"access_token": "gho_new", "token_type": "bearer", "scope": "repo,gist"}),
            ),
        ],
    );
    let client = ProviderClient::unproxied();
    let code = client
        .device_start(&target, "Iv1.client", &["repo", "gist"])
        .await
        .unwrap();
    assert_eq!(code.user_code, "WDJB-MJHT");
    assert_eq!(code.verification_uri, "https://github.com/login/device");
    assert_eq!((code.interval, code.expires_in), (5, 900));
    assert_eq!(code.verification_uri_complete, None);
    let start = &server.requests()[0];
    assert_eq!(start.body, "client_id=Iv1.client&scope=repo+gist");
    assert_eq!(start.header("accept"), Some("application/json"));

    let poll = || client.device_poll(&target, "Iv1.client", &code.device_code);
    assert_eq!(poll().await.unwrap(), DevicePoll::Pending);
    assert_eq!(poll().await.unwrap(), DevicePoll::SlowDown);
    let DevicePoll::Done(tokens) = poll().await.unwrap() else {
        panic!("expected tokens")
    };
    assert_eq!(tokens.access_token.expose(), "gho_new");
    assert_eq!(tokens.scopes, ["repo", "gist"]);
    assert_eq!(tokens.refresh_token, None);
    assert_eq!(tokens.expires_at, None);
    assert_eq!(server.hits("POST", "/login/oauth/access_token"), 3);
    let last = server.requests().pop().unwrap();
    assert!(last
        .body
        .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"));
    assert!(last
        .body
        .contains("device_code=3584d83530557fdd1f46af8289938c8ef79f9dc5"));
    assert_eq!(last.header("authorization"), None);
}

async fn poll_error(error: &str) -> ProviderError {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/login/oauth/access_token",
        vec![FakeReply::json(200, json!({"error": error}))],
    );
    ProviderClient::unproxied()
        .device_poll(&target, "Iv1.client", &Secret::new("device"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn device_flow_expired_token() {
    assert_eq!(poll_error("expired_token").await, ProviderError::Expired);
}

#[tokio::test]
async fn device_flow_access_denied() {
    assert_eq!(
        poll_error("access_denied").await,
        ProviderError::AccessDenied
    );
}

#[tokio::test]
async fn device_flow_incorrect_client_is_not_registered() {
    let err = poll_error("incorrect_client_credentials").await;
    assert!(
        matches!(err, ProviderError::OAuthNotRegistered { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn device_flow_disabled_on_start() {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/login/device/code",
        vec![FakeReply::json(
            400,
            json!({"error": "device_flow_disabled"}),
        )],
    );
    let err = ProviderClient::unproxied()
        .device_start(&target, "Iv1.client", &["repo"])
        .await
        .unwrap_err();
    assert_eq!(err, ProviderError::DeviceFlowDisabled);
}

#[tokio::test]
async fn an_unknown_client_id_is_not_registered() {
    let (server, target) = server().await;
    // What GitHub really answers for an unknown client id (github/app#1320).
    server.route(
        "POST",
        "/login/device/code",
        vec![FakeReply::json(
            404,
            serde_json::json!({"error": "Not Found"}),
        )],
    );
    let err = ProviderClient::unproxied()
        .device_start(&target, "nobody", &["repo"])
        .await
        .unwrap_err();
    let host = server.url().trim_start_matches("http://").to_string();
    assert_eq!(err, ProviderError::OAuthNotRegistered { host });
}

#[tokio::test]
async fn refresh_returns_new_tokens_and_expiries() {
    let (server, target) = server().await;
    // The documented answer, with expires_in as the string GitHub's first example used.
    server.route(
        "POST",
        "/login/oauth/access_token",
        vec![FakeReply::json(
            200,
            json!({
                "access_token": "ghu_new",
                "expires_in": "28800",
                "refresh_token": "ghr_new",
                "refresh_token_expires_in": 15811200,
                "scope": "",
                "token_type": "bearer"
            }),
        )],
    );
    let before = unix_now();
    let tokens = ProviderClient::unproxied()
        .refresh(&target, "Iv1.client", &Secret::new("ghr_old"))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "ghu_new");
    assert_eq!(tokens.refresh_token.as_ref().unwrap().expose(), "ghr_new");
    let expires = tokens.expires_at.unwrap();
    assert!((before + 28800..=unix_now() + 28800).contains(&expires));
    assert!(tokens.refresh_expires_at.unwrap() >= before + 15811200);
    assert!(tokens.scopes.is_empty());
    let body = &server.requests()[0].body;
    assert!(body.contains("grant_type=refresh_token"));
    assert!(body.contains("refresh_token=ghr_old"));
    assert!(body.contains("client_id=Iv1.client"));
}

#[tokio::test]
async fn a_bad_refresh_token_is_refused() {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/login/oauth/access_token",
        vec![FakeReply::json(200, json!({"error": "bad_refresh_token"}))],
    );
    let err = ProviderClient::unproxied()
        .refresh(&target, "Iv1.client", &Secret::new("ghr_old"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::RefreshRejected { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn revoke_posts_the_token_unauthenticated() {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/api/v3/credentials/revoke",
        vec![FakeReply::empty(202)],
    );
    let outcome = ProviderClient::unproxied()
        .revoke(&target, &Secret::new(CLASSIC))
        .await
        .unwrap();
    assert_eq!(outcome, RevokeOutcome::Revoked);
    let request = &server.requests()[0];
    assert_eq!(request.header("authorization"), None);
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body, json!({"credentials": [CLASSIC]}));
}

#[tokio::test]
async fn revoke_an_installation_token_with_itself() {
    let (server, target) = server().await;
    server.route(
        "DELETE",
        "/api/v3/installation/token",
        vec![FakeReply::empty(204)],
    );
    let outcome = ProviderClient::unproxied()
        .revoke(&target, &Secret::new("ghs_inst"))
        .await
        .unwrap();
    assert_eq!(outcome, RevokeOutcome::Revoked);
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer ghs_inst")
    );
}

#[tokio::test]
async fn revoke_is_not_supported_without_the_endpoint() {
    let (server, target) = server().await;
    // No route: the fake answers 404, as an older GitHub Enterprise Server would.
    let outcome = ProviderClient::unproxied()
        .revoke(&target, &Secret::new(CLASSIC))
        .await
        .unwrap();
    let RevokeOutcome::NotSupported { token_page, .. } = outcome else {
        panic!("expected NotSupported")
    };
    assert_eq!(
        token_page,
        Some(format!("{}/settings/tokens", server.url()))
    );
}

#[tokio::test]
async fn revoke_refuses_an_old_format_token_without_asking() {
    let (server, target) = server().await;
    let outcome = ProviderClient::unproxied()
        .revoke(
            &target,
            &Secret::new("0123456789abcdef0123456789abcdef01234567"),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, RevokeOutcome::NotSupported { .. }));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_token() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v3/user",
        vec![FakeReply::empty(307).header("Location", "http://127.0.0.1:9/elsewhere")],
    );
    let err = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new(CLASSIC))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 307, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

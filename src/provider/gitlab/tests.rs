//! GitLab against a fake server answering what docs.gitlab.com documents.

use serde_json::json;

use crate::provider::fake::{target, FakeReply, FakeServer};
use crate::provider::Provider;
use crate::provider::{
    DevicePoll, ProviderClient, ProviderError, RevokeOutcome, Target, TokenInfo,
};
use crate::secret::Secret;
use crate::timefmt::unix_now;

const PAT: &str = "glpat-0123456789abcdefghij";
const SELF: &str = "/api/v4/personal_access_tokens/self";

async fn server() -> (FakeServer, Target) {
    let server = FakeServer::start().await;
    let target = target(Provider::GitLab, &server, "/api/v4");
    (server, target)
}

/// The documented answer of `GET /personal_access_tokens/self`.
fn self_token(scopes: &[&str], expires_at: Option<&str>) -> FakeReply {
    FakeReply::json(
        200,
        json!({
            "id": 42,
            "name": "helperd",
            "revoked": false,
            "created_at": "2025-10-01T10:00:00.000Z",
            "scopes": scopes,
            "user_id": 3,
            "last_used_at": null,
            "active": true,
            "expires_at": expires_at
        }),
    )
}

async fn introspect(target: &Target) -> Result<TokenInfo, ProviderError> {
    ProviderClient::unproxied()
        .introspect(target, None, &Secret::new(PAT))
        .await
}

#[tokio::test]
async fn scopes_and_expiry_are_learned() {
    let (server, target) = server().await;
    server.route(
        "GET",
        SELF,
        vec![self_token(
            &["read_repository", "write_repository"],
            Some("2026-04-01"),
        )],
    );
    let info = introspect(&target).await.unwrap();
    assert_eq!(
        info.scopes,
        Some(vec!["read_repository".into(), "write_repository".into()])
    );
    // A date: 00:00 UTC that day.
    assert_eq!(info.expires, Some(1_775_001_600));
    assert!(info.missing_git_scopes.is_empty());
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {PAT}").as_str())
    );
}

#[tokio::test]
async fn the_api_scope_is_enough_for_git() {
    let (server, target) = server().await;
    server.route("GET", SELF, vec![self_token(&["api"], Some("2026-04-01"))]);
    let info = introspect(&target).await.unwrap();
    assert!(info.missing_git_scopes.is_empty());
}

#[tokio::test]
async fn a_read_only_token_lacks_write_repository() {
    let (server, target) = server().await;
    server.route(
        "GET",
        SELF,
        vec![self_token(
            &["read_api", "read_repository"],
            Some("2026-04-01"),
        )],
    );
    let info = introspect(&target).await.unwrap();
    assert_eq!(info.missing_git_scopes, ["write_repository"]);
    assert!(info.notes.iter().any(|n| n.contains("fetch but not push")));
}

#[tokio::test]
async fn no_expiry() {
    let (server, target) = server().await;
    server.route("GET", SELF, vec![self_token(&["write_repository"], None)]);
    let info = introspect(&target).await.unwrap();
    assert_eq!(info.expires, None);
    assert!(info.notes.iter().any(|n| n.contains("does not expire")));
}

#[tokio::test]
async fn a_401_is_a_rejection() {
    let (server, target) = server().await;
    server.route(
        "GET",
        SELF,
        vec![FakeReply::json(401, json!({"message": "401 Unauthorized"}))],
    );
    let err = introspect(&target).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_revoked_token_is_a_rejection() {
    let (server, target) = server().await;
    server.route(
        "GET",
        SELF,
        vec![FakeReply::json(
            200,
            json!({"scopes": ["api"], "active": false, "revoked": true, "expires_at": null}),
        )],
    );
    let err = introspect(&target).await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
}

#[tokio::test]
async fn an_oauth_token_is_described_by_token_info() {
    let (server, target) = server().await;
    // The self endpoint is for access tokens: an OAuth token gets 404 there.
    server.route(
        "GET",
        SELF,
        vec![FakeReply::json(404, json!({"message": "404 Not Found"}))],
    );
    server.route(
        "GET",
        "/oauth/token/info",
        vec![FakeReply::json(
            200,
            json!({
                "resource_owner_id": 3,
                "scope": ["api"],
                "expires_in": 7200,
                "application": {"uid": "abc"},
                "created_at": 1_775_000_000
            }),
        )],
    );
    let before = unix_now();
    let info = introspect(&target).await.unwrap();
    assert_eq!(info.kind.as_deref(), Some("OAuth token"));
    assert_eq!(info.scopes, Some(vec!["api".to_string()]));
    assert!(info.expires.unwrap() >= before + 7200);
}

#[tokio::test]
async fn device_flow_pending_then_slow_down_then_success() {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/oauth/authorize_device",
        vec![FakeReply::json(
            200,
            json!({
                "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
                "user_code": "0A44L90H",
                "verification_uri": "https://gitlab.example.com/oauth/device",
                "verification_uri_complete": "https://gitlab.example.com/oauth/device?user_code=0A44L90H",
                "expires_in": 300,
                "interval": 5
            }),
        )],
    );
    server.route(
        "POST",
        "/oauth/token",
        vec![
            // RFC 8628 §3.5: errors are HTTP 400.
            FakeReply::json(
                400,
                json!({"error": "authorization_pending", "error_description": "..."}),
            ),
            FakeReply::json(400, json!({"error": "slow_down"})),
            FakeReply::json(
                200,
                json!({
                    "access_token": "oauth-access",
                    "token_type": "Bearer",
                    "expires_in": 7200,
                    "refresh_token": "oauth-refresh",
                    "scope": "read_repository write_repository",
                    "created_at": 1_775_000_000
                }),
            ),
        ],
    );
    let client = ProviderClient::unproxied();
    let code = client
        .device_start(&target, "app-id", &["read_repository", "write_repository"])
        .await
        .unwrap();
    assert_eq!(code.user_code, "0A44L90H");
    assert_eq!(
        code.verification_uri_complete.as_deref(),
        Some("https://gitlab.example.com/oauth/device?user_code=0A44L90H")
    );
    assert_eq!((code.interval, code.expires_in), (5, 300));

    let poll = || client.device_poll(&target, "app-id", &code.device_code);
    assert_eq!(poll().await.unwrap(), DevicePoll::Pending);
    assert_eq!(poll().await.unwrap(), DevicePoll::SlowDown);
    let before = unix_now();
    let DevicePoll::Done(tokens) = poll().await.unwrap() else {
        panic!("expected tokens")
    };
    assert_eq!(tokens.access_token.expose(), "oauth-access");
    assert_eq!(tokens.refresh_token.unwrap().expose(), "oauth-refresh");
    assert!(tokens.expires_at.unwrap() >= before + 7200);
    assert_eq!(tokens.scopes, ["read_repository", "write_repository"]);
    assert_eq!(server.hits("POST", "/oauth/token"), 3);
}

async fn poll_error(error: &str) -> ProviderError {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/oauth/token",
        vec![FakeReply::json(400, json!({"error": error}))],
    );
    ProviderClient::unproxied()
        .device_poll(&target, "app-id", &Secret::new("device"))
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
async fn an_unknown_application_is_not_registered() {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/oauth/authorize_device",
        vec![FakeReply::json(401, json!({"error": "invalid_client"}))],
    );
    let err = ProviderClient::unproxied()
        .device_start(&target, "nobody", &["api"])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::OAuthNotRegistered { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_gitlab_without_device_flow() {
    let (server, target) = server().await;
    // No route: 404, as a GitLab older than 17.1 answers.
    let err = ProviderClient::unproxied()
        .device_start(&target, "app-id", &["api"])
        .await
        .unwrap_err();
    assert_eq!(err, ProviderError::DeviceFlowDisabled);
    assert_eq!(server.hits("POST", "/oauth/authorize_device"), 0);
}

#[tokio::test]
async fn refresh_replaces_the_refresh_token() {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/oauth/token",
        vec![FakeReply::json(
            200,
            json!({
                "access_token": "access-2",
                "token_type": "Bearer",
                "expires_in": 7200,
                "refresh_token": "refresh-2",
                "scope": "api",
                "created_at": 1_775_000_000
            }),
        )],
    );
    let tokens = ProviderClient::unproxied()
        .refresh(&target, "app-id", &Secret::new("refresh-1"))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "access-2");
    assert_eq!(tokens.refresh_token.unwrap().expose(), "refresh-2");
    let body = &server.requests()[0].body;
    assert!(body.contains("grant_type=refresh_token") && body.contains("refresh_token=refresh-1"));
}

#[tokio::test]
async fn a_spent_refresh_token_is_refused() {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/oauth/token",
        vec![FakeReply::json(400, json!({"error": "invalid_grant"}))],
    );
    let err = ProviderClient::unproxied()
        .refresh(&target, "app-id", &Secret::new("refresh-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::RefreshRejected { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn revoke_deletes_self() {
    let (server, target) = server().await;
    server.route("DELETE", SELF, vec![FakeReply::empty(204)]);
    let outcome = ProviderClient::unproxied()
        .revoke(&target, &Secret::new(PAT))
        .await
        .unwrap();
    assert_eq!(outcome, RevokeOutcome::Revoked);
    assert_eq!(server.hits("DELETE", SELF), 1);
}

#[tokio::test]
async fn revoke_with_a_rejected_token() {
    let (server, target) = server().await;
    server.route(
        "DELETE",
        SELF,
        vec![FakeReply::json(401, json!({"message": "401 Unauthorized"}))],
    );
    let err = ProviderClient::unproxied()
        .revoke(&target, &Secret::new(PAT))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { status: 401, .. }));
}

#[tokio::test]
async fn revoke_refused_for_the_token_says_where_to_do_it() {
    let (server, target) = server().await;
    server.route(
        "DELETE",
        SELF,
        vec![FakeReply::json(403, json!({"message": "403 Forbidden"}))],
    );
    let outcome = ProviderClient::unproxied()
        .revoke(&target, &Secret::new(PAT))
        .await
        .unwrap();
    let RevokeOutcome::NotSupported { token_page, .. } = outcome else {
        panic!("expected NotSupported")
    };
    assert_eq!(
        token_page,
        Some(format!(
            "{}/-/user_settings/personal_access_tokens",
            server.url()
        ))
    );
}

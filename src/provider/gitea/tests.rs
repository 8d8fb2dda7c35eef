//! Gitea and Forgejo against a fake server answering what docs.gitea.com documents.

use serde_json::json;

use crate::provider::fake::{target, FakeReply, FakeServer};
use crate::provider::Provider;
use crate::provider::{ProviderClient, ProviderError, RevokeOutcome, Target, TokenInfo};
use crate::secret::Secret;

const TOKEN: &str = "9fcb1158165773dd010fca5f0cf7174316c3e37d";

async fn server() -> (FakeServer, Target) {
    let server = FakeServer::start().await;
    let target = target(Provider::Gitea, &server, "/api/v1");
    (server, target)
}

/// Gitea's answer to a scoped token missing `scope`.
fn missing(scope: &str) -> FakeReply {
    FakeReply::json(
        403,
        json!({
            "message": format!("token does not have at least one of required scope(s): [{scope}]"),
            "url": "https://codeberg.org/api/swagger"
        }),
    )
}

async fn introspect(target: &Target) -> Result<TokenInfo, ProviderError> {
    ProviderClient::unproxied()
        .introspect(target, None, &Secret::new(TOKEN))
        .await
}

#[tokio::test]
async fn a_working_token_and_what_gitea_cannot_say() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v1/user",
        vec![FakeReply::json(
            200,
            json!({"id": 1, "login": "me", "email": "me@example.com"}),
        )],
    );
    server.route(
        "GET",
        "/api/v1/repos/search",
        vec![FakeReply::json(200, json!({"ok": true, "data": []}))],
    );
    let info = introspect(&target).await.unwrap();
    assert_eq!(info.login.as_deref(), Some("me"));
    assert_eq!(info.scopes, None);
    assert_eq!(info.expires, None);
    assert!(info.missing_git_scopes.is_empty());
    assert!(info.notes[0].contains("do not report"));
    let requests = server.requests();
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("token {TOKEN}").as_str())
    );
    assert_eq!(requests[1].method, "GET");
    assert_eq!(requests[1].target, "/api/v1/repos/search?limit=1");
}

#[tokio::test]
async fn a_missing_repository_scope_is_named() {
    let (server, target) = server().await;
    server.route("GET", "/api/v1/user", vec![missing("read:user")]);
    server.route(
        "GET",
        "/api/v1/repos/search",
        vec![missing("read:repository")],
    );
    let info = introspect(&target).await.unwrap();
    assert_eq!(info.login, None);
    assert_eq!(info.missing_git_scopes, ["read:repository"]);
    assert!(info.notes.iter().any(|n| n.contains("read:user")));
}

#[tokio::test]
async fn a_401_is_a_rejection() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v1/user",
        vec![FakeReply::json(
            401,
            json!({"message": "user does not exist [uid: 0, name: ]"}),
        )],
    );
    let err = introspect(&target).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(server.hits("GET", "/api/v1/repos/search"), 0);
}

#[tokio::test]
async fn a_403_without_a_scope_name_is_a_rejection() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/api/v1/user",
        vec![FakeReply::json(403, json!({"message": "user is blocked"}))],
    );
    let err = introspect(&target).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 403, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn revoke_explains_the_password_rule() {
    let (server, target) = server().await;
    let outcome = ProviderClient::unproxied()
        .revoke(&target, &Secret::new(TOKEN))
        .await
        .unwrap();
    let RevokeOutcome::NotSupported { reason, token_page } = outcome else {
        panic!("expected NotSupported")
    };
    assert!(reason.contains("password"));
    assert_eq!(
        token_page,
        Some(format!("{}/user/settings/applications", server.url()))
    );
}

#[tokio::test]
async fn no_device_flow_but_pkce() {
    let (_server, target) = server().await;
    let err = ProviderClient::unproxied()
        .device_start(&target, "id", &["write:repository"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PKCE"), "{err}");
}

#[tokio::test]
async fn refresh_at_the_gitea_token_endpoint() {
    let (server, target) = server().await;
    server.route(
        "POST",
        "/login/oauth/access_token",
        vec![FakeReply::json(
            200,
            json!({"access_token": "a2", "token_type": "bearer", "expires_in": 3600, "refresh_token": "r2"}),
        )],
    );
    let tokens = ProviderClient::unproxied()
        .refresh(&target, "client", &Secret::new("r1"))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "a2");
    assert_eq!(tokens.refresh_token.unwrap().expose(), "r2");
}

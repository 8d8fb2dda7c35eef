//! Bitbucket Cloud against a fake server answering what Atlassian documents.

use serde_json::json;

use crate::provider::fake::{target, FakeReply, FakeServer};
use crate::provider::Provider;
use crate::provider::{ProviderClient, ProviderError, RevokeOutcome, Target, TokenInfo};
use crate::secret::Secret;

const EMAIL: &str = "me@example.com";

async fn server() -> (FakeServer, Target) {
    let server = FakeServer::start().await;
    let target = target(Provider::Bitbucket, &server, "/2.0");
    (server, target)
}

fn user() -> FakeReply {
    FakeReply::json(
        200,
        json!({"username": "me", "display_name": "Me", "account_id": "557058:x", "type": "user"}),
    )
}

async fn introspect(target: &Target, email: Option<&str>) -> Result<TokenInfo, ProviderError> {
    ProviderClient::unproxied()
        .introspect(target, email, &Secret::new("ATATT3xFfGF0"))
        .await
}

#[tokio::test]
async fn scopes_are_learned_and_expiry_is_not_reported() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/2.0/user",
        vec![user().header(
            "x-oauth-scopes",
            "read:user:bitbucket, read:repository:bitbucket, write:repository:bitbucket",
        )],
    );
    let info = introspect(&target, Some(EMAIL)).await.unwrap();
    assert_eq!(info.login.as_deref(), Some("me"));
    assert_eq!(info.scopes.as_ref().map(Vec::len), Some(3));
    assert!(info.missing_git_scopes.is_empty());
    assert_eq!(info.expires, None);
    assert!(info.notes[0].contains("does not report when an API token expires"));
    // Basic base64("me@example.com:ATATT3xFfGF0").
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Basic bWVAZXhhbXBsZS5jb206QVRBVFQzeEZmR0Yw")
    );
}

#[tokio::test]
async fn missing_write_scope() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/2.0/user",
        vec![user().header(
            "x-oauth-scopes",
            "read:user:bitbucket, read:repository:bitbucket",
        )],
    );
    let info = introspect(&target, Some(EMAIL)).await.unwrap();
    assert_eq!(info.missing_git_scopes, ["write:repository:bitbucket"]);
}

#[tokio::test]
async fn app_password_style_scopes() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/2.0/user",
        vec![user().header("x-oauth-scopes", "account, repository:write")],
    );
    let info = introspect(&target, Some(EMAIL)).await.unwrap();
    assert!(info.missing_git_scopes.is_empty());
}

#[tokio::test]
async fn a_token_without_the_account_scope_still_works() {
    let (server, target) = server().await;
    server.route(
        "GET",
        "/2.0/user",
        vec![FakeReply::json(
            403,
            json!({"type": "error", "error": {"message": "no scope"}}),
        )
        .header(
            "x-oauth-scopes",
            "read:repository:bitbucket, write:repository:bitbucket",
        )],
    );
    let info = introspect(&target, Some(EMAIL)).await.unwrap();
    assert_eq!(info.login, None);
    assert!(info.missing_git_scopes.is_empty());
    assert!(info.notes.iter().any(|n| n.contains("read:user:bitbucket")));
}

#[tokio::test]
async fn a_401_is_a_rejection() {
    let (server, target) = server().await;
    server.route("GET", "/2.0/user", vec![FakeReply::empty(401)]);
    let err = introspect(&target, Some(EMAIL)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_401_with_a_username_explains_the_email_rule() {
    let (server, target) = server().await;
    server.route("GET", "/2.0/user", vec![FakeReply::empty(401)]);
    let err = introspect(&target, Some("me")).await.unwrap_err();
    assert!(err.to_string().contains("Atlassian account email"), "{err}");
}

#[tokio::test]
async fn no_email_no_check() {
    let (server, target) = server().await;
    let err = introspect(&target, None).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn revoke_is_not_supported_and_names_the_page() {
    let (server, target) = server().await;
    let outcome = ProviderClient::unproxied()
        .revoke(&target, &Secret::new("ATATT3xFfGF0"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RevokeOutcome::NotSupported {
            reason: "Bitbucket Cloud has no API to revoke an API token; revoke it on the \
                     Atlassian account's token page"
                .to_string(),
            token_page: Some(
                "https://id.atlassian.com/manage-profile/security/api-tokens".to_string()
            ),
        }
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn no_device_flow() {
    let (_server, target) = server().await;
    let err = ProviderClient::unproxied()
        .device_start(&target, "id", &["repository"])
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }));
}

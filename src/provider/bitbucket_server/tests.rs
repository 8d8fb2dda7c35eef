//! Bitbucket Data Center against a fake server answering what Atlassian documents.

use serde_json::json;

use crate::provider::fake::{target, FakeReply, FakeServer};
use crate::provider::Provider;
use crate::provider::{ProviderClient, ProviderError, RevokeOutcome, Target, TokenInfo};
use crate::secret::Secret;

const TOKEN: &str = "BBDC-NjQ4NjY5NzA0MjE0OkR";
const USER: &str = "/rest/api/latest/users/jdoe";
const TOKENS: &str = "/rest/access-tokens/latest/users/jdoe";

async fn server() -> (FakeServer, Target) {
    let server = FakeServer::start().await;
    let target = target(Provider::BitbucketServer, &server, "/rest");
    server.route(
        "GET",
        USER,
        vec![FakeReply::json(
            200,
            json!({"name": "jdoe", "slug": "jdoe", "id": 101, "displayName": "J. Doe"}),
        )
        .header("X-AUSERNAME", "jdoe")
        .header("X-AUSERID", "101")],
    );
    (server, target)
}

/// One entry of the token list; `expiry_days` None: a token that does not expire.
fn token(permissions: &[&str], expiry_days: Option<u64>) -> serde_json::Value {
    let mut t = json!({
        "id": "648669704214",
        "name": "helperd",
        // 2026-01-01T00:00:00Z in milliseconds.
        "createdDate": 1_767_225_600_000u64,
        "permissions": permissions,
        "user": {"name": "jdoe", "slug": "jdoe"}
    });
    if let Some(days) = expiry_days {
        t["expiryDays"] = json!(days);
    }
    t
}

fn page(values: Vec<serde_json::Value>) -> FakeReply {
    FakeReply::json(
        200,
        json!({"size": values.len(), "limit": 25, "isLastPage": true, "start": 0, "values": values}),
    )
}

async fn introspect(target: &Target) -> Result<TokenInfo, ProviderError> {
    ProviderClient::unproxied()
        .introspect(target, Some("jdoe"), &Secret::new(TOKEN))
        .await
}

#[tokio::test]
async fn the_only_token_reports_permissions_and_expiry() {
    let (server, target) = server().await;
    server.route(
        "GET",
        TOKENS,
        vec![page(vec![token(&["PROJECT_READ", "REPO_WRITE"], Some(90))])],
    );
    let info = introspect(&target).await.unwrap();
    assert_eq!(info.login.as_deref(), Some("jdoe"));
    assert_eq!(
        info.scopes,
        Some(vec!["PROJECT_READ".to_string(), "REPO_WRITE".to_string()])
    );
    // Created 2026-01-01 + 90 days = 2026-04-01T00:00:00Z.
    assert_eq!(info.expires, Some(1_775_001_600));
    assert!(info.missing_git_scopes.is_empty());
    for request in server.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
}

#[tokio::test]
async fn missing_repo_write() {
    let (server, target) = server().await;
    server.route(
        "GET",
        TOKENS,
        vec![page(vec![token(&["PROJECT_READ", "REPO_READ"], Some(90))])],
    );
    let info = introspect(&target).await.unwrap();
    assert_eq!(info.missing_git_scopes, ["REPO_WRITE"]);
}

#[tokio::test]
async fn no_expiry() {
    let (server, target) = server().await;
    server.route(
        "GET",
        TOKENS,
        vec![page(vec![token(&["REPO_ADMIN"], None)])],
    );
    let info = introspect(&target).await.unwrap();
    assert_eq!(info.expires, None);
    assert!(info.notes.iter().any(|n| n.contains("does not expire")));
}

#[tokio::test]
async fn several_tokens_cannot_be_told_apart() {
    let (server, target) = server().await;
    server.route(
        "GET",
        TOKENS,
        vec![page(vec![
            token(&["REPO_WRITE"], Some(90)),
            token(&["REPO_READ"], None),
        ])],
    );
    let info = introspect(&target).await.unwrap();
    assert_eq!(info.scopes, None);
    assert_eq!(info.expires, None);
    assert!(
        info.notes[0].contains("2 HTTP access tokens"),
        "{:?}",
        info.notes
    );
}

#[tokio::test]
async fn a_401_is_a_rejection() {
    let server = FakeServer::start().await;
    let target = target(Provider::BitbucketServer, &server, "/rest");
    server.route(
        "GET",
        USER,
        vec![FakeReply::json(
            401,
            json!({"errors": [{"message": "Authentication failed. Please check your credentials and try again."}]}),
        )],
    );
    let err = introspect(&target).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn revoke_is_not_supported_and_names_the_page() {
    let (server, target) = server().await;
    let outcome = ProviderClient::unproxied()
        .revoke(&target, &Secret::new(TOKEN))
        .await
        .unwrap();
    let RevokeOutcome::NotSupported { reason, token_page } = outcome else {
        panic!("expected NotSupported")
    };
    assert!(reason.contains("HTTP access tokens"));
    assert_eq!(
        token_page,
        Some(format!(
            "{}/plugins/servlet/access-tokens/manage",
            server.url()
        ))
    );
    assert!(server.requests().is_empty());
}

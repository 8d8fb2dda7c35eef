//! What holds for every provider: where a runtime's API is, unreachable hosts, OAuth
//! client ids, and that no secret reaches an error message or a log line.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::fake::{closed_port_url, target, FakeReply, FakeServer};
use super::*;
use crate::config::AuthScheme;
use crate::location::UrlPrefix;

fn runtime(provider: Provider, url: &str, api_url: Option<&str>) -> RuntimeConfig {
    RuntimeConfig {
        name: "work".to_string(),
        provider,
        urls: vec![UrlPrefix::parse(url).expect("the test URL is valid")],
        username: None,
        api_url: api_url.map(String::from),
        auth: AuthScheme::Basic,
        oauth_client_id: None,
        forward: false,
        email: None,
        line: 1,
        team: None,
        app: None,
        rotate_days: None,
        rotate_via: Default::default(),
    }
}

fn api_of(provider: Provider, url: &str) -> String {
    Target::for_runtime(&runtime(provider, url, None)).api_base
}

#[test]
fn default_api_locations() {
    assert_eq!(
        api_of(Provider::GitHub, "https://github.com/acme/"),
        "https://api.github.com"
    );
    assert_eq!(
        api_of(Provider::GitHub, "https://ghe.example.com/"),
        "https://ghe.example.com/api/v3"
    );
    assert_eq!(
        api_of(Provider::GitLab, "https://gitlab.com/group/"),
        "https://gitlab.com/api/v4"
    );
    assert_eq!(
        api_of(Provider::Bitbucket, "https://bitbucket.org/ws/"),
        "https://api.bitbucket.org/2.0"
    );
    assert_eq!(
        api_of(Provider::BitbucketServer, "https://git.example.com/scm/"),
        "https://git.example.com/rest"
    );
    assert_eq!(
        api_of(Provider::Gitea, "https://codeberg.org/"),
        "https://codeberg.org/api/v1"
    );
}

#[test]
fn api_url_overrides_and_web_base_is_the_first_prefix() {
    let rt = runtime(
        Provider::BitbucketServer,
        "https://git.example.com:8443/bitbucket/scm/",
        Some("https://git.example.com:8443/bitbucket/rest/"),
    );
    let target = Target::for_runtime(&rt);
    assert_eq!(target.web_base, "https://git.example.com:8443");
    assert_eq!(
        target.api_base,
        "https://git.example.com:8443/bitbucket/rest"
    );
}

#[tokio::test]
async fn a_wildcard_prefix_names_no_server() {
    let target = Target::for_runtime(&runtime(Provider::GitLab, "https://*.example.com/", None));
    let err = ProviderClient::unproxied()
        .introspect(&target, None, &Secret::new("t"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("api_url"));
}

#[test]
fn oauth_client_id_has_no_built_in_default() {
    for provider in Provider::ALL {
        let rt = runtime(provider, "https://example.com/", None);
        assert_eq!(oauth_client_id(&rt), None, "{provider}");
    }
    let mut rt = runtime(Provider::GitLab, "https://gitlab.example.com/", None);
    rt.oauth_client_id = Some("  ".to_string());
    assert_eq!(oauth_client_id(&rt), None);
    rt.oauth_client_id = Some("abc123".to_string());
    assert_eq!(oauth_client_id(&rt).as_deref(), Some("abc123"));
}

#[test]
fn the_runtimes_own_oauth_app_comes_before_the_policys() {
    let policy = crate::policy::Policy::parse(
        "[[oauth_app]]\nhost = \"gitlab.example.com\"\nclient_id = \"from-policy\"\n",
        std::path::Path::new("/etc/helperd/policy.toml"),
    )
    .unwrap();
    let mut rt = runtime(Provider::GitLab, "https://gitlab.example.com/", None);
    assert_eq!(oauth_app(&rt, None), None);
    match oauth_app(&rt, Some(&policy)) {
        Some(OAuthAppSource::Policy(app)) => assert_eq!(app.client_id, "from-policy"),
        other => panic!("expected the policy's app, got {other:?}"),
    }
    rt.oauth_client_id = Some("own".to_string());
    assert_eq!(
        oauth_app(&rt, Some(&policy)),
        Some(OAuthAppSource::Runtime("own".to_string()))
    );
    let elsewhere = runtime(Provider::GitLab, "https://gitlab.other.example/", None);
    assert_eq!(oauth_app(&elsewhere, Some(&policy)), None);
}

#[test]
fn oauth_not_registered_names_the_host_and_the_way_out() {
    let rt = runtime(Provider::GitHub, "https://ghe.example.com/acme/", None);
    let err = oauth_not_registered(&Target::for_runtime(&rt));
    assert_eq!(
        err.to_string(),
        "the OAuth app is not registered for ghe.example.com; ask your admin to register it \
         in the system policy ([[oauth_app]] host = \"ghe.example.com\", client_id = \"...\"), \
         or use a personal access token"
    );
}

#[tokio::test]
async fn an_unreachable_host_suggests_offline() {
    let url = closed_port_url();
    let target = Target {
        provider: Provider::GitHub,
        web_base: url.clone(),
        api_base: format!("{url}/api/v3"),
    };
    let client = ProviderClient::unproxied();
    let err = client
        .introspect(&target, None, &Secret::new("ghp_x"))
        .await
        .unwrap_err();
    let ProviderError::Unreachable {
        url: failed,
        detail,
    } = &err
    else {
        panic!("expected Unreachable, got {err:?}")
    };
    assert_eq!(failed, &format!("{url}/api/v3/user"));
    assert!(!detail.is_empty());
    assert!(err.to_string().contains("--offline"), "{err}");
    let err = client
        .device_start(&target, "id", &["repo"])
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn the_real_constructor_builds() {
    // With whatever proxy the environment names: building does not connect.
    assert!(ProviderClient::new().is_ok());
}

#[tokio::test]
async fn a_generic_server_has_no_api() {
    let target = Target::for_runtime(&runtime(
        Provider::Generic,
        "https://git.example.com/",
        None,
    ));
    let client = ProviderClient::unproxied();
    let err = client
        .introspect(&target, None, &Secret::new("t"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }));
    let outcome = client.revoke(&target, &Secret::new("t")).await.unwrap();
    assert!(matches!(
        outcome,
        RevokeOutcome::NotSupported {
            token_page: None,
            ..
        }
    ));
}

const TOKEN: &str = "ghp_SECRETtokenVALUE";
const DEVICE: &str = "SECRETdeviceCODE";
const REFRESH: &str = "SECRETrefreshTOKEN";

/// Every way a call can fail, with answers that try hard to get the secrets into the
/// error: echoed in descriptions, in fields of the wrong type, in error codes.
async fn every_failure() -> Vec<ProviderError> {
    let server = FakeServer::start().await;
    let gh = target(Provider::GitHub, &server, "/api/v3");
    let gl = target(Provider::GitLab, &server, "/api/v4");
    let bb = target(Provider::Bitbucket, &server, "/2.0");
    let bbdc = target(Provider::BitbucketServer, &server, "/rest");
    let gitea = target(Provider::Gitea, &server, "/api/v1");
    server.route(
        "GET",
        "/api/v3/user",
        vec![
            FakeReply::json(401, json!({"message": format!("Bad credentials {TOKEN}")})),
            FakeReply::json(200, json!({"login": [TOKEN]})),
        ],
    );
    server.route(
        "POST",
        "/login/oauth/access_token",
        vec![
            FakeReply::json(200, json!({"error": TOKEN, "error_description": DEVICE})),
            FakeReply::json(
                200,
                json!({"error": "weird_error", "error_description": REFRESH}),
            ),
            FakeReply::json(200, json!({"access_token": 5, "refresh_token": REFRESH})),
            FakeReply::json(
                200,
                json!({"error": "bad_refresh_token", "refresh_token": REFRESH}),
            ),
        ],
    );
    server.route(
        "POST",
        "/login/device/code",
        vec![FakeReply::json(
            200,
            json!({"device_code": DEVICE, "user_code": 7}),
        )],
    );
    server.route(
        "GET",
        "/api/v4/personal_access_tokens/self",
        vec![FakeReply::json(
            200,
            json!({"scopes": TOKEN, "active": true}),
        )],
    );
    server.route(
        "GET",
        "/api/v1/user",
        vec![FakeReply::json(
            403,
            json!({"message": format!("required scope(s): [{TOKEN}]")}),
        )],
    );
    let c = ProviderClient::unproxied();
    let token = Secret::new(TOKEN);
    let device = Secret::new(DEVICE);
    let refresh = Secret::new(REFRESH);
    let unreachable = Target {
        provider: Provider::GitHub,
        web_base: closed_port_url(),
        api_base: closed_port_url(),
    };
    let mut errors = vec![
        c.introspect(&gh, None, &token).await.unwrap_err(),
        c.introspect(&gh, None, &token).await.unwrap_err(),
        c.device_poll(&gh, "id", &device).await.unwrap_err(),
        c.device_poll(&gh, "id", &device).await.unwrap_err(),
        c.device_poll(&gh, "id", &device).await.unwrap_err(),
        c.refresh(&gh, "id", &refresh).await.unwrap_err(),
        c.device_start(&gh, "id", &["repo"]).await.unwrap_err(),
        c.introspect(&gl, None, &token).await.unwrap_err(),
        c.introspect(&bb, Some("me"), &token).await.unwrap_err(),
        c.introspect(&bbdc, Some("me"), &token).await.unwrap_err(),
        c.introspect(&gitea, None, &token).await.unwrap_err(),
        c.introspect(&unreachable, None, &token).await.unwrap_err(),
        c.refresh(&unreachable, "id", &refresh).await.unwrap_err(),
        c.introspect(&gh, None, &Secret::new(format!("{TOKEN}\r\nX: y")))
            .await
            .unwrap_err(),
    ];
    server.route(
        "POST",
        "/api/v3/credentials/revoke",
        vec![FakeReply::json(
            422,
            json!({"message": format!("invalid {TOKEN}")}),
        )],
    );
    errors.push(c.revoke(&gh, &token).await.unwrap_err());
    errors
}

#[tokio::test]
async fn no_secret_in_any_error() {
    let errors = every_failure().await;
    assert!(errors.len() >= 15);
    for err in &errors {
        let text = format!("{err} | {err:?}");
        for secret in ["SECRET", TOKEN, DEVICE, REFRESH] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}

#[test]
fn secrets_in_results_are_redacted() {
    let tokens = OAuthTokens {
        access_token: Secret::new(TOKEN),
        refresh_token: Some(Secret::new(REFRESH)),
        expires_at: None,
        refresh_expires_at: None,
        scopes: vec![],
    };
    let code = DeviceCode {
        device_code: Secret::new(DEVICE),
        user_code: "ABCD-EFGH".into(),
        verification_uri: "https://github.com/login/device".into(),
        verification_uri_complete: None,
        interval: 5,
        expires_in: 900,
    };
    let text = format!("{tokens:?} {code:?} {:?}", DevicePoll::Done(tokens.clone()));
    assert!(!text.contains("SECRET"), "{text}");
}

/// A `tracing` writer into memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the capture is not poisoned")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_in_any_log_line() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded: the guard covers the fake server's tasks too.
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::trace!("capture works");

    let server = FakeServer::start().await;
    let gh = target(Provider::GitHub, &server, "/api/v3");
    server.route(
        "GET",
        "/api/v3/user",
        vec![FakeReply::json(200, json!({"login": "me"})).header("X-OAuth-Scopes", "repo")],
    );
    server.route(
        "POST",
        "/login/oauth/access_token",
        vec![FakeReply::json(
            200,
            json!({"access_token": TOKEN, "refresh_token": REFRESH, "expires_in": 28800}),
        )],
    );
    let c = ProviderClient::unproxied();
    c.introspect(&gh, None, &Secret::new(TOKEN)).await.unwrap();
    c.device_poll(&gh, "id", &Secret::new(DEVICE))
        .await
        .unwrap();
    c.refresh(&gh, "id", &Secret::new(REFRESH)).await.unwrap();
    let _ = every_failure().await;

    let logged = String::from_utf8_lossy(&capture.0.lock().expect("not poisoned")).into_owned();
    assert!(
        logged.contains("capture works"),
        "the capture is not wired: {logged}"
    );
    for secret in ["SECRET", TOKEN, DEVICE, REFRESH] {
        assert!(
            !logged.contains(secret),
            "{secret} leaked in the log:\n{logged}"
        );
    }
}

//! One OpenBao client for every address: each call goes to the node that answered last,
//! then to the others in order, so a Raft cluster that loses its leader keeps being used
//! through the nodes left; a node that answers with an error another node would repeat
//! (403, 404, 400) ends the call there.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};
use vaultrs::api::kv2::requests::ReadSecretRequest;
use vaultrs::api::{AuthInfo, EndpointMiddleware};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::session::{self, SessionInfo};
use super::{BaoError, Login};
use crate::config::openbao::{BaoAuth, OpenBaoSettings};
use crate::secret::Secret;
use crate::team::parse_created_time;

/// A dead or firewalled node costs at most this before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One call to one node; a node that accepts and then hangs costs at most this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A 403 within this long of a login is the policy's answer, not a revoked token.
const FRESH_LOGIN_SECS: u64 = 60;

/// One KV version 2 entry as read. Its Debug shows the field names only: `data` holds
/// a team runtime's token.
#[derive(Clone)]
pub struct KvEntry {
    /// The entry's fields (a team runtime's token among them: handle as a secret).
    pub data: Map<String, Value>,
    /// `metadata.version`.
    pub version: u64,
    /// `metadata.created_time`, Unix seconds (0 when OpenBao sent none that parses).
    pub created: u64,
}

impl std::fmt::Debug for KvEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvEntry")
            .field("fields", &self.data.keys().collect::<Vec<_>>())
            .field("version", &self.version)
            .field("created", &self.created)
            .finish()
    }
}

/// Talks to the team's OpenBao. Calls may run concurrently; no lock is held across I/O.
pub struct BaoClient {
    settings: OpenBaoSettings,
    addresses: Vec<String>,
    http: reqwest::Client,
    login: Mutex<Option<Login>>,
    /// Held while renewing or logging in (see [`BaoClient::token`]).
    renewing: tokio::sync::Mutex<()>,
    info: Mutex<SessionInfo>,
    /// Index of the address that answered last.
    preferred: AtomicUsize,
}

impl BaoClient {
    /// A client for `settings` (addresses from the settings, else `BAO_ADDR` /
    /// `VAULT_ADDR`). Nothing is sent yet.
    pub fn new(settings: &OpenBaoSettings) -> Result<BaoClient, BaoError> {
        let addresses = settings.effective_addresses();
        if addresses.is_empty() {
            return Err(BaoError::Setup(
                "no address: set addresses = [...] in [openbao] of config.toml, or BAO_ADDR".into(),
            ));
        }
        for a in &addresses {
            crate::config::openbao::check_address(a).map_err(BaoError::Setup)?;
        }
        // reqwest takes the process-wide rustls provider (see provider/http.rs).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("helperd/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry X-Vault-Token (and a login's secret id or JWT) to
            // whatever host it names: OpenBao's addresses are the configured ones only.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BaoError::Setup(format!("the HTTP client cannot be set up: {e}")))?;
        Ok(BaoClient {
            settings: settings.clone(),
            addresses,
            http,
            login: Mutex::new(None),
            renewing: tokio::sync::Mutex::new(()),
            info: Mutex::new(SessionInfo {
                method: settings.auth.name().into(),
                ..SessionInfo::default()
            }),
            preferred: AtomicUsize::new(0),
        })
    }

    /// The addresses tried, in order.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &OpenBaoSettings {
        &self.settings
    }

    /// The login's state, for `status`.
    pub fn session_info(&self) -> SessionInfo {
        self.info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The entry names directly below `path` (folders left out); none when it is empty.
    pub async fn list(&self, path: &str, now: u64) -> Result<Vec<String>, BaoError> {
        let mount = self.settings.mount.clone();
        let path = path.to_string();
        let what = format!("listing {}/{path}", self.settings.mount);
        let found = self
            .call(&what, now, move |c| {
                let (mount, path) = (mount.clone(), path.clone());
                async move { vaultrs::kv2::list(&c, &mount, &path).await }
            })
            .await;
        match found {
            Ok(keys) => Ok(keys.into_iter().filter(|k| !k.ends_with('/')).collect()),
            // An empty folder is a 404 without an error text; a mount that does not exist
            // ("no handler for route") is a 404 too, but a mistake to report, not "none".
            Err(BaoError::Refused {
                code: 404, message, ..
            }) if message.trim().is_empty() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The newest version of the entry at `path`; `None` when it does not exist or its
    /// newest version was deleted or destroyed.
    pub async fn read(&self, path: &str, now: u64) -> Result<Option<KvEntry>, BaoError> {
        let mount = self.settings.mount.clone();
        let path = path.to_string();
        let what = format!("reading {}/{path}", self.settings.mount);
        let read = self
            .call(&what, now, move |c| {
                let (mount, path) = (mount.clone(), path.clone());
                async move {
                    let request = ReadSecretRequest::builder()
                        .mount(mount)
                        .path(path)
                        .build()
                        .expect("mount and path are set");
                    vaultrs::api::exec_with_result(&c, request).await
                }
            })
            .await;
        match read {
            Ok(r) => Ok(Some(KvEntry {
                data: match r.data {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
                version: r.metadata.version,
                created: parse_created_time(&r.metadata.created_time).unwrap_or(0),
            })),
            Err(BaoError::Refused { code: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a new version of the entry at `path`; its version number.
    pub async fn write(
        &self,
        path: &str,
        data: &Map<String, Value>,
        now: u64,
    ) -> Result<u64, BaoError> {
        let mount = self.settings.mount.clone();
        let path = path.to_string();
        let data = data.clone();
        let what = format!("writing {}/{path}", self.settings.mount);
        let written = self
            .call(&what, now, move |c| {
                let (mount, path, data) = (mount.clone(), path.clone(), data.clone());
                async move { vaultrs::kv2::set(&c, &mount, &path, &data).await }
            })
            .await?;
        Ok(written.version)
    }

    /// Sets the entry at `path` (which need not exist yet) to keep only its newest `max`
    /// versions: older versions are removed at the next write.
    pub async fn keep_versions(&self, path: &str, max: u64, now: u64) -> Result<(), BaoError> {
        let mount = self.settings.mount.clone();
        let path = path.to_string();
        let what = format!("setting the metadata of {}/{path}", self.settings.mount);
        self.call(&what, now, move |c| {
            let (mount, path) = (mount.clone(), path.clone());
            async move {
                let mut options = vaultrs::api::kv2::requests::SetSecretMetadataRequest::builder();
                options.max_versions(max);
                vaultrs::kv2::set_metadata(&c, &mount, &path, Some(&mut options)).await
            }
        })
        .await
    }

    /// Deletes the entry at `path` with all its versions and metadata.
    pub async fn delete(&self, path: &str, now: u64) -> Result<(), BaoError> {
        let mount = self.settings.mount.clone();
        let path = path.to_string();
        let what = format!("deleting {}/{path}", self.settings.mount);
        self.call(&what, now, move |c| {
            let (mount, path) = (mount.clone(), path.clone());
            async move { vaultrs::kv2::delete_metadata(&c, &mount, &path).await }
        })
        .await
    }

    /// Runs `op` with a logged-in client; on a 403 from a login old enough to have been
    /// revoked meanwhile, logs in again and retries once (a 403 right after a login is
    /// the policy's answer: logging in again would only burn secret ids).
    async fn call<T, F, Fut>(&self, what: &str, now: u64, op: F) -> Result<T, BaoError>
    where
        F: Fn(VaultClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let token = self.token(now).await?;
        match self.on_nodes(what, Some(&token), &op).await {
            Err(e) if e.is_denied() && self.may_log_in_again() && !self.login_is_fresh(now) => {
                self.forget_login();
                let token = self.token(now).await?;
                self.on_nodes(what, Some(&token), &op).await
            }
            result => result,
        }
    }

    /// A token auth from the environment cannot be renewed by logging in again; the other
    /// methods (and a token file, which may have been rotated) can.
    fn may_log_in_again(&self) -> bool {
        !matches!(self.settings.auth, BaoAuth::Token { token_file: None })
    }

    /// The login was obtained or renewed within the last minute.
    fn login_is_fresh(&self, now: u64) -> bool {
        self.login
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|l| now < l.obtained.saturating_add(FRESH_LOGIN_SECS))
    }

    fn forget_login(&self) {
        *self.login.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The token to send: the current login's, renewed when two thirds of its lease have
    /// passed, or a new login when there is none, its lease ended or the renewal failed.
    pub async fn token(&self, now: u64) -> Result<Secret, BaoError> {
        if let Some(token) = self.current_token(now) {
            return Ok(token);
        }
        // One renewal or login at a time: concurrent callers (the OpenBao store's
        // requests) wait for it rather than each logging in.
        let _single_flight = self.renewing.lock().await;
        if let Some(token) = self.current_token(now) {
            return Ok(token);
        }
        let current = self
            .login
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(login) = current {
            if login.renewable && !session::expired(&login, now) {
                match self.renew(&login, now).await {
                    Ok(renewed) => return Ok(renewed),
                    Err(e) => {
                        tracing::warn!(error = %e, "OpenBao: renewing the login's lease failed; logging in again")
                    }
                }
            }
        }
        let login = self.log_in(now).await?;
        let token = login.token.clone();
        {
            let mut info = self.info.lock().unwrap_or_else(PoisonError::into_inner);
            info.logins += 1;
            info.renewals = 0;
            info.logged_in_at = Some(now);
            info.lease_ends_at = login.lease_secs.filter(|&l| l > 0).map(|l| now + l);
        }
        *self.login.lock().unwrap_or_else(PoisonError::into_inner) = Some(login);
        Ok(token)
    }

    /// The current login's token while it needs no renewal.
    fn current_token(&self, now: u64) -> Option<Secret> {
        self.login
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|l| !session::renew_due(l, now))
            .map(|l| l.token.clone())
    }

    async fn renew(&self, login: &Login, now: u64) -> Result<Secret, BaoError> {
        let auth = self
            .on_nodes(
                "renewing the login's lease",
                Some(&login.token),
                &|c| async move { vaultrs::token::renew_self(&c, None).await },
            )
            .await?;
        let renewed = Login {
            token: login.token.clone(),
            lease_secs: Some(auth.lease_duration),
            renewable: auth.renewable,
            obtained: now,
        };
        {
            let mut info = self.info.lock().unwrap_or_else(PoisonError::into_inner);
            info.renewals += 1;
            info.lease_ends_at = Some(now + auth.lease_duration);
        }
        tracing::debug!(lease_secs = auth.lease_duration, "OpenBao: lease renewed");
        *self.login.lock().unwrap_or_else(PoisonError::into_inner) = Some(renewed.clone());
        Ok(renewed.token)
    }

    async fn log_in(&self, now: u64) -> Result<Login, BaoError> {
        let method = self.settings.auth.name();
        let login_error = |why: String| BaoError::Login { method, why };
        match &self.settings.auth {
            BaoAuth::Token { token_file } => {
                let token = match token_file {
                    Some(file) => read_credential(file).map_err(login_error)?,
                    None => ["BAO_TOKEN", "VAULT_TOKEN"]
                        .iter()
                        .find_map(|v| std::env::var(v).ok().filter(|t| !t.trim().is_empty()))
                        .map(|t| Secret::new(t.trim()))
                        .ok_or_else(|| login_error("set BAO_TOKEN (or VAULT_TOKEN), or token_file = \"...\" in [openbao]".into()))?,
                };
                // What OpenBao says of the token: its lease, and whether it is renewable.
                let looked_up = self
                    .on_nodes("looking up the token", Some(&token), &|c| async move {
                        vaultrs::token::lookup_self(&c).await
                    })
                    .await
                    .map_err(|e| match e {
                        BaoError::Refused { code: 403, .. } => login_error(
                            "OpenBao does not accept the token (expired or revoked?)".into(),
                        ),
                        e => e,
                    })?;
                Ok(Login {
                    token,
                    lease_secs: Some(looked_up.ttl).filter(|&t| t > 0),
                    renewable: looked_up.renewable.unwrap_or(false),
                    obtained: now,
                })
            }
            BaoAuth::AppRole {
                role_id,
                secret_id_file,
                mount_path,
            } => {
                let secret_id = read_credential(secret_id_file).map_err(login_error)?;
                let (mount, role_id) = (mount_path.clone(), role_id.clone());
                let auth = self
                    .on_nodes("logging in with AppRole", None, &|c| {
                        let (mount, role_id, secret_id) =
                            (mount.clone(), role_id.clone(), secret_id.clone());
                        async move {
                            vaultrs::auth::approle::login(&c, &mount, &role_id, secret_id.expose())
                                .await
                        }
                    })
                    .await
                    .map_err(|e| refused_login(e, method))?;
                Ok(login_from(auth, now))
            }
            BaoAuth::Jwt {
                role,
                jwt_file,
                mount_path,
            } => {
                let jwt = read_credential(jwt_file).map_err(login_error)?;
                let (mount, role) = (mount_path.clone(), role.clone());
                let auth = self
                    .on_nodes("logging in with a JWT", None, &|c| {
                        let (mount, role, jwt) = (mount.clone(), role.clone(), jwt.clone());
                        async move {
                            vaultrs::auth::oidc::login(&c, &mount, jwt.expose(), Some(role)).await
                        }
                    })
                    .await
                    .map_err(|e| refused_login(e, method))?;
                Ok(login_from(auth, now))
            }
        }
    }

    /// Runs `op` on the preferred node, then on the others in order, until one answers.
    async fn on_nodes<T, F, Fut>(
        &self,
        what: &str,
        token: Option<&Secret>,
        op: &F,
    ) -> Result<T, BaoError>
    where
        F: Fn(VaultClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let n = self.addresses.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut tried = Vec::new();
        for i in (0..n).map(|k| (first + k) % n) {
            let address = &self.addresses[i];
            let client = self.client(address, token)?;
            match op(client).await {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) => match classify(e) {
                    Failure::Node(why) => {
                        tracing::debug!(%address, %why, "OpenBao node did not answer; trying the next");
                        tried.push((address.clone(), why));
                    }
                    Failure::Answer { code, message } => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Err(BaoError::Refused {
                            address: address.clone(),
                            what: what.to_string(),
                            code,
                            message,
                        });
                    }
                },
            }
        }
        Err(BaoError::Unreachable { tried })
    }

    /// A vaultrs client for one node, sharing this client's connection pool.
    fn client(&self, address: &str, token: Option<&Secret>) -> Result<VaultClient, BaoError> {
        let token = token.map(|t| t.expose().to_string()).unwrap_or_default();
        let settings = VaultClientSettingsBuilder::default()
            .address(address)
            .token(token.clone())
            .timeout(Some(REQUEST_TIMEOUT))
            .build()
            .map_err(|e| BaoError::Setup(format!("address {address}: {e}")))?;
        Ok(VaultClient {
            http: rustify::clients::reqwest::Client::new(address, self.http.clone()),
            middle: EndpointMiddleware {
                token,
                version: "v1".into(),
                wrap: None,
                namespace: None,
            },
            settings,
        })
    }
}

fn login_from(auth: AuthInfo, now: u64) -> Login {
    Login {
        token: Secret::new(auth.client_token),
        lease_secs: Some(auth.lease_duration).filter(|&l| l > 0),
        renewable: auth.renewable,
        obtained: now,
    }
}

fn refused_login(e: BaoError, method: &'static str) -> BaoError {
    match e {
        BaoError::Refused { code, message, .. } => BaoError::Login {
            method,
            why: format!("OpenBao refused it (HTTP {code}: {message})"),
        },
        e => e,
    }
}

/// A credential file (secret id, JWT, token): its first line, which must not be empty.
fn read_credential(path: &std::path::Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = text.lines().next().unwrap_or("").trim();
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(value))
}

/// How one node's failure is taken.
enum Failure {
    /// The node could not answer (down, sealed, no leader yet, overloaded): try the next.
    Node(String),
    /// An answer another node would repeat.
    Answer { code: u16, message: String },
}

fn classify(e: ClientError) -> Failure {
    match e {
        ClientError::APIError { code, errors } if code >= 500 || code == 429 => {
            Failure::Node(format!(
                "HTTP {code}{}",
                errors.first().map(|m| format!(": {m}")).unwrap_or_default()
            ))
        }
        ClientError::APIError { code, errors } => Failure::Answer {
            code,
            message: errors.join("; "),
        },
        ClientError::RestClientError { source } => match source {
            rustify::errors::ClientError::ServerResponseError { code, .. }
                if code < 500 && code != 429 =>
            {
                // An error without Vault's JSON body: its content is not repeated (it
                // could be anything a proxy in between chose to send).
                Failure::Answer {
                    code,
                    message: String::new(),
                }
            }
            other => Failure::Node(short_transport_error(&other)),
        },
        other => Failure::Node(other.to_string()),
    }
}

/// The innermost cause of a transport error ("Connection refused"), which is what a user
/// can act on.
fn short_transport_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if text.contains("timed out") || text.contains("deadline") {
        return "timed out".into();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn settings(address: &str) -> OpenBaoSettings {
        let text =
            format!("[openbao]\naddresses = [\"{address}\"]\ntoken_file = \"/nonexistent\"\n");
        crate::config::Config::parse(&text, std::path::Path::new("config.toml"))
            .unwrap()
            .openbao
            .unwrap()
    }

    /// A node that answers every request with a redirect to `elsewhere`.
    fn redirecting_node(elsewhere: String) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten().take(4) {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere}/v1/secret/metadata/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        address
    }

    #[test]
    fn a_redirect_is_an_answer_never_followed_with_the_token() {
        // Where a redirect would lead: it must never see a connection (nor the token).
        let trap = TcpListener::bind("127.0.0.1:0").unwrap();
        let trap_address = format!("http://{}", trap.local_addr().unwrap());
        trap.set_nonblocking(true).unwrap();
        let node = redirecting_node(trap_address);
        let mut client = BaoClient::new(&settings(&node)).unwrap();
        // A login, as if already made: the call goes straight to the node.
        *client.login.get_mut().unwrap() = Some(Login {
            token: Secret::new("s.SECRET-TOKEN"),
            lease_secs: None,
            renewable: false,
            obtained: 0,
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(client.read("x", 0)).unwrap_err();
        assert!(matches!(e, BaoError::Refused { code: 307, .. }), "{e:?}");
        assert!(!e.to_string().contains("SECRET-TOKEN"), "{e}");
        // A followed redirect would sit in the trap's backlog.
        assert!(trap.accept().is_err(), "the redirect was followed");
    }
}

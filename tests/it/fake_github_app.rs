//! The fake GitHub App side shared by the GitHub App tests (tests/it/github_app.rs, local
//! runtimes; tests/it/team_app.rs, team runtimes from OpenBao): RSA key pairs made with
//! `openssl`, the JWT check GitHub makes, its 401, and the fake's clock.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::fake_provider::{Reply, Request};
use crate::util::unix_now;

/// The fake app's id (the JWT's `iss`).
pub const APP_ID: u64 = 123;
/// Its installation on `acme`.
pub const INSTALLATION: u64 = 789;
/// Where installation tokens are minted for it.
pub const MINT: &str = "/app/installations/789/access_tokens";

/// A PKCS#1 key pair (the PEM file `file` in `dir`, the public key as DER) made for one
/// test only; `None` (the test says SKIPPED) without openssl.
pub fn key_pair(dir: &Path, file: &str) -> Option<(PathBuf, Vec<u8>)> {
    let pem = dir.join(file);
    let made = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&pem)
        .arg("2048")
        .output()
        .ok()?;
    if !made.status.success() {
        return None;
    }
    let public = Command::new("openssl")
        .args(["rsa", "-RSAPublicKey_out", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .ok()?;
    public.status.success().then_some((pem, public.stdout))
}

fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The fake GitHub's view of time: the real clock plus what the test moved the daemon's.
#[derive(Clone, Default)]
pub struct FakeClock(pub Arc<AtomicU64>);

impl FakeClock {
    pub fn now(&self) -> u64 {
        unix_now() + self.0.load(Ordering::SeqCst)
    }
}

/// Checks the JWT as GitHub does: RS256 signed with the app's key, `iss` the app id,
/// `iat` not in the future, `exp` after now and at most 10 minutes ahead. `Err`: why.
pub fn check_jwt(req: &Request, public: &[u8], clock: &FakeClock) -> Result<(), String> {
    check_jwt_as(req, public, clock, &APP_ID.to_string())
}

/// [`check_jwt`] for an app known by `iss` (its client id, which GitHub prefers).
pub fn check_jwt_as(
    req: &Request,
    public: &[u8],
    clock: &FakeClock,
    iss: &str,
) -> Result<(), String> {
    let auth = req.header("authorization").ok_or("no Authorization")?;
    let jwt = auth.strip_prefix("Bearer ").ok_or("not Bearer")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, sig] = parts.as_slice() else {
        return Err("not three parts".into());
    };
    let header: Value = serde_json::from_slice(&b64url_decode(header).ok_or("header base64")?)
        .map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public,
    );
    key.verify(
        format!("{header_b64}.{claims}", header_b64 = parts[0]).as_bytes(),
        &b64url_decode(sig).ok_or("sig base64")?,
    )
    .map_err(|_| "bad signature".to_string())?;
    let claims: Value = serde_json::from_slice(&b64url_decode(claims).ok_or("claims base64")?)
        .map_err(|e| e.to_string())?;
    let now = clock.now();
    let (iat, exp) = (
        claims["iat"].as_u64().ok_or("iat")?,
        claims["exp"].as_u64().ok_or("exp")?,
    );
    if claims["iss"] != json!(iss) {
        return Err(format!("iss {}", claims["iss"]));
    }
    if iat > now || iat + 120 < now {
        return Err(format!("iat {iat} vs now {now}"));
    }
    if exp <= now || exp > now + 600 {
        return Err(format!("exp {exp} vs now {now}"));
    }
    Ok(())
}

/// GitHub's 401 for a JWT it cannot accept.
pub fn bad_jwt() -> Reply {
    Reply::json(
        401,
        json!({"message": "A JSON web token could not be decoded", "documentation_url": "https://docs.github.com/rest"}),
    )
}

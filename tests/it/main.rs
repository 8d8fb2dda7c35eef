//! helperd's integration tests: the real binaries, the real git, a real git HTTP server and
//! a real Secret Service (gnome-keyring under a private D-Bus session).
//!
//! This suite runs on Linux (it drives gnome-keyring, sshd, OpenBao and git's own helpers
//! there). The Windows suite is `tests/windows.rs`, run under Wine by `scripts/wine-test.sh`.
#![cfg(unix)]

mod admin;
mod bad_input;
mod bao;
mod bao_cluster;
mod daemon;
mod e2e_http;
mod expiry;
mod fake_github_app;
mod fake_provider;
mod forward;
mod git_server;
mod github_app;
mod gitlab_rotate;
mod keyring_waits;
mod openbao_store;
mod protocol;
mod providers;
mod raft;
mod runtimes;
mod secret_service;
mod stores;
mod team;
mod team_admin;
mod team_app;
mod team_common;
mod url_secrets;
mod util;

//! helperd: a per-user git credential helper daemon (see DESIGN.md).
//!
//! Core, no I/O: [`secret`], [`gitproto`], [`plain`]. Edges: [`store`], [`ipc`],
//! [`fsutil`]. The daemon: [`daemon`]. Binaries: `helperd`, `helperctl`.

#![deny(missing_docs)]

pub mod audit;
pub mod audit_event;
pub mod cli;
pub mod config;
pub mod config_edit;
pub mod config_file;
pub mod config_openbao;
pub mod ctl;
pub mod daemon;
pub mod decision;
pub mod docs;
pub mod fsutil;
pub mod fswatch;
pub mod gitproto;
pub mod ipc;
pub mod location;
pub mod openbao;
pub mod plain;
pub mod policy;
pub mod policy_file;
pub mod provider;
pub mod runtime;
pub mod secret;
pub mod store;
pub mod team;
pub mod timefmt;
pub mod token;
pub mod tomlspan;
pub mod tty;

pub use helperd_wire as wire;

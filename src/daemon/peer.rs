//! Who is asking: the socket's peer credentials, for the log and the audit trail.

use crate::audit::AuditEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
    /// The request came through the support socket (read-only access of another user).
    pub via_support: bool,
}

impl Peer {
    /// A peer on the main socket.
    pub fn local(uid: u32, pid: Option<i32>) -> Peer {
        Peer {
            uid,
            pid,
            via_support: false,
        }
    }

    /// An audit event naming this process.
    pub fn event(&self, kind: &str) -> AuditEvent {
        self.stamp(AuditEvent::now(kind))
    }

    /// Adds this process to `event`.
    pub fn stamp(&self, event: AuditEvent) -> AuditEvent {
        match self.pid {
            Some(pid) => event.peer(pid, self.uid),
            None => event,
        }
    }
}

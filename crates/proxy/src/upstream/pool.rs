//! The idle connections to one replica, kept per data-path worker: a connection is
//! registered with the reactor of the worker that opened it, and used only there.

use std::sync::Mutex;

use super::conn::Conn;

/// Most connections kept per replica and worker.
const MAX_KEPT: usize = 1024;

/// A replica's idle connections.
pub struct Pool {
    idle: Box<[Mutex<Vec<Conn>>]>,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            idle: (0..crate::workers::slots())
                .map(|_| Mutex::default())
                .collect(),
        }
    }
}

impl Pool {
    /// This worker's idle connections.
    fn mine(&self) -> &Mutex<Vec<Conn>> {
        &self.idle[crate::workers::index() % self.idle.len()]
    }

    /// An idle connection that is still open, the most recently used first.
    pub fn take(&self) -> Option<Conn> {
        loop {
            let conn = self.mine().lock().expect("not poisoned").pop()?;
            if conn.still_open() {
                return Some(conn);
            }
        }
    }

    /// Keeps a connection whose exchange is over for later requests.
    pub fn put(&self, conn: Conn) {
        let mut idle = self.mine().lock().expect("not poisoned");
        if idle.len() < MAX_KEPT {
            idle.push(conn);
        }
    }

    /// Closes every idle connection (the replica left, or closed one of them).
    pub fn clear(&self) {
        for slot in &self.idle {
            let idle = std::mem::take(&mut *slot.lock().expect("not poisoned"));
            drop(idle);
        }
    }
}

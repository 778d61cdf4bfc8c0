//! Revisions: every configuration of a service the control plane applied, numbered,
//! the last [`KEPT`] kept in the state directory (`revisions.json`, written
//! atomically), with the service's rollout record beside them.
//!
//! A revision is the typed service as it was applied and the id of its image; its hash
//! ([`shoal_spec::Service::revision_hash`]) labels the containers made from it, so
//! the engine tells which replica runs which revision. The record of the rollout in
//! progress is written before its first new replica starts: a control plane killed in
//! the middle reads it back and finishes what it was doing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoal_spec::Service;

/// Revisions kept per service (Kubernetes' `revisionHistoryLimit`).
pub const KEPT: usize = 10;

/// One applied configuration of a service.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revision {
    /// Its number, counting from 1 per service.
    pub number: u32,
    /// The hash its containers carry.
    pub hash: String,
    /// The id of its image when it was applied.
    pub image_id: Option<String>,
    /// Seconds since the Unix epoch when it was first applied.
    pub applied_at: u64,
    /// What applied it (`up`, `rollout undo`).
    pub cause: String,
    /// The service as it was applied.
    pub service: Service,
}

/// Where a rollout is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    /// Replacing replicas.
    Progressing,
    /// Stopped by a failure (`failure_action: pause`) or by `rollout pause`.
    Paused,
    /// Going back to the previous revision after a failure.
    RollingBack,
    /// Every replica runs the new revision and passed its monitor window.
    Complete,
    /// Back on the previous revision after a failure.
    RolledBack,
}

impl RolloutState {
    /// True when nothing more will happen without a new command.
    pub fn finished(self) -> bool {
        matches!(self, RolloutState::Complete | RolloutState::RolledBack)
    }
}

/// The last rollout of a service, as persisted and reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// The revision it started from, if the service had one.
    pub from: Option<u32>,
    /// The revision it rolls to.
    pub to: u32,
    /// Where it is.
    pub state: RolloutState,
    /// True for the way back after a failed rollout (`from` is the failed revision).
    #[serde(default)]
    pub rollback: bool,
    /// Why it is paused or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Replicas on the target revision and ready, of `of`.
    #[serde(default)]
    pub done: u32,
    /// Replicas the service runs.
    #[serde(default)]
    pub of: u32,
}

/// A service's revisions and its last rollout.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    /// The revision the service should run.
    pub current: u32,
    /// Kept revisions, oldest first.
    pub revisions: Vec<Revision>,
    /// The last rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutRecord>,
    /// Rolling restarts asked (`shoal restart`): part of the revision's hash, so that
    /// a restart is a rollout to a new revision of the same configuration, and the
    /// file applied again afterwards changes nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
}

impl History {
    /// Revision `number`, if kept.
    pub fn get(&self, number: u32) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.number == number)
    }

    /// The revision the service should run.
    pub fn current(&self) -> Option<&Revision> {
        self.get(self.current)
    }
}

/// Every service's history, as in `revisions.json`.
#[derive(Debug, Default)]
pub struct Revisions {
    /// `None`: kept in memory only (tests).
    path: Option<PathBuf>,
    /// By service name.
    pub services: BTreeMap<String, History>,
}

impl Revisions {
    /// Reads `revisions.json` in `state_dir`; missing means no history yet.
    pub fn load(state_dir: &Path) -> std::io::Result<Revisions> {
        let path = state_dir.join("revisions.json");
        let mut services: BTreeMap<String, History> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        // The service's name is its key, not a field.
        for (name, h) in &mut services {
            for r in &mut h.revisions {
                r.service.name = name.clone();
            }
        }
        Ok(Revisions {
            path: Some(path),
            services,
        })
    }

    /// The hash of `svc`'s containers with `image_id`, its restarts counted.
    pub fn hash_of(&self, svc: &Service, image_id: Option<&str>) -> String {
        let hash = svc.revision_hash(image_id);
        match self.of(&svc.name).map_or(0, |h| h.restarts) {
            0 => hash,
            n => format!("{hash}-r{n}"),
        }
    }

    /// One more rolling restart of `service`: its next applied revision is new.
    pub fn restart(&mut self, service: &str) {
        self.services
            .entry(service.to_string())
            .or_default()
            .restarts += 1;
    }

    /// A service's history (empty when it has none).
    pub fn of(&self, service: &str) -> Option<&History> {
        self.services.get(service)
    }

    /// Makes `svc` (with `image_id`) the service's current revision: a kept revision
    /// with the same hash keeps its number, anything else is numbered next. Returns
    /// the revision's number and the one it replaces as current (`None` for a new
    /// service).
    pub fn apply(
        &mut self,
        svc: &Service,
        image_id: Option<&str>,
        cause: &str,
        now_unix: u64,
    ) -> (u32, Option<u32>) {
        let hash = self.hash_of(svc, image_id);
        let h = self.services.entry(svc.name.clone()).or_default();
        let before = (h.current != 0).then_some(h.current);
        let number = match h.revisions.iter_mut().find(|r| r.hash == hash) {
            Some(r) => {
                // The same containers, maybe other settings (update policy, x-shoal).
                r.service = svc.clone();
                r.number
            }
            None => {
                let number = h.revisions.iter().map(|r| r.number).max().unwrap_or(0) + 1;
                h.revisions.push(Revision {
                    number,
                    hash,
                    image_id: image_id.map(str::to_string),
                    applied_at: now_unix,
                    cause: cause.to_string(),
                    service: svc.clone(),
                });
                number
            }
        };
        h.current = number;
        while h.revisions.len() > KEPT {
            let Some(i) = h.revisions.iter().position(|r| r.number != number) else {
                break;
            };
            h.revisions.remove(i);
        }
        (number, before)
    }

    /// Makes the kept revision `number` the service's current one.
    pub fn set_current(&mut self, service: &str, number: u32) {
        if let Some(h) = self.services.get_mut(service) {
            h.current = number;
        }
    }

    /// Sets the service's rollout record.
    pub fn set_rollout(&mut self, service: &str, record: Option<RolloutRecord>) {
        self.services
            .entry(service.to_string())
            .or_default()
            .rollout = record;
    }

    /// Forgets services the project no longer has.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.services.retain(|name, _| keep(name));
    }

    /// Writes the file (a temporary file renamed over the old one).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.services)?)?;
        std::fs::rename(&tmp, path)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(env: &str) -> Service {
        let mut s = Service {
            name: "web".into(),
            image: "web".into(),
            ..Service::default()
        };
        s.environment.insert("V".into(), Some(env.into()));
        s
    }

    #[test]
    fn numbers_new_hashes_and_keeps_ten() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Revisions::load(dir.path()).unwrap();
        assert_eq!(r.apply(&svc("1"), Some("sha256:a"), "up", 1), (1, None));
        assert_eq!(r.apply(&svc("2"), Some("sha256:a"), "up", 2), (2, Some(1)));
        // The same service on a rebuilt image is a new revision.
        assert_eq!(r.apply(&svc("2"), Some("sha256:b"), "up", 3), (3, Some(2)));
        // Going back to a kept configuration finds its number.
        assert_eq!(
            r.apply(&svc("1"), Some("sha256:a"), "undo", 4),
            (1, Some(3))
        );
        for i in 10..30 {
            r.apply(&svc(&i.to_string()), None, "up", i);
        }
        r.save().unwrap();
        let again = Revisions::load(dir.path()).unwrap();
        let h = again.of("web").unwrap();
        assert_eq!(h.revisions.len(), KEPT);
        assert_eq!(h.current, 23);
        assert_eq!(h.current().unwrap().service.name, "web");
        assert_eq!(
            h.current().unwrap().service.environment["V"].as_deref(),
            Some("29")
        );
    }
}

//! Replica counts: the one a service should run ([`desired_count`]), and those set with
//! `shoal scale` or the autoscaler; and the services `shoal stop` stopped and `shoal
//! pause` paused. Kept in the state directory (`desired.json`, `stopped.json`,
//! `paused.json`) so that they survive a
//! control-plane restart. Written atomically: a temporary file renamed over the old
//! one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use shoal_spec::Service;

/// Counts set by hand, by service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    path: PathBuf,
    /// Service name to replica count.
    pub counts: BTreeMap<String, u32>,
    /// Services stopped by `shoal stop`, until `shoal start` or `up`.
    pub stopped: BTreeSet<String>,
    /// Services paused by `shoal pause`, until `shoal unpause`.
    pub paused: BTreeSet<String>,
}

impl Desired {
    /// Reads `desired.json` in `state_dir`; missing means no overrides.
    pub fn load(state_dir: &Path) -> std::io::Result<Desired> {
        let path = state_dir.join("desired.json");
        Ok(Desired {
            counts: read(&path)?,
            stopped: read(&state_dir.join("stopped.json"))?,
            paused: read(&state_dir.join("paused.json"))?,
            path,
        })
    }

    /// Sets counts and writes the file.
    pub fn set(&mut self, counts: &BTreeMap<String, u32>) -> std::io::Result<()> {
        self.counts
            .extend(counts.iter().map(|(k, v)| (k.clone(), *v)));
        write(&self.path, &self.counts)
    }

    /// Marks services stopped (`stopped`) or not, and writes the file.
    pub fn set_stopped(&mut self, services: &[String], stopped: bool) -> std::io::Result<()> {
        mark(&mut self.stopped, services, stopped);
        write(&self.path.with_file_name("stopped.json"), &self.stopped)
    }

    /// Marks services paused (`paused`) or not, and writes the file.
    pub fn set_paused(&mut self, services: &[String], paused: bool) -> std::io::Result<()> {
        mark(&mut self.paused, services, paused);
        write(&self.path.with_file_name("paused.json"), &self.paused)
    }
}

fn mark(set: &mut BTreeSet<String>, services: &[String], on: bool) {
    for s in services {
        if on {
            set.insert(s.clone());
        } else {
            set.remove(s);
        }
    }
}

/// A JSON file's value; the default when the file is missing.
fn read<T: serde::de::DeserializeOwned + Default>(path: &Path) -> std::io::Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Writes `value` to `path` atomically.
fn write(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(&tmp, path)
}

/// The replica count a service should run: a `shoal scale` override, else the file's.
pub fn desired_count(svc: &Service, overrides: &BTreeMap<String, u32>) -> u32 {
    let n = overrides
        .get(&svc.name)
        .copied()
        .unwrap_or(svc.deploy.replicas);
    match &svc.x_shoal.autoscale {
        // An autoscaled service stays within its bounds, whatever was set before.
        Some(a) => n.clamp(a.min, a.max.max(a.min)),
        None => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Desired::load(dir.path()).unwrap();
        assert!(d.counts.is_empty());
        d.set(&BTreeMap::from([("web".to_string(), 5)])).unwrap();
        d.set(&BTreeMap::from([("api".to_string(), 2)])).unwrap();
        d.set_stopped(&["web".to_string(), "api".to_string()], true)
            .unwrap();
        d.set_stopped(&["api".to_string()], false).unwrap();
        let again = Desired::load(dir.path()).unwrap();
        assert_eq!(again.counts.get("web"), Some(&5));
        assert_eq!(again.counts.get("api"), Some(&2));
        assert_eq!(again.stopped, BTreeSet::from(["web".to_string()]));
    }
}

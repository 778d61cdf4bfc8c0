//! Typing: from the merged YAML tree to the model, collecting every error on the way.

use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;

use crate::error::SpecError;
use crate::model::{FileObject, Network, Volume};
use crate::syntax;
use crate::yaml::{Key, Node, Value};

/// Conversion context: where relative paths start, and what has gone wrong so far.
pub(crate) struct Cx<'a> {
    pub dir: &'a Path,
    pub project: &'a str,
    pub errors: Vec<SpecError>,
    pub warnings: Vec<String>,
}

/// `a.b` from `a` and `b`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Cx<'_> {
    pub fn error(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.errors
            .push(SpecError::new(node.mark.clone(), path, message));
    }

    pub fn error_hint(
        &mut self,
        node: &Node,
        path: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.errors
            .push(SpecError::new(node.mark.clone(), path, message).hint(hint));
    }

    fn expected(&mut self, node: &Node, path: &str, what: &str) {
        let message = format!("expected {what}, found {}", node.kind());
        self.error(node, path, message);
    }

    /// The entries of a mapping whose keys must be among `known` (or start with `x-`),
    /// for shoal's own `x-shoal` sections. Reports unknown keys with the closest known
    /// one.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
    ) -> Option<&'n [(Key, Node)]> {
        if node.is_null() {
            return Some(&[]);
        }
        let Some(entries) = node.as_map() else {
            self.expected(node, path, "a mapping");
            return None;
        };
        for (k, _) in entries {
            if k.name.starts_with("x-") || known.contains(&k.name.as_str()) {
                continue;
            }
            let mut e = SpecError::new(k.mark.clone(), path, format!("unknown key `{}`", k.name));
            if let Some(best) = closest(&k.name, known) {
                e = e.hint(format!("did you mean `{best}`?"));
            } else {
                e = e.hint(format!("allowed here: {}", known.join(", ")));
            }
            self.errors.push(e);
        }
        Some(entries)
    }

    /// The entries of a mapping of the specification (null is empty): its keys were
    /// checked with its shape.
    pub fn entries<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [(Key, Node)]> {
        if node.is_null() {
            return Some(&[]);
        }
        let entries = node.as_map();
        if entries.is_none() {
            self.expected(node, path, "a mapping");
        }
        entries
    }

    /// A non-null scalar as text.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    pub fn int(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        let text = self.string(node, path)?;
        match text.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.error(node, path, format!("{n} is out of range {min}..={max}"));
                None
            }
            Err(_) => {
                self.error(
                    node,
                    path,
                    format!("expected a whole number, found `{text}`"),
                );
                None
            }
        }
    }

    /// A number.
    pub fn float(&mut self, node: &Node, path: &str) -> Option<f64> {
        let text = self.string(node, path)?;
        match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Some(n),
            _ => {
                self.error(node, path, format!("expected a number, found `{text}`"));
                None
            }
        }
    }

    /// `true` or `false` (YAML 1.1's `yes`/`no` too, as Compose files use them).
    pub fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        let text = self.string(node, path)?;
        match text.as_str() {
            "true" | "True" | "TRUE" | "yes" | "Yes" | "on" => Some(true),
            "false" | "False" | "FALSE" | "no" | "No" | "off" => Some(false),
            _ => {
                self.error(
                    node,
                    path,
                    format!("expected true or false, found `{text}`"),
                );
                None
            }
        }
    }

    /// A duration such as `1m30s`.
    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let text = self.string(node, path)?;
        match syntax::duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error_hint(node, path, e, "durations look like 1m30s, 10s or 500ms");
                None
            }
        }
    }

    /// A byte size such as `512M`.
    pub fn bytes(&mut self, node: &Node, path: &str) -> Option<u64> {
        let text = self.string(node, path)?;
        match syntax::bytes(&text) {
            Ok(b) => Some(b),
            Err(e) => {
                self.error_hint(node, path, e, "sizes look like 512M or 1G");
                None
            }
        }
    }

    /// A sequence of strings.
    pub fn strings(&mut self, node: &Node, path: &str) -> Vec<String> {
        let Some(items) = node.as_seq() else {
            self.expected(node, path, "a sequence of strings");
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.string(item, &format!("{path}[{i}]")))
            .collect()
    }

    /// A command: a list, or a string split the way a shell would.
    pub fn command(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        if node.is_null() {
            return None;
        }
        if node.as_seq().is_some() {
            return Some(self.strings(node, path));
        }
        let text = self.string(node, path)?;
        match shell_words::split(&text) {
            Ok(words) => Some(words),
            Err(e) => {
                self.error_hint(
                    node,
                    path,
                    format!("cannot split command: {e}"),
                    "check the quotes, or write the command as a list",
                );
                None
            }
        }
    }

    /// A mapping of names to optional strings, or a list of `NAME=value` / `NAME`.
    pub fn dict(&mut self, node: &Node, path: &str) -> IndexMap<String, Option<String>> {
        let mut out = IndexMap::new();
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let value = match &v.value {
                        _ if v.is_null() => None,
                        Value::Scalar { text, .. } => Some(text.clone()),
                        _ => {
                            self.expected(v, &join(path, &k.name), "a string, number or boolean");
                            continue;
                        }
                    };
                    out.insert(k.name.clone(), value);
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let Some(text) = self.string(item, &format!("{path}[{i}]")) else {
                        continue;
                    };
                    match text.split_once('=') {
                        Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                        None => out.insert(text, None),
                    };
                }
            }
            _ if node.is_null() => {}
            _ => self.expected(node, path, "a mapping or a list of NAME=value"),
        }
        out
    }

    /// Like [`Cx::dict`], with unset entries dropped (labels, build args).
    pub fn labels(&mut self, node: &Node, path: &str) -> IndexMap<String, String> {
        self.dict(node, path)
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    }

    // === top-level objects ===

    pub fn networks(&mut self, node: Option<&Node>) -> IndexMap<String, Network> {
        let mut out = IndexMap::new();
        let Some(node) = node else { return out };
        if node.is_null() {
            return out;
        }
        let Some(entries) = node.as_map() else {
            self.expected(node, "networks", "a mapping of network names");
            return out;
        };
        for (k, v) in entries {
            let path = join("networks", &k.name);
            let Some(fields) = self.entries(v, &path) else {
                continue;
            };
            let mut net = Network::default();
            let (mut name, mut ext_name) = (None, None);
            for (fk, fv) in fields {
                let fpath = join(&path, &fk.name);
                match fk.name.as_str() {
                    "name" => name = self.string(fv, &fpath),
                    "external" => net.external = self.external(fv, &fpath, &mut ext_name),
                    "driver" => net.driver = self.string(fv, &fpath),
                    "internal" => net.internal = self.bool(fv, &fpath).unwrap_or(false),
                    "labels" => net.labels = self.labels(fv, &fpath),
                    other if other.starts_with("x-") => {}
                    other => {
                        net.other.insert(other.to_string(), fv.to_json());
                    }
                }
            }
            self.external_conflicts(v, &path, net.external);
            let name = self.either_name(v, &path, name, ext_name);
            net.name = self.object_name(&k.name, name, net.external);
            out.insert(k.name.clone(), net);
        }
        out
    }

    pub fn volumes(&mut self, node: Option<&Node>) -> IndexMap<String, Volume> {
        let mut out = IndexMap::new();
        let Some(node) = node else { return out };
        if node.is_null() {
            return out;
        }
        let Some(entries) = node.as_map() else {
            self.expected(node, "volumes", "a mapping of volume names");
            return out;
        };
        for (k, v) in entries {
            let path = join("volumes", &k.name);
            let Some(fields) = self.entries(v, &path) else {
                continue;
            };
            let mut vol = Volume::default();
            let (mut name, mut ext_name) = (None, None);
            for (fk, fv) in fields {
                let fpath = join(&path, &fk.name);
                match fk.name.as_str() {
                    "name" => name = self.string(fv, &fpath),
                    "external" => vol.external = self.external(fv, &fpath, &mut ext_name),
                    "driver" => vol.driver = self.string(fv, &fpath),
                    "driver_opts" => vol.driver_opts = self.labels(fv, &fpath),
                    "labels" => vol.labels = self.labels(fv, &fpath),
                    _ => {}
                }
            }
            self.external_conflicts(v, &path, vol.external);
            let name = self.either_name(v, &path, name, ext_name);
            vol.name = self.object_name(&k.name, name, vol.external);
            out.insert(k.name.clone(), vol);
        }
        out
    }

    pub fn file_objects(
        &mut self,
        node: Option<&Node>,
        kind: &str,
    ) -> IndexMap<String, FileObject> {
        let mut out = IndexMap::new();
        let Some(node) = node else { return out };
        if node.is_null() {
            return out;
        }
        let Some(entries) = node.as_map() else {
            self.expected(node, kind, "a mapping");
            return out;
        };
        for (k, v) in entries {
            let path = join(kind, &k.name);
            let Some(fields) = self.entries(v, &path) else {
                continue;
            };
            let mut obj = FileObject::default();
            let (mut name, mut ext_name) = (None, None);
            for (fk, fv) in fields {
                let fpath = join(&path, &fk.name);
                match fk.name.as_str() {
                    "name" => name = self.string(fv, &fpath),
                    "external" => obj.external = self.external(fv, &fpath, &mut ext_name),
                    "file" => {
                        obj.file = self
                            .string(fv, &fpath)
                            .map(|f| syntax::host_path(&f, self.dir))
                    }
                    "content" => obj.content = self.string(fv, &fpath),
                    "environment" => obj.environment = self.string(fv, &fpath),
                    _ => {}
                }
            }
            let sources = [&obj.file, &obj.content, &obj.environment]
                .iter()
                .filter(|s| s.is_some())
                .count();
            let driver = v.get("driver").and_then(Node::as_str);
            if sources > 1 {
                self.error_hint(
                    v,
                    &path,
                    format!("{kind} `{}` has more than one source", k.name),
                    "`file`, `environment` and `content` exclude each other: keep one",
                );
            } else if let (0, Some(driver)) = (sources, driver) {
                self.warnings.push(format!(
                    "{kind} `{}` comes from driver `{driver}`, which shoal does not run: it is not mounted",
                    k.name
                ));
            } else if sources == 0 && !obj.external {
                self.error_hint(
                    v,
                    &path,
                    format!("{kind} `{}` has no source", k.name),
                    "give it `file:`, `environment:`".to_string()
                        + if kind == "configs" {
                            ", `content:`"
                        } else {
                            ""
                        }
                        + " or `external: true`",
                );
            }
            let name = self.either_name(v, &path, name, ext_name);
            obj.name = self.object_name(&k.name, name, obj.external);
            out.insert(k.name.clone(), obj);
        }
        out
    }

    /// `external: true`, or the legacy `external: {name: x}`.
    fn external(&mut self, node: &Node, path: &str, name: &mut Option<String>) -> bool {
        if let Some(n) = node.get("name") {
            *name = self.string(n, &join(path, "name"));
            return true;
        }
        self.bool(node, path).unwrap_or(false)
    }

    /// The object's name from `name:` and the legacy `external.name`, which must agree.
    fn either_name(
        &mut self,
        node: &Node,
        path: &str,
        name: Option<String>,
        external: Option<String>,
    ) -> Option<String> {
        match (name, external) {
            (Some(mine), Some(theirs)) if mine != theirs => {
                let at = node.get("external").unwrap_or(node);
                self.error_hint(
                    at,
                    &join(path, "external"),
                    format!("`external.name` is `{theirs}` but `name` is `{mine}`"),
                    "write only `name:` beside `external: true`",
                );
                Some(mine)
            }
            (name, external) => name.or(external),
        }
    }

    /// An external network or volume is made elsewhere: nothing here may say how.
    fn external_conflicts(&mut self, node: &Node, path: &str, external: bool) {
        if !external {
            return;
        }
        for key in ["driver", "driver_opts", "labels"] {
            if let Some(v) = node.get(key) {
                self.error_hint(
                    v,
                    &join(path, key),
                    format!("`{key}` cannot be set on an external object"),
                    format!("remove `{key}`, or `external: true` to let shoal create it"),
                );
            }
        }
    }

    fn object_name(&self, key: &str, name: Option<String>, external: bool) -> String {
        match name {
            Some(n) => n,
            None if external => key.to_string(),
            None => format!("{}_{key}", self.project),
        }
    }
}

/// The known word closest to `word`, if any is close enough to be a likely typo.
pub(crate) fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

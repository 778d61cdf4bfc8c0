//! The loading pipeline: find the files, read the environment, parse, interpolate,
//! merge, resolve `extends`, apply profiles, type, validate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use crate::convert::{closest, join, Cx};
use crate::error::{LoadError, SpecError};
use crate::interpolate::interpolate_node;
use crate::merge::{merge_files, merge_service};
use crate::model::Project;
use crate::yaml::{self, Mark, Node, Value};
use crate::{dotenv, shape, validate};

/// File names tried, in order, when no `-f` is given.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

const OVERRIDE_FILES: &[&str] = &[
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// What the user asked for on the command line, plus the environment.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `-f` files, in order; empty to discover.
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_dir: Option<PathBuf>,
    /// `--env-file` files, replacing `.env`.
    pub env_files: Vec<PathBuf>,
    /// `--profile`.
    pub profiles: Vec<String>,
    /// Where discovery starts (the current directory).
    pub working_dir: PathBuf,
    /// The shell environment. It wins over `.env`.
    pub environ: HashMap<String, String>,
}

impl Options {
    /// Options for the current process: its directory and environment.
    pub fn from_process() -> Options {
        Options {
            working_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            environ: std::env::vars().collect(),
            ..Options::default()
        }
    }
}

/// A loaded project and what was worth a warning.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The project.
    pub project: Project,
    /// Non-fatal findings (unset variables, obsolete keys, keys shoal ignores).
    pub warnings: Vec<String>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Where each node below `services` was written, by its path
    /// (`services.web.volumes[0]`), for findings about the typed project.
    pub marks: HashMap<String, Mark>,
}

impl Loaded {
    /// `file:line:col` of the node at `path`, or of the closest node above it.
    pub fn at(&self, path: &str) -> String {
        let mut p = path;
        loop {
            if let Some(m) = self.marks.get(p) {
                return m.to_string();
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => {
                    return self
                        .files
                        .first()
                        .map(|f| f.display().to_string())
                        .unwrap_or_default()
                }
            }
        }
    }
}

/// Records the mark of every node below `node`, by path.
fn record_marks(node: &Node, path: &str, marks: &mut HashMap<String, Mark>) {
    marks.insert(path.to_string(), node.mark.clone());
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                record_marks(v, &join(path, &k.name), marks);
            }
        }
        Value::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                record_marks(v, &format!("{path}[{i}]"), marks);
            }
        }
        Value::Scalar { .. } => {}
    }
}

/// Loads the project the options describe.
pub fn load(opts: &Options) -> Result<Loaded, LoadError> {
    let files = compose_files(opts)?;
    let dir = match &opts.project_dir {
        Some(d) => absolute(&opts.working_dir, d),
        None => files[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.working_dir.clone()),
    };

    // Variables: the shell wins over .env (or --env-file).
    let mut dotenv_vars: IndexMap<String, String> = IndexMap::new();
    let env_files: Vec<(PathBuf, bool)> = if opts.env_files.is_empty() {
        vec![(dir.join(".env"), false)]
    } else {
        opts.env_files
            .iter()
            .map(|f| (absolute(&opts.working_dir, f), true))
            .collect()
    };
    for (path, required) in env_files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(source) => {
                return Err(LoadError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let shell = |name: &str| opts.environ.get(name).cloned();
        let name: Arc<str> = Arc::from(path.display().to_string());
        dotenv_vars.extend(dotenv::parse(&name, &text, &shell)?);
    }
    let vars = |name: &str| {
        opts.environ
            .get(name)
            .or_else(|| dotenv_vars.get(name))
            .cloned()
    };

    // Parse, interpolate and check each document of each file, then merge them in
    // order.
    let mut warnings = Vec::new();
    let mut unset = Vec::new();
    let mut root: Option<Node> = None;
    // Shape errors first: at a position both steps find wrong, the shape's is kept.
    let mut errors = Vec::new();
    for file in &files {
        let node = read_checked(file, &opts.working_dir, &vars, &mut unset, &mut errors)?;
        match &mut root {
            None => root = Some(node),
            Some(r) => merge_files(r, node),
        }
    }
    let mut root = root.expect("at least one file");
    for name in unset {
        warnings.push(format!("variable {name} is not set: using an empty string"));
    }

    if let Some(inc) = root.get("include") {
        errors.push(
            SpecError::new(
                inc.mark.clone(),
                "include",
                "`include` is not supported by shoal yet",
            )
            .hint("name the files with several -f flags instead: they are merged in order"),
        );
    }
    if root.get("models").is_some() {
        warnings.push("the top-level `models` is ignored by shoal".into());
    }
    if root.get("version").is_some() {
        warnings.push("the top-level `version` is obsolete and ignored".into());
    }

    let name = project_name(opts, &vars, &root, &dir)?;

    // extends
    if let Some(Value::Map(services)) = root.get("services").map(|s| s.value.clone()) {
        let mut resolved = services.clone();
        for (k, _) in &services {
            if let Err(e) = resolve_extends(&k.name, &mut resolved, &mut Vec::new(), opts, &vars) {
                errors.push(e);
            }
        }
        root.set(
            "services",
            Node {
                value: Value::Map(resolved),
                mark: root.get("services").expect("present").mark.clone(),
                tag: None,
            },
        );
    }

    let mut cx = Cx {
        dir: &dir,
        project: &name,
        errors,
        warnings: Vec::new(),
    };
    let services_node = root.get("services").cloned();
    let mut marks = HashMap::new();
    if let Some(n) = &services_node {
        record_marks(n, "services", &mut marks);
    }
    let mut services = IndexMap::new();
    match &services_node {
        None => {}
        Some(n) if n.is_null() => {}
        Some(n) => match n.as_map() {
            Some(entries) => {
                for (k, v) in entries {
                    if let Some(svc) = cx.service(k, v, &vars) {
                        services.insert(k.name.clone(), svc);
                    }
                }
            }
            None => cx.error(
                n,
                "services",
                format!("expected a mapping of services, found {}", n.kind()),
            ),
        },
    }
    let networks = cx.networks(root.get("networks"));
    let volumes = cx.volumes(root.get("volumes"));
    let secrets = cx.file_objects(root.get("secrets"), "secrets");
    let configs = cx.file_objects(root.get("configs"), "configs");
    let x_shoal = cx.project_x_shoal(root.get("x-shoal"));
    let mut errors = std::mem::take(&mut cx.errors);
    warnings.append(&mut cx.warnings);

    // Profiles: a service with profiles runs only when one of them is active.
    let mut active: Vec<String> = opts.profiles.clone();
    if let Some(p) = vars("COMPOSE_PROFILES") {
        active.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }
    let all = active.iter().any(|p| p == "*");
    let (services, disabled): (IndexMap<_, _>, IndexMap<_, _>) =
        services.into_iter().partition(|(_, s)| {
            all || s.profiles.is_empty() || s.profiles.iter().any(|p| active.contains(p))
        });

    let mut project = Project {
        name,
        dir,
        services,
        networks,
        volumes,
        secrets,
        configs,
        x_shoal,
    };
    let root_services = services_node.unwrap_or_else(|| Node::map(root.mark.clone()));
    validate::check(
        &mut project,
        &disabled,
        &root_services,
        &mut errors,
        &mut warnings,
    );
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok(Loaded {
        project,
        warnings,
        files,
        marks,
    })
}

/// Every error, in the order of the files and positions; one per position, the first
/// found there.
fn invalid(mut errors: Vec<SpecError>) -> LoadError {
    errors.sort_by(|a, b| {
        (a.mark.file.as_ref(), a.mark.line, a.mark.col).cmp(&(
            b.mark.file.as_ref(),
            b.mark.line,
            b.mark.col,
        ))
    });
    errors.dedup_by(|later, first| later.mark == first.mark);
    LoadError::Invalid(errors)
}

/// A file in the legacy format (version 1) has its services at the top level.
fn legacy_format(root: &Node) -> Option<SpecError> {
    if root.get("services").is_some() {
        return None;
    }
    let (k, _) = root.as_map()?.iter().find(|(k, v)| {
        !shape::is_top_key(&k.name) && v.get("image").or_else(|| v.get("build")).is_some()
    })?;
    Some(
        SpecError::new(
            k.mark.clone(),
            k.name.clone(),
            format!(
                "`{}` looks like a service in the legacy Compose file format (version 1), with services at the top level",
                k.name
            ),
        )
        .hint("move the services under a top-level `services:` key (docker compose v2 refuses this format too)"),
    )
}

/// Which files to read: `-f`, else `COMPOSE_FILE`, else the first default name found
/// in the working directory or a parent, plus its override file.
fn compose_files(opts: &Options) -> Result<Vec<PathBuf>, LoadError> {
    if !opts.files.is_empty() {
        return Ok(opts
            .files
            .iter()
            .map(|f| absolute(&opts.working_dir, f))
            .collect());
    }
    if let Some(list) = opts.environ.get("COMPOSE_FILE").filter(|l| !l.is_empty()) {
        let sep = opts
            .environ
            .get("COMPOSE_PATH_SEPARATOR")
            .map(String::as_str)
            .unwrap_or(":");
        return Ok(list
            .split(sep)
            .map(|f| absolute(&opts.working_dir, Path::new(f)))
            .collect());
    }
    let mut dir = Some(opts.working_dir.as_path());
    while let Some(d) = dir {
        if let Some(main) = DEFAULT_FILES
            .iter()
            .map(|f| d.join(f))
            .find(|p| p.is_file())
        {
            let mut files = vec![main];
            if let Some(o) = OVERRIDE_FILES
                .iter()
                .map(|f| d.join(f))
                .find(|p| p.is_file())
            {
                files.push(o);
            }
            return Ok(files);
        }
        dir = d.parent();
    }
    Err(LoadError::NotFound {
        dir: opts.working_dir.display().to_string(),
    })
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        PathBuf::from(crate::syntax::host_path(&p.to_string_lossy(), base))
    }
}

/// Reads one file, interpolates it and checks its shape, adding what is wrong to
/// `errors`: its documents merged in order, as Compose merges them.
fn read_checked(
    file: &Path,
    working_dir: &Path,
    vars: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    errors: &mut Vec<SpecError>,
) -> Result<Node, LoadError> {
    let mut merged: Option<Node> = None;
    for mut node in read_yaml(file, working_dir)? {
        interpolate_node(&mut node, "", &vars, unset)?;
        if node.as_map().is_none() {
            return Err(SpecError::new(
                node.mark.clone(),
                "",
                format!(
                    "expected a mapping at the top of the file, found {}",
                    node.kind()
                ),
            )
            .hint("a Compose file starts with `services:`")
            .into());
        }
        if let Some(e) = legacy_format(&node) {
            return Err(e.into());
        }
        shape::check(&node, errors);
        match &mut merged {
            None => merged = Some(node),
            Some(m) => merge_files(m, node),
        }
    }
    Ok(merged.expect("a file has at least one document"))
}

/// Reads and parses one file; errors name it as the user would (relative to the
/// working directory when it is below it).
fn read_yaml(file: &Path, working_dir: &Path) -> Result<Vec<Node>, LoadError> {
    let text = std::fs::read_to_string(file).map_err(|source| LoadError::Read {
        path: file.display().to_string(),
        source,
    })?;
    let shown = file.strip_prefix(working_dir).unwrap_or(file);
    let name: Arc<str> = Arc::from(shown.display().to_string());
    Ok(yaml::documents(&name, &text)?)
}

/// `-p`, then `COMPOSE_PROJECT_NAME`, then top-level `name:`, then the directory.
fn project_name(
    opts: &Options,
    vars: &dyn Fn(&str) -> Option<String>,
    root: &Node,
    dir: &Path,
) -> Result<String, LoadError> {
    if let Some(n) = &opts.project_name {
        return check_name(n).map_err(|m| {
            LoadError::Invalid(vec![SpecError::new(root.mark.clone(), "", m).hint(
                "pass a name with -p made of lowercase letters, digits, `-` and `_`",
            )])
        });
    }
    if let Some(n) = vars("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
        return check_name(&n).map_err(|m| {
            LoadError::Invalid(vec![SpecError::new(
                root.mark.clone(),
                "",
                format!("COMPOSE_PROJECT_NAME: {m}"),
            )])
        });
    }
    if let Some(node) = root.get("name") {
        let n = node.as_str().unwrap_or_default();
        return check_name(n).map_err(|m| {
            SpecError::new(node.mark.clone(), "name", m)
                .hint("lowercase letters, digits, `-` and `_`, starting with a letter or digit")
                .into()
        });
    }
    let base = dir
        .file_name()
        .map(|b| b.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    let cleaned = cleaned.trim_start_matches(['-', '_']).to_string();
    if cleaned.is_empty() {
        return Err(SpecError::new(
            root.mark.clone(),
            "",
            format!(
                "cannot make a project name from the directory {}",
                dir.display()
            ),
        )
        .hint("set `name:` in the file or pass -p")
        .into());
    }
    Ok(cleaned)
}

fn check_name(n: &str) -> Result<String, String> {
    let ok = !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && n.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(n.to_string())
    } else {
        Err(format!("`{n}` is not a valid project name"))
    }
}

/// Replaces `services[name]` by the result of applying its `extends` chain.
fn resolve_extends(
    name: &str,
    services: &mut Vec<(yaml::Key, Node)>,
    stack: &mut Vec<String>,
    opts: &Options,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<(), SpecError> {
    let Some(at) = services.iter().position(|(k, _)| k.name == name) else {
        return Ok(());
    };
    let node = services[at].1.clone();
    let Some(ext) = node.get("extends").cloned() else {
        return Ok(());
    };
    let path = format!("services.{name}.extends");
    if stack.iter().any(|s| s == name) {
        return Err(SpecError::new(
            ext.mark.clone(),
            path,
            format!("`extends` cycle: {} -> {name}", stack.join(" -> ")),
        ));
    }
    let (base_name, file) = match (&ext.value, ext.as_str()) {
        (_, Some(s)) => (s.to_string(), None),
        (Value::Map(_), _) => {
            let svc = ext.get("service").and_then(Node::as_str).ok_or_else(|| {
                SpecError::new(ext.mark.clone(), path.clone(), "`extends` needs `service`")
                    .hint("extends: {service: base, file: common.yaml}")
            })?;
            (
                svc.to_string(),
                ext.get("file").and_then(Node::as_str).map(String::from),
            )
        }
        _ => {
            return Err(SpecError::new(
                ext.mark.clone(),
                path,
                "expected a service name or a mapping with `service`",
            ))
        }
    };
    let base = match file {
        None => {
            if !services.iter().any(|(k, _)| k.name == base_name) {
                let names: Vec<&str> = services.iter().map(|(k, _)| k.name.as_str()).collect();
                let mut e = SpecError::new(
                    ext.mark.clone(),
                    path,
                    format!("`{name}` extends undefined service `{base_name}`"),
                );
                if let Some(best) = closest(&base_name, &names) {
                    e = e.hint(format!("did you mean `{best}`?"));
                }
                return Err(e);
            }
            stack.push(name.to_string());
            resolve_extends(&base_name, services, stack, opts, vars)?;
            stack.pop();
            services
                .iter()
                .find(|(k, _)| k.name == base_name)
                .expect("checked")
                .1
                .clone()
        }
        Some(file) => {
            // Relative to the file that holds the `extends`.
            let here = opts.working_dir.join(ext.mark.file.as_ref());
            let here_dir = here.parent().unwrap_or(&opts.working_dir).to_path_buf();
            let other = absolute(&here_dir, Path::new(&file));
            let mut unset = Vec::new();
            let mut errors = Vec::new();
            let doc = read_checked(&other, &opts.working_dir, &vars, &mut unset, &mut errors)
                .map_err(|e| match e {
                    LoadError::Invalid(mut v) => v.remove(0),
                    other_err => {
                        SpecError::new(ext.mark.clone(), path.clone(), other_err.to_string())
                    }
                })?;
            if let Some(e) = errors.into_iter().next() {
                return Err(e);
            }
            let mut theirs: Vec<(yaml::Key, Node)> = doc
                .get("services")
                .and_then(Node::as_map)
                .map(<[_]>::to_vec)
                .unwrap_or_default();
            if !theirs.iter().any(|(k, _)| k.name == base_name) {
                return Err(SpecError::new(
                    ext.mark.clone(),
                    path,
                    format!("service `{base_name}` not found in {file}"),
                ));
            }
            stack.push(name.to_string());
            resolve_extends(&base_name, &mut theirs, stack, opts, vars)?;
            stack.pop();
            let mut base = theirs
                .into_iter()
                .find(|(k, _)| k.name == base_name)
                .expect("checked")
                .1;
            let other_dir = other.parent().unwrap_or(&here_dir).to_path_buf();
            rebase_paths(&mut base, &other_dir);
            base
        }
    };
    let mut merged = base;
    merged.remove("extends");
    let mut own = node;
    own.remove("extends");
    merge_service(&mut merged, own);
    services[at].1 = merged;
    Ok(())
}

/// Makes the relative paths of a service taken from another directory absolute.
fn rebase_paths(svc: &mut Node, dir: &Path) {
    let fix = |n: &mut Node| {
        if let Value::Scalar { text, .. } = &mut n.value {
            if text.starts_with('.') {
                *text = crate::syntax::host_path(text, dir);
            }
        }
    };
    if let Some(b) = svc.get_mut("build") {
        if b.as_map().is_some() {
            if let Some(c) = b.get_mut("context") {
                fix(c);
            }
        } else {
            fix(b);
        }
    }
    if let Some(e) = svc.get_mut("env_file") {
        match &mut e.value {
            Value::Seq(items) => items.iter_mut().for_each(fix),
            _ => fix(e),
        }
    }
    if let Some(Value::Seq(items)) = svc.get_mut("volumes").map(|v| &mut v.value) {
        for item in items {
            if let Value::Scalar { text, .. } = &mut item.value {
                if text.starts_with('.') {
                    if let Some((src, rest)) = text.split_once(':') {
                        *text = format!("{}:{rest}", crate::syntax::host_path(src, dir));
                    }
                }
            }
        }
    }
}

/// `path` joined, for callers that build YAML paths.
pub(crate) fn service_path(name: &str, key: &str) -> String {
    join(&join("services", name), key)
}

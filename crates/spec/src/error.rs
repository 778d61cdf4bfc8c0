//! Errors of the loader: each one points at a file, line and column.

use std::fmt;

use crate::yaml::Mark;

/// One problem found in a Compose file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// Where the offending node starts.
    pub mark: Mark,
    /// The YAML path of the node, such as `services.web.ports[0]`; empty at the root.
    pub path: String,
    /// What is wrong, and what was expected.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
}

impl SpecError {
    /// An error at `mark` for the node at `path`.
    pub fn new(mark: Mark, path: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            mark,
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> SpecError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.mark)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything that stopped a project from loading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The Compose files have mistakes; every one found is listed.
    #[error("{}", render(.0))]
    Invalid(Vec<SpecError>),
    /// No Compose file was named and none was found.
    #[error("no Compose file found in {dir} or its parents\n  hint: create compose.yaml there, or name one with -f")]
    NotFound {
        /// Where the search started.
        dir: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<SpecError> for LoadError {
    fn from(e: SpecError) -> LoadError {
        LoadError::Invalid(vec![e])
    }
}

fn render(errors: &[SpecError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&e.to_string());
    }
    out
}

//! `${VAR}` interpolation, as the Compose Specification defines it.
//!
//! Applies to values only, never to keys; runs on each file before files are merged.

use crate::error::SpecError;
use crate::yaml::{Node, Value};

/// Looks a variable up: `None` when unset.
pub trait Lookup {
    /// The variable's value.
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Interpolates every scalar value below `node`. Unset variables become empty strings
/// and their names are added to `unset`.
pub fn interpolate_node(
    node: &mut Node,
    path: &str,
    vars: &dyn Lookup,
    unset: &mut Vec<String>,
) -> Result<(), SpecError> {
    match &mut node.value {
        Value::Scalar { text, quoted } => {
            if text.contains('$') {
                // The result is a string, even when it came out empty.
                *quoted = true;
                *text = interpolate(text, vars, unset).map_err(|(message, hint)| {
                    SpecError::new(node.mark.clone(), path, message).hint(hint)
                })?;
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_node(item, &format!("{path}[{i}]"), vars, unset)?;
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let child = if path.is_empty() {
                    k.name.clone()
                } else {
                    format!("{path}.{}", k.name)
                };
                interpolate_node(v, &child, vars, unset)?;
            }
        }
    }
    Ok(())
}

type Failure = (String, String);

/// Interpolates one string.
pub fn interpolate(
    input: &str,
    vars: &dyn Lookup,
    unset: &mut Vec<String>,
) -> Result<String, Failure> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).ok_or_else(|| {
                (
                    format!("unclosed `${{` in {input:?}"),
                    "close it with `}`, or write `$$` for a literal `$`".to_string(),
                )
            })?;
            out.push_str(&braced(&body[..end], input, vars, unset)?);
            rest = &body[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                return Err((
                    format!("invalid interpolation in {input:?}: `$` must start a variable"),
                    "write `$$` for a literal `$`".to_string(),
                ));
            }
            out.push_str(&value_of(&after[..len], vars, unset));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn braced(
    body: &str,
    input: &str,
    vars: &dyn Lookup,
    unset: &mut Vec<String>,
) -> Result<String, Failure> {
    let len = name_len(body);
    let name = &body[..len];
    let op = &body[len..];
    if name.is_empty() {
        return Err((
            format!("invalid interpolation `${{{body}}}` in {input:?}: no variable name"),
            "a variable name is letters, digits and `_`, not starting with a digit".to_string(),
        ));
    }
    let value = vars.get(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (kind, arg) = if let Some(arg) = op.strip_prefix(":-") {
        ("default_if_empty", arg)
    } else if let Some(arg) = op.strip_prefix('-') {
        ("default_if_unset", arg)
    } else if let Some(arg) = op.strip_prefix(":?") {
        ("require_nonempty", arg)
    } else if let Some(arg) = op.strip_prefix('?') {
        ("require_set", arg)
    } else if let Some(arg) = op.strip_prefix(":+") {
        ("alt_if_nonempty", arg)
    } else if let Some(arg) = op.strip_prefix('+') {
        ("alt_if_set", arg)
    } else if op.is_empty() {
        return Ok(value_of(name, vars, unset));
    } else {
        return Err((
            format!("invalid interpolation `${{{body}}}` in {input:?}"),
            "the forms are ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}".to_string(),
        ));
    };
    let mut arg = || interpolate(arg, vars, unset);
    Ok(match kind {
        "default_if_empty" if set_nonempty => value.unwrap_or_default(),
        "default_if_empty" => arg()?,
        "default_if_unset" => match value {
            Some(v) => v,
            None => arg()?,
        },
        "require_nonempty" | "require_set" => {
            let ok = if kind == "require_set" {
                value.is_some()
            } else {
                set_nonempty
            };
            if !ok {
                let why = arg()?;
                let why = if why.is_empty() {
                    format!("variable {name} is required")
                } else {
                    format!("required variable {name} is missing a value: {why}")
                };
                return Err((why, format!("set {name} in the environment or in .env")));
            }
            value.unwrap_or_default()
        }
        "alt_if_nonempty" if set_nonempty => arg()?,
        "alt_if_set" if value.is_some() => arg()?,
        _ => String::new(),
    })
}

fn value_of(name: &str, vars: &dyn Lookup, unset: &mut Vec<String>) -> String {
    vars.get(name).unwrap_or_else(|| {
        if !unset.iter().any(|u| u == name) {
            unset.push(name.to_string());
        }
        String::new()
    })
}

/// Length of the variable name at the start of `s`.
fn name_len(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

/// Index of the `}` that closes a `${`, counting nested `${ ... }`.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> Result<String, Failure> {
        let vars = |name: &str| match name {
            "SET" => Some("value".to_string()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8080".to_string()),
            _ => None,
        };
        interpolate(input, &vars, &mut Vec::new())
    }

    #[test]
    fn forms() {
        assert_eq!(run("$SET").unwrap(), "value");
        assert_eq!(run("a${SET}b").unwrap(), "avalueb");
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY-d}").unwrap(), "");
        assert_eq!(run("${UNSET-d}").unwrap(), "d");
        assert_eq!(run("${SET:+x}").unwrap(), "x");
        assert_eq!(run("${EMPTY:+x}").unwrap(), "");
        assert_eq!(run("${EMPTY+x}").unwrap(), "x");
        assert_eq!(run("${UNSET+x}").unwrap(), "");
        assert_eq!(run("$$SET").unwrap(), "$SET");
        assert_eq!(run("cost: $$5").unwrap(), "cost: $5");
        assert_eq!(run("${PORT}:80").unwrap(), "8080:80");
    }

    #[test]
    fn nested_defaults() {
        assert_eq!(run("${UNSET:-${PORT}}").unwrap(), "8080");
        assert_eq!(run("${UNSET:-${ALSO:-deep}}-x").unwrap(), "deep-x");
    }

    #[test]
    fn required() {
        let (msg, _) = run("${UNSET:?need it}").unwrap_err();
        assert_eq!(msg, "required variable UNSET is missing a value: need it");
        assert!(run("${EMPTY?x}").is_ok());
        assert!(run("${EMPTY:?x}").is_err());
    }

    #[test]
    fn unset_is_empty_and_reported() {
        let mut unset = Vec::new();
        let vars = |_: &str| None;
        assert_eq!(
            interpolate("a${NOPE}b$NOPE", &vars, &mut unset).unwrap(),
            "ab"
        );
        assert_eq!(unset, vec!["NOPE".to_string()]);
    }

    #[test]
    fn malformed() {
        assert!(run("${SET").is_err());
        assert!(run("$ 5").is_err());
        assert!(run("${}").is_err());
        assert!(run("${SET!x}").is_err());
    }
}

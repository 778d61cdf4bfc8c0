//! `.env` and `env_file` files: `KEY=value` lines.
//!
//! `#` starts a comment line; `export ` before a key is allowed; single quotes keep
//! their content as it is; double quotes understand `\n`, `\t`, `\"` and `\\`; an
//! unquoted value ends at ` #`. Double-quoted and unquoted values are interpolated
//! against `outer` and the lines above them.

use std::sync::Arc;

use indexmap::IndexMap;

use crate::error::SpecError;
use crate::interpolate::interpolate;
use crate::yaml::Mark;

/// Parses a dotenv file. `outer` answers for variables the file does not set.
pub fn parse(
    file: &Arc<str>,
    text: &str,
    outer: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, SpecError> {
    let mut vars: IndexMap<String, String> = IndexMap::new();
    for (i, raw) in text.lines().enumerate() {
        let mark = Mark {
            file: file.clone(),
            line: i + 1,
            col: 1,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            // A bare name passes the variable through from the environment.
            if let Some(v) = outer(line) {
                vars.insert(line.to_string(), v);
            }
            continue;
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(SpecError::new(mark, "", format!("invalid line {raw:?}"))
                .hint("lines are KEY=value"));
        }
        let value = value.trim_start();
        let lookup = |name: &str| vars.get(name).cloned().or_else(|| outer(name));
        let value = if let Some(body) = value.strip_prefix('\'') {
            body.split_once('\'')
                .map(|(v, _)| v.to_string())
                .ok_or_else(|| SpecError::new(mark.clone(), "", "unclosed single quote"))?
        } else if let Some(body) = value.strip_prefix('"') {
            let v = double_quoted(body)
                .ok_or_else(|| SpecError::new(mark.clone(), "", "unclosed double quote"))?;
            interpolate(&v, &lookup, &mut Vec::new())
                .map_err(|(m, h)| SpecError::new(mark.clone(), "", m).hint(h))?
        } else {
            let v = match value.find(" #") {
                Some(at) => &value[..at],
                None => value,
            };
            interpolate(v.trim_end(), &lookup, &mut Vec::new())
                .map_err(|(m, h)| SpecError::new(mark.clone(), "", m).hint(h))?
        };
        vars.insert(key.to_string(), value);
    }
    Ok(vars)
}

fn double_quoted(body: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let text =
            "# comment\nA=1\nexport B = two words # note\nC='$A raw'\nD=\"line\\n$A\"\nE=${A}x\n\n";
        let outer = |_: &str| None;
        let vars = parse(&Arc::from(".env"), text, &outer).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "$A raw");
        assert_eq!(vars["D"], "line\n1");
        assert_eq!(vars["E"], "1x");
    }

    #[test]
    fn bad_line_has_its_number() {
        let outer = |_: &str| None;
        let e = parse(&Arc::from(".env"), "A=1\nB C=2\n", &outer).unwrap_err();
        assert_eq!(e.mark.line, 2);
    }
}

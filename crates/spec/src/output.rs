//! Writing the normalized project out, as `shoal config` does.

use serde_json::Value;

use crate::model::Project;
use crate::yaml::Scalar;

/// The project as JSON.
pub fn to_json(project: &Project) -> String {
    serde_json::to_string_pretty(&escaped(project)).expect("values always serialize")
}

/// The project as YAML, in block style.
pub fn to_yaml(project: &Project) -> String {
    yaml(&escaped(project))
}

/// Any JSON value as a YAML document in block style, keys in their order.
pub fn yaml(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0, false);
    let mut out = out.trim_start_matches('\n').to_string();
    out.push('\n');
    out
}

/// The project as a value, with every `$` in a string written `$$` so that the output
/// is a Compose file that interpolates back to the same project.
fn escaped(project: &Project) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(project).expect("the model always serializes");
    walk(&mut value);
    value
}

fn write_value(out: &mut String, v: &Value, indent: usize, in_seq: bool) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            let mut first = true;
            for (k, v) in map {
                if !(first && in_seq) {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                }
                first = false;
                out.push_str(&scalar_text(&Value::String(k.clone())));
                out.push(':');
                write_child(out, v, indent);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                match item {
                    Value::Object(m) if !m.is_empty() => write_value(out, item, indent + 2, true),
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&inline(item));
                    }
                    _ => out.push_str(&scalar_text(item)),
                }
            }
        }
        other => out.push_str(&inline(other)),
    }
}

fn write_child(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => write_value(out, v, indent + 2, false),
        Value::Array(a) if !a.is_empty() => write_value(out, v, indent + 2, false),
        _ => {
            out.push(' ');
            out.push_str(&inline(v));
        }
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", scalar_text(&Value::String(k.clone())), inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => scalar_text(other),
    }
}

/// A scalar, quoted when YAML would read it as something else.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && !s.starts_with(|c: char| " -?:,[]{}#&*!|>'\"%@`~".contains(c))
                && !s.ends_with(' ')
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.contains('\n')
                && !matches!(
                    s.as_str(),
                    "true"
                        | "false"
                        | "null"
                        | "yes"
                        | "no"
                        | "on"
                        | "off"
                        | "True"
                        | "False"
                        | "Null"
                        | "NULL"
                        | "TRUE"
                        | "FALSE"
                        | "Yes"
                        | "No"
                )
                && Scalar::of(s, false) == Scalar::Str
                && !s.ends_with(':');
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).expect("strings serialize")
            }
        }
        _ => inline(v),
    }
}

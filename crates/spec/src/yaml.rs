//! A YAML tree that remembers where every node came from.
//!
//! Built from saphyr-parser's spanned events rather than a ready-made document type so
//! that the loader keeps exactly what Compose needs and nothing it must undo: scalars
//! stay text (Compose interpolates first and types after), quoting is remembered,
//! aliases are expanded, `<<` merge keys are applied, and tags such as `!reset` and
//! `!override` are kept for the merge step.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver, Tag};

use crate::error::SpecError;

/// Where a node starts: file, 1-based line and 1-based column.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// The file as the user named it (or as it was discovered).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// One node of a document.
#[derive(Clone, Debug)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where it starts.
    pub mark: Mark,
    /// A local tag such as `!reset` or `!override`, without the `!`.
    pub tag: Option<String>,
}

/// The content of a node.
#[derive(Clone, Debug)]
pub enum Value {
    /// A scalar, as text. `quoted` is true for single- or double-quoted scalars and
    /// block scalars, which are always strings.
    Scalar { text: String, quoted: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with string keys, in document order.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Clone, Debug)]
pub struct Key {
    /// The key's text.
    pub name: String,
    /// Where the key starts.
    pub mark: Mark,
    /// What YAML types the key as: Compose takes only string keys.
    pub scalar: Scalar,
}

/// The type YAML 1.2's core schema gives a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool,
    /// `12`, `-3`, `0x1f`, `0o17`.
    Int,
    /// `1.5`, `1e3`, `.inf`, `.nan`.
    Float,
    /// Anything else, and every quoted or block scalar.
    Str,
}

impl Scalar {
    /// Types a scalar's text; quoted scalars are always strings.
    pub fn of(text: &str, quoted: bool) -> Scalar {
        if quoted {
            Scalar::Str
        } else if is_null_text(text) {
            Scalar::Null
        } else if matches!(text, "true" | "True" | "TRUE" | "false" | "False" | "FALSE") {
            Scalar::Bool
        } else if is_int(text) {
            Scalar::Int
        } else if is_float(text) {
            Scalar::Float
        } else {
            Scalar::Str
        }
    }

    /// The type's name, for "found an integer" messages.
    pub fn name(self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool => "a boolean",
            Scalar::Int => "an integer",
            Scalar::Float => "a number",
            Scalar::Str => "a string",
        }
    }
}

/// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`.
fn is_int(text: &str) -> bool {
    let digits = |s: &str, ok: fn(&u8) -> bool| !s.is_empty() && s.as_bytes().iter().all(ok);
    if let Some(oct) = text.strip_prefix("0o") {
        return digits(oct, |b| (b'0'..=b'7').contains(b));
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return digits(hex, u8::is_ascii_hexdigit);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits(unsigned, u8::is_ascii_digit)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, `[-+]?.inf`, `.nan`.
fn is_float(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            all_digits(int) && all_digits(frac) && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

impl Key {
    /// A string key at `mark`.
    pub fn new(name: impl Into<String>, mark: Mark) -> Key {
        Key {
            name: name.into(),
            mark,
            scalar: Scalar::Str,
        }
    }
}

// === impl Node ===

impl Node {
    /// A plain scalar at `mark`.
    pub fn scalar(text: impl Into<String>, mark: Mark) -> Node {
        Node {
            value: Value::Scalar {
                text: text.into(),
                quoted: false,
            },
            mark,
            tag: None,
        }
    }

    /// An empty mapping at `mark`.
    pub fn map(mark: Mark) -> Node {
        Node {
            value: Value::Map(Vec::new()),
            mark,
            tag: None,
        }
    }

    /// True for `null`, `~` and an empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false } if is_null_text(text))
    }

    /// The scalar's text, unless the node is a collection or null.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } if !self.is_null() => Some(text),
            _ => None,
        }
    }

    /// The entries of a mapping.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The value under `key` in a mapping, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.name == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` in a mapping, replacing the value in place or appending it.
    pub fn set(&mut self, key: &str, value: Node) {
        if let Value::Map(entries) = &mut self.value {
            if let Some(slot) = entries.iter_mut().find(|(k, _)| k.name == key) {
                slot.1 = value;
            } else {
                let mark = value.mark.clone();
                entries.push((Key::new(key, mark), value));
            }
        }
    }

    /// Removes `key` from a mapping and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        if let Value::Map(entries) = &mut self.value {
            let at = entries.iter().position(|(k, _)| k.name == key)?;
            return Some(entries.remove(at).1);
        }
        None
    }

    /// A short name of the node's kind, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }

    /// Converts the node to JSON, typing plain scalars the way YAML 1.2's core schema
    /// does. Used for keys shoal carries through without modelling them.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Scalar { text, quoted } => match Scalar::of(text, *quoted) {
                Scalar::Null => J::Null,
                Scalar::Bool => J::Bool(text.starts_with(['t', 'T'])),
                Scalar::Int => match text.parse::<i64>() {
                    Ok(n) => J::from(n),
                    // Hexadecimal, octal, or too large for 64 bits: as a float.
                    Err(_) => float_json(text),
                },
                Scalar::Float => float_json(text),
                Scalar::Str => J::String(text.clone()),
            },
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn float_json(text: &str) -> serde_json::Value {
    let radix = |digits: &str, r: u32| {
        i64::from_str_radix(digits, r)
            .ok()
            .map(serde_json::Value::from)
    };
    if let Some(n) = text.strip_prefix("0x").and_then(|d| radix(d, 16)) {
        return n;
    }
    if let Some(n) = text.strip_prefix("0o").and_then(|d| radix(d, 8)) {
        return n;
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(serde_json::Value::Number)
        // .inf and .nan have no JSON form.
        .unwrap_or_else(|| serde_json::Value::String(text.to_string()))
}

fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Parses a file of one YAML document. An empty file is an empty mapping.
pub fn parse(file: &Arc<str>, source: &str) -> Result<Node, SpecError> {
    let mut docs = documents(file, source)?;
    if docs.len() > 1 {
        let second = docs.swap_remove(1);
        return Err(SpecError::new(
            second.mark,
            "",
            "expected one YAML document, found a second",
        ));
    }
    Ok(docs.pop().expect("at least one document"))
}

/// Parses every YAML document of a file (`---` separates them), in order. An empty
/// file, or an empty document, is an empty mapping.
pub fn documents(file: &Arc<str>, source: &str) -> Result<Vec<Node>, SpecError> {
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: Vec::new(),
        documents: Vec::new(),
        error: None,
    };
    let mut parser = Parser::new_from_str(source);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(SpecError::new(
            Mark {
                file: file.clone(),
                line: m.line(),
                col: m.col() + 1,
            },
            "",
            format!("invalid YAML: {}", e.info()),
        ));
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    let mut docs: Vec<Node> = builder
        .documents
        .into_iter()
        .map(|d| if d.is_null() { Node::map(d.mark) } else { d })
        .collect();
    if docs.is_empty() {
        docs.push(Node::map(Mark {
            file: file.clone(),
            line: 1,
            col: 1,
        }));
    }
    Ok(docs)
}

/// Turns parser events into a [`Node`] tree.
struct Builder {
    file: Arc<str>,
    /// Open collections: the node, its anchor id, and (for mappings) a pending key.
    stack: Vec<(Node, usize, Option<Key>)>,
    /// Anchored nodes by anchor id.
    anchors: Vec<(usize, Node)>,
    /// The finished documents.
    documents: Vec<Node>,
    error: Option<SpecError>,
}

impl Builder {
    fn mark(&self, span: &Span) -> Mark {
        Mark {
            file: self.file.clone(),
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }

    fn fail(&mut self, mark: Mark, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SpecError::new(mark, "", message));
        }
    }

    fn tag(tag: Option<Cow<'_, Tag>>) -> Option<String> {
        let tag = tag?;
        (tag.handle == "!").then(|| tag.suffix.clone())
    }

    /// Adds a finished node to its parent (or makes it the document).
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        let Some((parent, _, pending)) = self.stack.last_mut() else {
            self.documents.push(node);
            return;
        };
        match &mut parent.value {
            Value::Seq(items) => items.push(node),
            Value::Map(entries) => match pending.take() {
                None => {
                    let Some(name) = node.as_str().map(str::to_string).or_else(|| {
                        // `null` and `~` are fine keys in Compose files ("~": value is rare,
                        // but an empty key is not): keep their text.
                        match &node.value {
                            Value::Scalar { text, .. } => Some(text.clone()),
                            _ => None,
                        }
                    }) else {
                        let mark = node.mark.clone();
                        self.fail(mark, "mapping keys must be scalars");
                        return;
                    };
                    if name != "<<" && entries.iter().any(|(k, _)| k.name == name) {
                        let mark = node.mark.clone();
                        self.fail(mark, format!("duplicate key `{name}` in this mapping"));
                        return;
                    }
                    let scalar = match &node.value {
                        Value::Scalar { text, quoted } => Scalar::of(text, *quoted),
                        _ => Scalar::Str,
                    };
                    *pending = Some(Key {
                        name,
                        mark: node.mark,
                        scalar,
                    });
                }
                Some(key) => entries.push((key, node)),
            },
            Value::Scalar { .. } => unreachable!("scalars are never open"),
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        if self.error.is_some() {
            return;
        }
        let mark = self.mark(&span);
        match ev {
            Event::DocumentStart(_) => self.anchors.clear(),
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        quoted,
                    },
                    mark,
                    tag: Self::tag(tag),
                };
                self.push(node, anchor);
            }
            Event::SequenceStart(anchor, tag) => {
                let node = Node {
                    value: Value::Seq(Vec::new()),
                    mark,
                    tag: Self::tag(tag),
                };
                self.stack.push((node, anchor, None));
            }
            Event::MappingStart(anchor, tag) => {
                let node = Node {
                    value: Value::Map(Vec::new()),
                    mark,
                    tag: Self::tag(tag),
                };
                self.stack.push((node, anchor, None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((mut node, anchor, _)) = self.stack.pop() else {
                    return;
                };
                if let Err(e) = apply_merge_keys(&mut node) {
                    self.error = Some(e);
                    return;
                }
                self.push(node, anchor);
            }
            Event::Alias(id) => {
                let Some(node) = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone())
                else {
                    self.fail(mark, "alias to an unknown anchor");
                    return;
                };
                self.push(node, 0);
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
}

/// Expands `<<` keys (YAML merge keys): the entries of the merged mapping (or of each
/// mapping in a merged sequence, earlier ones first) are added unless the mapping
/// already has the key.
fn apply_merge_keys(node: &mut Node) -> Result<(), SpecError> {
    let Value::Map(entries) = &mut node.value else {
        return Ok(());
    };
    if !entries.iter().any(|(k, _)| k.name == "<<") {
        return Ok(());
    }
    let (merges, mut own): (Vec<_>, Vec<_>) = std::mem::take(entries)
        .into_iter()
        .partition(|(k, _)| k.name == "<<");
    for (key, source) in merges {
        let sources: Vec<Node> = match source.value {
            Value::Map(_) => vec![source],
            Value::Seq(items) => items,
            Value::Scalar { .. } => {
                return Err(SpecError::new(
                    key.mark,
                    "<<",
                    "a merge key `<<` takes a mapping or a sequence of mappings",
                )
                .hint("write `<<: *anchor` where the anchor names a mapping"));
            }
        };
        for source in sources {
            let Value::Map(inherited) = source.value else {
                return Err(SpecError::new(
                    source.mark,
                    "<<",
                    "a merge key `<<` takes a mapping or a sequence of mappings",
                ));
            };
            for (k, v) in inherited {
                if !own.iter().any(|(o, _)| o.name == k.name) {
                    own.push((k, v));
                }
            }
        }
    }
    *entries = own;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> Node {
        parse(&Arc::from("t.yaml"), src).unwrap()
    }

    #[test]
    fn positions_are_one_based() {
        let n = load("a:\n  b: [1, 2]\n");
        let b = n.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.mark.line, b.mark.col), (2, 6));
        let two = &b.as_seq().unwrap()[1];
        assert_eq!((two.mark.line, two.mark.col), (2, 10));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let n = load("base: &b {x: 1, y: 2}\nsvc:\n  <<: *b\n  y: 3\n");
        let svc = n.get("svc").unwrap();
        assert_eq!(svc.get("x").unwrap().as_str(), Some("1"));
        assert_eq!(svc.get("y").unwrap().as_str(), Some("3"));
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let e = parse(&Arc::from("t.yaml"), "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!((e.mark.line, e.mark.col), (3, 1));
        assert!(e.message.contains("duplicate key `a`"), "{e}");
    }

    #[test]
    fn tags_and_quotes_are_kept() {
        let n = load("a: !reset []\nb: \"1\"\nc: 1\n");
        assert_eq!(n.get("a").unwrap().tag.as_deref(), Some("reset"));
        assert!(matches!(
            n.get("b").unwrap().value,
            Value::Scalar { quoted: true, .. }
        ));
        assert_eq!(n.get("c").unwrap().to_json(), serde_json::json!(1));
    }

    #[test]
    fn plain_scalars_are_typed_by_the_core_schema() {
        for (text, want) in [
            ("", Scalar::Null),
            ("~", Scalar::Null),
            ("true", Scalar::Bool),
            ("False", Scalar::Bool),
            ("yes", Scalar::Str),
            ("123", Scalar::Int),
            ("-7", Scalar::Int),
            ("0x1F", Scalar::Int),
            ("0o17", Scalar::Int),
            ("0o8", Scalar::Str),
            ("1.5", Scalar::Float),
            ("1e3", Scalar::Float),
            (".5", Scalar::Float),
            ("-.inf", Scalar::Float),
            (".nan", Scalar::Float),
            ("inf", Scalar::Str),
            ("1.2.3", Scalar::Str),
            ("8080:80", Scalar::Str),
            ("1_000", Scalar::Str),
        ] {
            assert_eq!(Scalar::of(text, false), want, "{text:?}");
        }
        assert_eq!(Scalar::of("123", true), Scalar::Str);
    }

    #[test]
    fn documents_are_kept_apart() {
        let docs = documents(&Arc::from("t.yaml"), "a: &x 1\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].get("b").unwrap().as_str(), Some("2"));
        assert!(docs[2].as_map().is_some_and(|m| m.is_empty()));
        // An anchor belongs to its document.
        assert!(documents(&Arc::from("t.yaml"), "a: &x 1\n---\nb: *x\n").is_err());
        assert!(parse(&Arc::from("t.yaml"), "a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn syntax_error_has_a_position() {
        let e = parse(&Arc::from("t.yaml"), "a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e}");
        assert!(e.mark.line >= 1);
    }
}

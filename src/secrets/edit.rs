//! Reading and editing values in a body with the file's keys: look-up by
//! name or JSON Pointer, encryption of new values at their paths, removal
//! (re-encrypting the array elements whose index moved), and re-encryption
//! of a whole body under other keys. Unchanged values keep their bytes.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::doc::{self, Body, Form, JSON_META_KEY, Line, Node, Sealed, Seg};
use super::error::SecretsError;
use super::json::Json;
use super::keys::FileKeys;
use crate::error::Error;

/// The type byte of a value's plaintext (`SECRETS.md` §5).
pub(crate) const KIND_STRING: u8 = 1;
pub(crate) const KIND_NUMBER: u8 = 2;
pub(crate) const KIND_TRUE: u8 = 3;
pub(crate) const KIND_FALSE: u8 = 4;
pub(crate) const KIND_NULL: u8 = 5;

/// A decrypted value: its type byte and data (zeroized on drop).
pub(crate) struct Plain {
    pub(crate) kind: u8,
    pub(crate) data: Zeroizing<Vec<u8>>,
}

impl Plain {
    /// Checks what a value of `form` may hold: dotenv values are UTF-8
    /// strings without NUL; JSON numbers follow the grammar; the other
    /// JSON types are empty.
    pub(crate) fn check(&self, form: Form) -> Result<(), Error> {
        let text = core::str::from_utf8(&self.data).map_err(|_| Error::Authentication)?;
        let ok = match (form, self.kind) {
            (Form::Dotenv, KIND_STRING) => !text.contains('\0'),
            (Form::Json, KIND_STRING) => true,
            (Form::Json, KIND_NUMBER) => super::json::is_number(text),
            (Form::Json, KIND_TRUE | KIND_FALSE | KIND_NULL) => text.is_empty(),
            _ => false,
        };
        // An authenticated value of a type the form does not allow was
        // made by a key holder on purpose: refuse it like a forgery.
        if ok { Ok(()) } else { Err(Error::Authentication) }
    }

    /// The value as text: a string's text, a number's digits, `true`,
    /// `false` or `null`.
    pub(crate) fn text(&self) -> &str {
        match self.kind {
            KIND_TRUE => "true",
            KIND_FALSE => "false",
            KIND_NULL => "null",
            _ => core::str::from_utf8(&self.data).unwrap_or_default(),
        }
    }

    fn same(&self, kind: u8, data: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.kind == kind && bool::from(self.data.as_slice().ct_eq(data))
    }
}

/// Decrypts `v` at `path`.
pub(crate) fn open(keys: &FileKeys, form: Form, path: &[Seg], v: &Sealed) -> Result<Plain, Error> {
    let aad = doc::value_aad(keys.file_id(), form, path);
    let (kind, data) = keys.open_value(&v.0, &aad)?;
    let p = Plain { kind, data };
    p.check(form)?;
    Ok(p)
}

/// Encrypts `kind` / `data` at `path`.
pub(crate) fn seal(keys: &FileKeys, form: Form, path: &[Seg], kind: u8, data: &[u8]) -> Result<Sealed, Error> {
    let aad = doc::value_aad(keys.file_id(), form, path);
    keys.seal_value(kind, data, &aad).map(Sealed)
}

fn invalid(name: &str, why: &'static str) -> Error {
    SecretsError::InvalidName {
        name: name.to_string(),
        why,
    }
    .into()
}

/// The path of `name` in `form`: a dotenv name, or a JSON Pointer resolved
/// against `body` (a token at an array is an index).
pub(crate) fn resolve(form: Form, body: &Body, name: &str) -> Result<Vec<Seg>, Error> {
    match (form, body) {
        (Form::Dotenv, _) => {
            if !doc::valid_name(name) {
                return Err(invalid(name, "expected [A-Za-z_][A-Za-z0-9_]*, at most 255 bytes"));
            }
            Ok(alloc::vec![Seg::Key(name.to_string())])
        }
        (Form::Json, Body::Json(members)) => {
            let tokens = doc::pointer_tokens(name)?;
            if tokens.is_empty() {
                return Err(invalid(name, "the root is not a value"));
            }
            if tokens.first().map(String::as_str) == Some(JSON_META_KEY) {
                return Err(invalid(name, "the top-level key \"lockbox\" is reserved"));
            }
            let mut path = Vec::with_capacity(tokens.len());
            let mut at = Some(Cursor::Object(members));
            for t in tokens {
                if !doc::valid_json_key(&t) {
                    return Err(invalid(name, "control or format character in a key"));
                }
                let next = match at {
                    Some(Cursor::Array(a)) => {
                        let len = a.len();
                        let i = if t == "-" {
                            Some(len)
                        } else {
                            doc::index_token(&t).and_then(|i| usize::try_from(i).ok())
                        };
                        let i = i.ok_or_else(|| invalid(name, "not an index of an array"))?;
                        path.push(Seg::Index(
                            u32::try_from(i).map_err(|_| invalid(name, "index too large"))?,
                        ));
                        a.get(i)
                    }
                    Some(Cursor::Object(m)) => {
                        let found = m.iter().find(|(k, _)| *k == t).map(|(_, v)| v);
                        path.push(Seg::Key(t));
                        found
                    }
                    Some(Cursor::Leaf) => return Err(invalid(name, "goes below a value")),
                    None => {
                        path.push(Seg::Key(t));
                        None
                    }
                };
                at = next.map(|n| match n {
                    Node::Object(m) => Cursor::Object(m),
                    Node::Array(a) => Cursor::Array(a),
                    Node::Leaf(_) => Cursor::Leaf,
                });
            }
            Ok(path)
        }
        _ => Err(invalid(name, "form and body disagree")),
    }
}

enum Cursor<'a> {
    Object(&'a [(String, Node)]),
    Array(&'a [Node]),
    Leaf,
}

/// The node at `path`, if any.
pub(crate) fn find<'a>(body: &'a Body, path: &[Seg]) -> Option<Found<'a>> {
    match body {
        Body::Dotenv(lines) => {
            let [Seg::Key(name)] = path else { return None };
            lines.iter().find_map(|l| match l {
                Line::Entry { name: n, value } if n == name => Some(Found::Leaf(value)),
                _ => None,
            })
        }
        Body::Json(members) => {
            let (first, rest) = path.split_first()?;
            let Seg::Key(k) = first else { return None };
            let mut node = members.iter().find(|(n, _)| n == k).map(|(_, v)| v)?;
            for s in rest {
                node = match (node, s) {
                    (Node::Object(m), Seg::Key(k)) => m.iter().find(|(n, _)| n == k).map(|(_, v)| v)?,
                    (Node::Array(a), Seg::Index(i)) => a.get(usize::try_from(*i).ok()?)?,
                    _ => return None,
                };
            }
            Some(match node {
                Node::Leaf(v) => Found::Leaf(v),
                _ => Found::Tree,
            })
        }
    }
}

/// What is at a path.
pub(crate) enum Found<'a> {
    Leaf(&'a Sealed),
    Tree,
}

/// Encrypts a plaintext JSON value at `path` into a node (every leaf
/// encrypted at its own path).
pub(crate) fn seal_json(keys: &FileKeys, path: &mut Vec<Seg>, v: &Json) -> Result<Node, Error> {
    let leaf = |kind, data: &[u8], path: &[Seg]| seal(keys, Form::Json, path, kind, data).map(Node::Leaf);
    match v {
        Json::String(s) => leaf(KIND_STRING, s.as_bytes(), path),
        Json::Number(n) => leaf(KIND_NUMBER, n.as_bytes(), path),
        Json::Bool(true) => leaf(KIND_TRUE, b"", path),
        Json::Bool(false) => leaf(KIND_FALSE, b"", path),
        Json::Null => leaf(KIND_NULL, b"", path),
        Json::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, v) in a.iter().enumerate() {
                path.push(Seg::Index(
                    u32::try_from(i).map_err(|_| Error::invalid_argument("array too long"))?,
                ));
                let n = seal_json(keys, path, v);
                path.pop();
                out.push(n?);
            }
            Ok(Node::Array(out))
        }
        Json::Object(m) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m {
                if !doc::valid_json_key(k) {
                    return Err(invalid(k, "control or format character in a key"));
                }
                path.push(Seg::Key(k.clone()));
                let n = seal_json(keys, path, v);
                path.pop();
                out.push((k.clone(), n?));
            }
            Ok(Node::Object(out))
        }
    }
}

/// Puts `node` at `path` (which [`resolve`] made), creating objects on the
/// way; replaces what was there.
pub(crate) fn put(body: &mut Body, path: &[Seg], node: Node) -> Result<(), Error> {
    match body {
        Body::Dotenv(lines) => {
            let ([Seg::Key(name)], Node::Leaf(value)) = (path, node) else {
                return Err(Error::invalid_argument("a dotenv value is a string"));
            };
            match lines
                .iter_mut()
                .find(|l| matches!(l, Line::Entry { name: n, .. } if n == name))
            {
                Some(Line::Entry { value: v, .. }) => *v = value,
                _ => {
                    if lines.iter().filter(|l| matches!(l, Line::Entry { .. })).count() >= doc::MAX_VALUES {
                        return Err(SecretsError::TooManyValues { max: doc::MAX_VALUES }.into());
                    }
                    lines.push(Line::Entry {
                        name: name.clone(),
                        value,
                    });
                }
            }
            Ok(())
        }
        Body::Json(members) => put_members(members, path, node),
    }
}

fn put_members(members: &mut Vec<(String, Node)>, path: &[Seg], node: Node) -> Result<(), Error> {
    let Some((Seg::Key(k), rest)) = path.split_first() else {
        return Err(Error::invalid_argument("path does not fit the document"));
    };
    let slot = match members.iter().position(|(n, _)| n == k) {
        Some(i) => i,
        None => {
            members.push((k.clone(), Node::Object(Vec::new())));
            members.len().saturating_sub(1)
        }
    };
    let Some((_, child)) = members.get_mut(slot) else {
        return Err(Error::invalid_argument("path does not fit the document"));
    };
    put_node(child, rest, node)
}

fn put_node(at: &mut Node, path: &[Seg], node: Node) -> Result<(), Error> {
    let Some((first, rest)) = path.split_first() else {
        *at = node;
        return Ok(());
    };
    match (at, first) {
        (Node::Object(m), Seg::Key(_)) => put_members(m, path, node),
        (Node::Array(a), Seg::Index(i)) => {
            let i = usize::try_from(*i).map_err(|_| Error::invalid_argument("index too large"))?;
            if i == a.len() {
                a.push(Node::Object(Vec::new()));
            }
            let child = a
                .get_mut(i)
                .ok_or(Error::invalid_argument("path does not fit the document"))?;
            put_node(child, rest, node)
        }
        _ => Err(Error::invalid_argument("path does not fit the document")),
    }
}

/// Removes what is at `path`; `false` if nothing was. Array elements after
/// a removed one move down an index, so they are re-encrypted at their new
/// paths.
pub(crate) fn remove(keys: &FileKeys, body: &mut Body, path: &[Seg]) -> Result<bool, Error> {
    match body {
        Body::Dotenv(lines) => {
            let [Seg::Key(name)] = path else { return Ok(false) };
            let before = lines.len();
            lines.retain(|l| !matches!(l, Line::Entry { name: n, .. } if n == name));
            Ok(lines.len() != before)
        }
        Body::Json(members) => {
            let Some((last, parent)) = path.split_last() else {
                return Ok(false);
            };
            let Some(container) = container_mut(members, parent) else {
                return Ok(false);
            };
            match (container, last) {
                (Container::Object(m), Seg::Key(k)) => {
                    let before = m.len();
                    m.retain(|(n, _)| n != k);
                    Ok(m.len() != before)
                }
                (Container::Array(a), Seg::Index(i)) => {
                    let i = usize::try_from(*i).unwrap_or(usize::MAX);
                    if i >= a.len() {
                        return Ok(false);
                    }
                    a.remove(i);
                    let mut p = parent.to_vec();
                    for (j, n) in a.iter_mut().enumerate().skip(i) {
                        p.push(Seg::Index(u32::try_from(j.saturating_add(1)).unwrap_or(u32::MAX)));
                        let old = p.clone();
                        p.pop();
                        p.push(Seg::Index(u32::try_from(j).unwrap_or(u32::MAX)));
                        reseal_node(keys, keys, n, &old, &p)?;
                        p.pop();
                    }
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }
}

enum Container<'a> {
    Object(&'a mut Vec<(String, Node)>),
    Array(&'a mut Vec<Node>),
}

fn container_mut<'a>(members: &'a mut Vec<(String, Node)>, path: &[Seg]) -> Option<Container<'a>> {
    let Some((first, rest)) = path.split_first() else {
        return Some(Container::Object(members));
    };
    let Seg::Key(k) = first else { return None };
    let mut node = members.iter_mut().find(|(n, _)| n == k).map(|(_, v)| v)?;
    for s in rest {
        node = match (node, s) {
            (Node::Object(m), Seg::Key(k)) => m.iter_mut().find(|(n, _)| n == k).map(|(_, v)| v)?,
            (Node::Array(a), Seg::Index(i)) => a.get_mut(usize::try_from(*i).ok()?)?,
            _ => return None,
        };
    }
    match node {
        Node::Object(m) => Some(Container::Object(m)),
        Node::Array(a) => Some(Container::Array(a)),
        Node::Leaf(_) => None,
    }
}

/// Re-encrypts every leaf under `node`, decrypting under `from` at paths
/// below `old` and encrypting under `to` at the same relative paths below
/// `new`.
pub(crate) fn reseal_node(
    from: &FileKeys,
    to: &FileKeys,
    node: &mut Node,
    old: &[Seg],
    new: &[Seg],
) -> Result<(), Error> {
    let mut o = old.to_vec();
    let mut n = new.to_vec();
    reseal_rec(from, to, Form::Json, node, &mut o, &mut n)
}

fn reseal_rec(
    from: &FileKeys,
    to: &FileKeys,
    form: Form,
    node: &mut Node,
    old: &mut Vec<Seg>,
    new: &mut Vec<Seg>,
) -> Result<(), Error> {
    match node {
        Node::Leaf(v) => {
            let p = open(from, form, old, v)?;
            *v = seal(to, form, new, p.kind, &p.data)?;
            Ok(())
        }
        Node::Object(m) => {
            for (k, child) in m.iter_mut() {
                old.push(Seg::Key(k.clone()));
                new.push(Seg::Key(k.clone()));
                let r = reseal_rec(from, to, form, child, old, new);
                old.pop();
                new.pop();
                r?;
            }
            Ok(())
        }
        Node::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                let s = Seg::Index(u32::try_from(i).unwrap_or(u32::MAX));
                old.push(s.clone());
                new.push(s);
                let r = reseal_rec(from, to, form, child, old, new);
                old.pop();
                new.pop();
                r?;
            }
            Ok(())
        }
    }
}

/// Re-encrypts every value of `body` from `from`'s keys to `to`'s (rotate).
pub(crate) fn reseal_body(from: &FileKeys, to: &FileKeys, form: Form, body: &mut Body) -> Result<(), Error> {
    match body {
        Body::Dotenv(lines) => {
            for l in lines.iter_mut() {
                if let Line::Entry { name, value } = l {
                    let path = [Seg::Key(name.clone())];
                    let p = open(from, form, &path, value)?;
                    *value = seal(to, form, &path, p.kind, &p.data)?;
                }
            }
            Ok(())
        }
        Body::Json(members) => {
            for (k, child) in members.iter_mut() {
                let path = [Seg::Key(k.clone())];
                let mut o = path.to_vec();
                let mut n = path.to_vec();
                reseal_rec(from, to, form, child, &mut o, &mut n)?;
            }
            Ok(())
        }
    }
}

/// Whether the value at `path` already decrypts to `kind` / `data` (then a
/// `set` keeps its ciphertext).
pub(crate) fn unchanged(
    keys: &FileKeys,
    form: Form,
    body: &Body,
    path: &[Seg],
    kind: u8,
    data: &[u8],
) -> Result<bool, Error> {
    match find(body, path) {
        Some(Found::Leaf(v)) => Ok(open(keys, form, path, v)?.same(kind, data)),
        _ => Ok(false),
    }
}

/// Decrypts every value (checking each), in document order.
pub(crate) fn open_all(keys: &FileKeys, form: Form, body: &Body) -> Result<Vec<(Vec<Seg>, Plain)>, Error> {
    doc::leaves(body)
        .into_iter()
        .map(|(path, v)| {
            let p = open(keys, form, &path, v)?;
            Ok((path, p))
        })
        .collect()
}

//! The two text forms of a secrets file, parsed and written (`SECRETS.md`
//! §2–§3), and the byte strings the crypto runs over: a value's associated
//! data and the authenticator's input (§5–§6). No keys here.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64ct::{Base64UrlUnpadded, Encoding};

use super::error::SecretsError;
use super::json::{self, Json};
use super::keys::{FILE_ID_LEN, MAC_LABEL, MAC_LEN, NONCE_LEN, PAD_BLOCK, TAG_LEN, VALUE_AAD_LABEL};
use crate::format::forbidden_in_context_key;

/// Largest secrets file read or written (bytes).
pub const MAX_FILE_LEN: usize = 16 << 20;
/// Most values in one file.
pub const MAX_VALUES: usize = 65_535;
/// Longest dotenv name (bytes).
pub const MAX_NAME_LEN: usize = 255;

/// Prefix of an encrypted value.
pub(crate) const VALUE_PREFIX: &str = "lockbox:";
/// Prefix of the dotenv form's two trailer lines.
const META_PREFIX: &str = "#lockbox:";
const HEADER_LINE: &str = "#lockbox:v1:header:";
const MAC_LINE: &str = "#lockbox:v1:mac:";
/// The JSON form's reserved top-level member.
pub(crate) const JSON_META_KEY: &str = "lockbox";

/// The two forms of a secrets file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Form {
    /// `NAME=value` lines, comments and blank lines (`SECRETS.md` §2).
    Dotenv,
    /// A JSON object: nested objects and arrays, every leaf encrypted
    /// (`SECRETS.md` §3).
    Json,
}

impl Form {
    /// The byte that stands for the form in associated data and in the
    /// authenticator's input.
    pub(crate) fn byte(self) -> u8 {
        match self {
            Self::Dotenv => 1,
            Self::Json => 2,
        }
    }

    /// The form's name in the key envelope's context (`dotenv`, `json`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Dotenv => "dotenv",
            Self::Json => "json",
        }
    }

    /// The form a file name suggests: JSON for a name ending in `.json`,
    /// dotenv otherwise.
    pub fn for_file_name(name: &str) -> Self {
        if name.to_ascii_lowercase().ends_with(".json") {
            Self::Json
        } else {
            Self::Dotenv
        }
    }
}

/// An encrypted value: `nonce || ciphertext || tag`, not secret.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Sealed(pub(crate) Vec<u8>);

impl Sealed {
    fn parse(text: &str) -> Option<Self> {
        let b64 = text.strip_prefix(VALUE_PREFIX)?;
        let bytes = Base64UrlUnpadded::decode_vec(b64).ok()?;
        // Nonce, at least one padded block, tag; whole blocks.
        let body = bytes.len().checked_sub(NONCE_LEN.saturating_add(TAG_LEN))?;
        (body >= PAD_BLOCK && body.is_multiple_of(PAD_BLOCK)).then_some(Self(bytes))
    }

    fn text(&self) -> String {
        let mut s = String::from(VALUE_PREFIX);
        s.push_str(&Base64UrlUnpadded::encode_string(&self.0));
        s
    }
}

/// One line of the dotenv form, between the first line and the trailer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// Empty or only spaces and tabs (kept as written).
    Blank(String),
    /// A comment line (kept as written, `#` included).
    Comment(String),
    /// `NAME=lockbox:…`.
    Entry { name: String, value: Sealed },
}

/// A node of the JSON form's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Leaf(Sealed),
}

/// The content of a file without its header and authenticator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    Dotenv(Vec<Line>),
    /// The root object, without the reserved member.
    Json(Vec<(String, Node)>),
}

/// One step of a value's path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(u32),
}

/// A parsed file: form, body, key envelope, authenticator.
#[derive(Clone, Debug)]
pub(crate) struct Parsed {
    pub(crate) form: Form,
    pub(crate) body: Body,
    pub(crate) header: Vec<u8>,
    pub(crate) mac: [u8; MAC_LEN],
}

fn bad(line: usize, what: &'static str) -> SecretsError {
    SecretsError::Malformed { line, what }
}

/// Whether `name` is a dotenv name: `[A-Za-z_][A-Za-z0-9_]*`, 1 to 255 bytes.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut b = name.bytes();
    (1..=MAX_NAME_LEN).contains(&name.len())
        && b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Whether free text (a comment, a JSON key) may be shown to a reviewer:
/// no control characters but tab, no format characters.
fn visible_text(s: &str) -> bool {
    !s.chars()
        .any(|c| (c != '\t' && c.is_control()) || crate::format::is_format_char(c))
}

/// Whether `key` may be a JSON key: no control or format characters.
pub(crate) fn valid_json_key(key: &str) -> bool {
    !key.chars().any(forbidden_in_context_key)
}

fn decode_b64(text: &str, line: usize, what: &'static str) -> Result<Vec<u8>, SecretsError> {
    Base64UrlUnpadded::decode_vec(text).map_err(|_| bad(line, what))
}

fn decode_mac(text: &str, line: usize) -> Result<[u8; MAC_LEN], SecretsError> {
    decode_b64(text, line, "authenticator is not base64url of 32 bytes")?
        .as_slice()
        .try_into()
        .map_err(|_| bad(line, "authenticator is not base64url of 32 bytes"))
}

/// Checks the version of a `#lockbox:` line: `v1` or an unsupported one.
fn meta_version(line: &str, n: usize) -> Result<(), SecretsError> {
    let rest = line.get(META_PREFIX.len()..).unwrap_or_default();
    let version = rest.split(':').next().unwrap_or_default();
    if version == "v1" {
        return Ok(());
    }
    match version.strip_prefix('v').and_then(|d| d.parse::<u32>().ok()) {
        Some(v) if !version.starts_with("v0") => Err(SecretsError::UnsupportedVersion(v)),
        _ => Err(bad(n, "malformed #lockbox: line")),
    }
}

/// Parses either form; `form` says which.
pub(crate) fn parse(form: Form, bytes: &[u8]) -> Result<Parsed, SecretsError> {
    if bytes.len() > MAX_FILE_LEN {
        return Err(SecretsError::TooLarge { max: MAX_FILE_LEN });
    }
    match form {
        Form::Dotenv => parse_dotenv(bytes),
        Form::Json => parse_json(bytes),
    }
}

fn parse_dotenv(bytes: &[u8]) -> Result<Parsed, SecretsError> {
    let text = core::str::from_utf8(bytes).map_err(|e| {
        let line = bytes.get(..e.valid_up_to()).unwrap_or_default();
        bad(
            line.iter().filter(|&&b| b == b'\n').count().saturating_add(1),
            "not UTF-8",
        )
    })?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut raw: Vec<&str> = text.split('\n').collect();
    for l in &mut raw {
        *l = l.strip_suffix('\r').unwrap_or(l);
    }
    let n = raw.len();
    if n < 2 {
        return Err(bad(1, "missing the #lockbox: header and authenticator lines"));
    }
    let (body_lines, trailer) = raw.split_at(n.saturating_sub(2));
    let (header_line, mac_line) = match trailer {
        [h, m] => (*h, *m),
        _ => return Err(bad(n, "missing the #lockbox: header and authenticator lines")),
    };
    let header_n = n.saturating_sub(1);
    for (line, i) in [(header_line, header_n), (mac_line, n)] {
        if !line.starts_with(META_PREFIX) {
            return Err(bad(
                i,
                "the last two lines must be the #lockbox: header and authenticator",
            ));
        }
        meta_version(line, i)?;
    }
    let header = header_line
        .strip_prefix(HEADER_LINE)
        .ok_or_else(|| bad(header_n, "expected #lockbox:v1:header:"))?;
    let header = decode_b64(header, header_n, "header is not base64url")?;
    let mac = mac_line
        .strip_prefix(MAC_LINE)
        .ok_or_else(|| bad(n, "expected #lockbox:v1:mac:"))?;
    let mac = decode_mac(mac, n)?;
    let mut lines = Vec::with_capacity(body_lines.len());
    let mut values = 0usize;
    for (i, l) in body_lines.iter().enumerate() {
        let at = i.saturating_add(1);
        if l.contains('\r') {
            return Err(bad(at, "carriage return inside a line"));
        }
        if !visible_text(l) {
            return Err(bad(at, "control or format character"));
        }
        let trimmed = l.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            lines.push(Line::Blank((*l).to_string()));
        } else if trimmed.starts_with(META_PREFIX) {
            return Err(bad(at, "#lockbox: lines are only the last two"));
        } else if trimmed.starts_with('#') {
            lines.push(Line::Comment((*l).to_string()));
        } else {
            let (name, value) = l.split_once('=').ok_or_else(|| bad(at, "expected NAME=value"))?;
            if !valid_name(name) {
                return Err(bad(
                    at,
                    "invalid name (expected [A-Za-z_][A-Za-z0-9_]*, at most 255 bytes)",
                ));
            }
            let value = Sealed::parse(value).ok_or_else(|| bad(at, "value is not a lockbox: encrypted value"))?;
            if lines
                .iter()
                .any(|x| matches!(x, Line::Entry { name: other, .. } if other == name))
            {
                return Err(SecretsError::DuplicateName { name: name.to_string() });
            }
            values = values.saturating_add(1);
            if values > MAX_VALUES {
                return Err(SecretsError::TooManyValues { max: MAX_VALUES });
            }
            lines.push(Line::Entry {
                name: name.to_string(),
                value,
            });
        }
    }
    Ok(Parsed {
        form: Form::Dotenv,
        body: Body::Dotenv(lines),
        header,
        mac,
    })
}

fn json_bad(e: json::JsonError) -> SecretsError {
    SecretsError::MalformedJson {
        offset: e.offset,
        what: e.what,
    }
}

fn parse_json(bytes: &[u8]) -> Result<Parsed, SecretsError> {
    let root = json::parse(bytes, json::MAX_DEPTH).map_err(json_bad)?;
    let Json::Object(members) = root else {
        return Err(bad(0, "the JSON form is an object"));
    };
    let mut meta = None;
    let mut body = Vec::with_capacity(members.len());
    let mut values = 0usize;
    for (k, v) in members {
        if k == JSON_META_KEY {
            meta = Some(v);
        } else {
            let node = json_node(&k, v, &mut values)?;
            body.push((k, node));
        }
    }
    let Some(Json::Object(meta)) = meta else {
        return Err(bad(0, "missing the \"lockbox\" object"));
    };
    let field = |name: &str| {
        meta.iter().find(|(k, _)| k == name).and_then(|(_, v)| match v {
            Json::String(s) => Some(s.as_str()),
            _ => None,
        })
    };
    if meta.len() != 3 {
        return Err(bad(0, "\"lockbox\" has exactly the members version, header, mac"));
    }
    match field("version") {
        Some("1") => {}
        Some(v) => {
            return Err(match v.parse::<u32>() {
                Ok(n) if !v.starts_with('0') && !v.starts_with('+') => SecretsError::UnsupportedVersion(n),
                _ => bad(0, "\"lockbox\".version is not a version number"),
            });
        }
        None => return Err(bad(0, "\"lockbox\" has exactly the members version, header, mac")),
    }
    let header = field("header").ok_or_else(|| bad(0, "\"lockbox\" has exactly the members version, header, mac"))?;
    let header = decode_b64(header, 0, "header is not base64url")?;
    let mac = field("mac").ok_or_else(|| bad(0, "\"lockbox\" has exactly the members version, header, mac"))?;
    let mac = decode_mac(mac, 0)?;
    Ok(Parsed {
        form: Form::Json,
        body: Body::Json(body),
        header,
        mac,
    })
}

fn json_node(key: &str, v: Json, values: &mut usize) -> Result<Node, SecretsError> {
    if !valid_json_key(key) {
        return Err(bad(0, "control or format character in a JSON key"));
    }
    match v {
        Json::Object(m) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m {
                let node = json_node(&k, v, values)?;
                out.push((k, node));
            }
            Ok(Node::Object(out))
        }
        Json::Array(a) => {
            if u32::try_from(a.len()).is_err() {
                return Err(SecretsError::TooManyValues { max: MAX_VALUES });
            }
            a.into_iter()
                .map(|v| json_node("", v, values))
                .collect::<Result<Vec<_>, _>>()
                .map(Node::Array)
        }
        Json::String(s) => {
            *values = values.saturating_add(1);
            if *values > MAX_VALUES {
                return Err(SecretsError::TooManyValues { max: MAX_VALUES });
            }
            Sealed::parse(&s)
                .map(Node::Leaf)
                .ok_or_else(|| bad(0, "a leaf is not a lockbox: encrypted value"))
        }
        _ => Err(bad(0, "a leaf is not a lockbox: encrypted value")),
    }
}

/// Writes a file in its form.
pub(crate) fn write(p: &Parsed) -> Vec<u8> {
    let mut out = String::new();
    let header = Base64UrlUnpadded::encode_string(&p.header);
    let mac = Base64UrlUnpadded::encode_string(&p.mac);
    match &p.body {
        Body::Dotenv(lines) => {
            for l in lines {
                match l {
                    Line::Blank(s) | Line::Comment(s) => out.push_str(s),
                    Line::Entry { name, value } => {
                        out.push_str(name);
                        out.push('=');
                        out.push_str(&value.text());
                    }
                }
                out.push('\n');
            }
            for (prefix, v) in [(HEADER_LINE, &header), (MAC_LINE, &mac)] {
                out.push_str(prefix);
                out.push_str(v);
                out.push('\n');
            }
        }
        Body::Json(members) => {
            out.push_str("{\n");
            for (k, v) in members {
                indent(&mut out, 1);
                json::write_string(&mut out, k);
                out.push_str(": ");
                write_node(&mut out, v, 1);
                out.push_str(",\n");
            }
            indent(&mut out, 1);
            json::write_string(&mut out, JSON_META_KEY);
            out.push_str(": {\n");
            for (k, v, last) in [("version", "1", false), ("header", &header, false), ("mac", &mac, true)] {
                indent(&mut out, 2);
                json::write_string(&mut out, k);
                out.push_str(": ");
                json::write_string(&mut out, v);
                out.push_str(if last { "\n" } else { ",\n" });
            }
            indent(&mut out, 1);
            out.push_str("}\n}\n");
        }
    }
    out.into_bytes()
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_node(out: &mut String, n: &Node, level: usize) {
    match n {
        Node::Leaf(v) => json::write_string(out, &v.text()),
        Node::Object(m) if m.is_empty() => out.push_str("{}"),
        Node::Array(a) if a.is_empty() => out.push_str("[]"),
        Node::Object(m) => {
            out.push_str("{\n");
            for (i, (k, v)) in m.iter().enumerate() {
                indent(out, level.saturating_add(1));
                json::write_string(out, k);
                out.push_str(": ");
                write_node(out, v, level.saturating_add(1));
                out.push_str(if i.saturating_add(1) == m.len() { "\n" } else { ",\n" });
            }
            indent(out, level);
            out.push('}');
        }
        Node::Array(a) => {
            out.push_str("[\n");
            for (i, v) in a.iter().enumerate() {
                indent(out, level.saturating_add(1));
                write_node(out, v, level.saturating_add(1));
                out.push_str(if i.saturating_add(1) == a.len() { "\n" } else { ",\n" });
            }
            indent(out, level);
            out.push(']');
        }
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

/// A value's associated data (§5): label, file id, form, path.
pub(crate) fn value_aad(file_id: &[u8; FILE_ID_LEN], form: Form, path: &[Seg]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(VALUE_AAD_LABEL);
    out.extend_from_slice(file_id);
    out.push(form.byte());
    put_u32(&mut out, path.len());
    for s in path {
        match s {
            Seg::Key(k) => {
                out.push(b'k');
                put_u32(&mut out, k.len());
                out.extend_from_slice(k.as_bytes());
            }
            Seg::Index(i) => {
                out.push(b'i');
                out.extend_from_slice(&i.to_be_bytes());
            }
        }
    }
    out
}

/// The authenticator's input (§6): label, form, header, the body as a tree.
pub(crate) fn mac_input(form: Form, header: &[u8], body: &Body) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len().saturating_add(1024));
    out.extend_from_slice(MAC_LABEL);
    out.push(form.byte());
    put_u32(&mut out, header.len());
    out.extend_from_slice(header);
    match body {
        Body::Dotenv(lines) => {
            let entries: Vec<(&String, &Sealed)> = lines
                .iter()
                .filter_map(|l| match l {
                    Line::Entry { name, value } => Some((name, value)),
                    _ => None,
                })
                .collect();
            out.push(b'o');
            put_u32(&mut out, entries.len());
            for (name, value) in entries {
                put_u32(&mut out, name.len());
                out.extend_from_slice(name.as_bytes());
                mac_leaf(&mut out, value);
            }
        }
        Body::Json(members) => mac_object(&mut out, members),
    }
    out
}

fn mac_leaf(out: &mut Vec<u8>, v: &Sealed) {
    out.push(b'v');
    put_u32(out, v.0.len());
    out.extend_from_slice(&v.0);
}

fn mac_object(out: &mut Vec<u8>, members: &[(String, Node)]) {
    out.push(b'o');
    put_u32(out, members.len());
    for (k, v) in members {
        put_u32(out, k.len());
        out.extend_from_slice(k.as_bytes());
        mac_node(out, v);
    }
}

fn mac_node(out: &mut Vec<u8>, n: &Node) {
    match n {
        Node::Leaf(v) => mac_leaf(out, v),
        Node::Object(m) => mac_object(out, m),
        Node::Array(a) => {
            out.push(b'a');
            put_u32(out, a.len());
            for v in a {
                mac_node(out, v);
            }
        }
    }
}

/// Every value of `body` with its path, in document order.
pub(crate) fn leaves(body: &Body) -> Vec<(Vec<Seg>, &Sealed)> {
    let mut out = Vec::new();
    match body {
        Body::Dotenv(lines) => {
            for l in lines {
                if let Line::Entry { name, value } = l {
                    out.push((alloc::vec![Seg::Key(name.clone())], value));
                }
            }
        }
        Body::Json(members) => {
            let mut path = Vec::new();
            for (k, v) in members {
                path.push(Seg::Key(k.clone()));
                node_leaves(v, &mut path, &mut out);
                path.pop();
            }
        }
    }
    out
}

fn node_leaves<'a>(n: &'a Node, path: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, &'a Sealed)>) {
    match n {
        Node::Leaf(v) => out.push((path.clone(), v)),
        Node::Object(m) => {
            for (k, v) in m {
                path.push(Seg::Key(k.clone()));
                node_leaves(v, path, out);
                path.pop();
            }
        }
        Node::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(Seg::Index(u32::try_from(i).unwrap_or(u32::MAX)));
                node_leaves(v, path, out);
                path.pop();
            }
        }
    }
}

/// The name shown for a path: the dotenv name, or a JSON Pointer (RFC 6901).
pub(crate) fn path_name(form: Form, path: &[Seg]) -> String {
    match (form, path) {
        (Form::Dotenv, [Seg::Key(k)]) => k.clone(),
        _ => {
            let mut s = String::new();
            for seg in path {
                s.push('/');
                match seg {
                    Seg::Key(k) => s.push_str(&k.replace('~', "~0").replace('/', "~1")),
                    Seg::Index(i) => s.push_str(&i.to_string()),
                }
            }
            s
        }
    }
}

/// The tokens of a JSON Pointer (`/a/b~1c` → `a`, `b/c`); `""` is the root.
pub(crate) fn pointer_tokens(pointer: &str) -> Result<Vec<String>, SecretsError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer.strip_prefix('/').ok_or_else(|| SecretsError::InvalidName {
        name: pointer.to_string(),
        why: "a JSON Pointer starts with '/'",
    })?;
    rest.split('/')
        .map(|t| {
            if t.replace("~0", "").replace("~1", "").contains('~') {
                return Err(SecretsError::InvalidName {
                    name: pointer.to_string(),
                    why: "'~' must be escaped as ~0 (and '/' as ~1)",
                });
            }
            Ok(t.replace("~1", "/").replace("~0", "~"))
        })
        .collect()
}

/// An array index token: decimal, no leading zeros.
pub(crate) fn index_token(t: &str) -> Option<u32> {
    if t.is_empty() || (t.len() > 1 && t.starts_with('0')) || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> Sealed {
        Sealed(alloc::vec![9u8; NONCE_LEN + PAD_BLOCK + TAG_LEN])
    }

    #[test]
    fn dotenv_round_trips_and_is_strict() {
        let p = Parsed {
            form: Form::Dotenv,
            body: Body::Dotenv(alloc::vec![
                Line::Comment("# db".into()),
                Line::Entry {
                    name: "DB_PASS".into(),
                    value: sealed()
                },
                Line::Blank("  ".into()),
            ]),
            header: alloc::vec![1, 2, 3],
            mac: [4; 32],
        };
        let bytes = write(&p);
        let back = parse(Form::Dotenv, &bytes).unwrap();
        assert_eq!(back.body, p.body);
        assert_eq!((back.header, back.mac), (p.header.clone(), p.mac));
        assert_eq!(write(&parse(Form::Dotenv, &bytes).unwrap()), bytes);
        let text = core::str::from_utf8(&bytes).unwrap();
        // CRLF is accepted; a missing final newline too.
        assert!(parse(Form::Dotenv, text.replace('\n', "\r\n").as_bytes()).is_ok());
        assert!(parse(Form::Dotenv, text.trim_end().as_bytes()).is_ok());
        for bad in [
            text.replace("DB_PASS", "1DB"),
            text.replace("DB_PASS=", "DB PASS="),
            text.replace("DB_PASS=lockbox:", "DB_PASS=x"),
            text.replace("# db", "# d\u{202e}b"),
            text.replace("# db", "#lockbox:v1:mac:x"),
            format!("{text}# after\n"),
            text.replace("#lockbox:v1:mac:", "#lockbox:v1:max:"),
            text.replace("# db", "DB_PASS=lockbox:AAAA"),
        ] {
            assert!(parse(Form::Dotenv, bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(matches!(
            parse(
                Form::Dotenv,
                text.replace("#lockbox:v1:mac", "#lockbox:v2:mac").as_bytes()
            ),
            Err(SecretsError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn json_round_trips_and_is_strict() {
        let p = Parsed {
            form: Form::Json,
            body: Body::Json(alloc::vec![
                (
                    "db".into(),
                    Node::Object(alloc::vec![("pass".into(), Node::Leaf(sealed()))])
                ),
                ("hosts".into(), Node::Array(alloc::vec![Node::Leaf(sealed())])),
                ("e".into(), Node::Object(alloc::vec![])),
            ]),
            header: alloc::vec![1, 2, 3],
            mac: [4; 32],
        };
        let bytes = write(&p);
        let back = parse(Form::Json, &bytes).unwrap();
        assert_eq!(back.body, p.body);
        assert_eq!(write(&back), bytes);
        let names: Vec<String> = leaves(&back.body)
            .iter()
            .map(|(p, _)| path_name(Form::Json, p))
            .collect();
        assert_eq!(names, ["/db/pass", "/hosts/0"]);
        let text = core::str::from_utf8(&bytes).unwrap();
        for bad in [
            text.replace("\"e\": {}", "\"e\": 1"),
            text.replace("\"e\": {}", "\"e\": \"plain\""),
            text.replace("\"e\": {}", "\"db\": {}"),
            text.replace("\"version\": \"1\",", ""),
            text.replace("\"e\"", "\"e\u{200b}\""),
        ] {
            assert!(parse(Form::Json, bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(pointer_tokens("/a~1b/~0c").unwrap(), ["a/b", "~c"]);
        assert!(pointer_tokens("a").is_err() && pointer_tokens("/~2").is_err());
        assert_eq!(
            path_name(Form::Json, &[Seg::Key("a/b".into()), Seg::Index(3)]),
            "/a~1b/3"
        );
    }
}

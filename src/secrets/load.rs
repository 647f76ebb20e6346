//! Loaded secrets: the decrypted values of a secrets file (or of a secret
//! manager's JSON secret) as [`SecretString`]s, with typed getters and the
//! environment of a child process; and [`SecretValue`], one secret fetched
//! from a secret manager.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use secrecy::{ExposeSecret, SecretBox, SecretString};

use super::error::SecretsError;
use super::json::{self, Json};
use crate::error::Error;

/// The decrypted values of a secrets file, by name (the dotenv name, or the
/// JSON Pointer of a JSON leaf), in file order.
///
/// Every value is a [`SecretString`]: zeroized on drop, never printed
/// (`Debug` lists the names only), reachable through
/// [`expose_secret`](ExposeSecret::expose_secret).
pub struct Secrets {
    entries: Vec<(String, SecretString)>,
    json: bool,
}

impl Secrets {
    pub(crate) fn new(entries: Vec<(String, SecretString)>, json: bool) -> Self {
        Self { entries, json }
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of `name`, or an error naming it if it is missing.
    pub fn require(&self, name: &str) -> Result<&SecretString, Error> {
        self.get(name).ok_or_else(|| {
            SecretsError::InvalidName {
                name: name.to_string(),
                why: "no such value",
            }
            .into()
        })
    }

    /// The value of `name` parsed as a `T` (a port number, a flag, a
    /// recipient identity...; for a local KEK, see [`SecretValue::local_kek`]).
    /// The error names the value, never shows it: a missing name, or a value
    /// `T` refuses.
    ///
    /// ```
    /// # fn main() -> Result<(), lockbox::Error> {
    /// # use lockbox::secrets::Secrets;
    /// # let secrets = Secrets::from_json_object(r#"{"PORT": "5432", "DEBUG": "true"}"#)?;
    /// let port: u16 = secrets.parse("PORT")?;
    /// let debug: bool = secrets.parse("DEBUG")?;
    /// # assert_eq!((port, debug), (5432, true));
    /// # Ok(()) }
    /// ```
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T, Error> {
        self.require(name)?.expose_secret().parse().map_err(|_| {
            SecretsError::InvalidValue {
                name: name.to_string(),
                why: "does not parse as the requested type",
            }
            .into()
        })
    }

    /// The names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// Every (name, value) pair, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The values as environment variables for a child process, in file
    /// order: a dotenv name as it is; a JSON Pointer as an upper-case name
    /// (`/database/password` → `DATABASE_PASSWORD`, every character
    /// other than `A-Z 0-9 _` becomes `_`). Refuses names that collide
    /// after mapping, or a value holding a NUL byte (no environment can).
    ///
    /// Hand them to `std::process::Command::envs` (with `expose_secret`):
    /// the values then exist in the child's environment and in the standard
    /// library's copy of it, which lockbox cannot zeroize; nothing is
    /// written to disk. See `examples/secrets.rs` (`run`).
    pub fn env_vars(&self) -> Result<Vec<(String, &SecretString)>, Error> {
        let mut out: Vec<(String, &SecretString)> = Vec::with_capacity(self.entries.len());
        for (name, v) in &self.entries {
            let env = if self.json { env_name(name) } else { name.clone() };
            if env.is_empty() || env.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(SecretsError::InvalidName {
                    name: name.clone(),
                    why: "does not map to an environment variable name",
                }
                .into());
            }
            if out.iter().any(|(e, _)| *e == env) {
                return Err(SecretsError::DuplicateName { name: env }.into());
            }
            if v.expose_secret().contains('\0') {
                return Err(SecretsError::InvalidValue {
                    name: name.clone(),
                    why: "an environment variable cannot hold a NUL byte",
                }
                .into());
            }
            out.push((env, v));
        }
        Ok(out)
    }

    /// Loads a JSON object of values, as Secrets Manager and Vault KV
    /// secrets hold them: every member's value becomes one entry named by
    /// its key (a string's text, or the JSON text of any other value).
    /// Parsed strictly (duplicate keys refused), through zeroized buffers.
    pub fn from_json_object(text: &str) -> Result<Self, Error> {
        let Json::Object(members) = json::parse(text.as_bytes(), json::MAX_DEPTH).map_err(|e| {
            Error::from(SecretsError::MalformedJson {
                offset: e.offset,
                what: e.what,
            })
        })?
        else {
            return Err(SecretsError::Malformed {
                line: 0,
                what: "the secret is not a JSON object",
            }
            .into());
        };
        let mut entries = Vec::with_capacity(members.len());
        for (k, v) in &members {
            entries.push((k.clone(), json_text(v)));
        }
        Ok(Self { entries, json: false })
    }
}

/// A JSON value as secret text: a string's text, a scalar's literal, or
/// compact JSON for an array or object.
fn json_text(v: &Json) -> SecretString {
    match v {
        Json::String(s) => SecretString::from(s.as_str()),
        Json::Number(n) => SecretString::from(n.as_str()),
        Json::Bool(b) => SecretString::from(if *b { "true" } else { "false" }),
        Json::Null => SecretString::from("null"),
        other => {
            let mut out = String::with_capacity(compact_len(other));
            compact(&mut out, other);
            SecretString::from(out)
        }
    }
}

fn compact_len(v: &Json) -> usize {
    match v {
        Json::String(s) => json::string_len(s),
        Json::Number(n) => n.len(),
        Json::Bool(true) | Json::Null => 4,
        Json::Bool(false) => 5,
        Json::Array(a) => a
            .iter()
            .fold(2usize, |n, v| n.saturating_add(compact_len(v)).saturating_add(1)),
        Json::Object(m) => m.iter().fold(2usize, |n, (k, v)| {
            n.saturating_add(json::string_len(k))
                .saturating_add(compact_len(v))
                .saturating_add(2)
        }),
    }
}

fn compact(out: &mut String, v: &Json) {
    match v {
        Json::String(s) => json::write_string(out, s),
        Json::Number(n) => out.push_str(n),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Null => out.push_str("null"),
        Json::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                compact(out, v);
            }
            out.push(']');
        }
        Json::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_string(out, k);
                out.push(':');
                compact(out, v);
            }
            out.push('}');
        }
    }
}

/// `/database/password` → `DATABASE_PASSWORD`.
fn env_name(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' | '_' => c,
            _ => '_',
        })
        .collect()
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field(
                "names",
                &self.entries.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// One secret fetched from a secret manager (AWS Secrets Manager, Vault /
/// OpenBao KV): text or bytes, zeroized on drop, never printed, with the
/// name and the version it was read at.
///
/// Turn it into what it holds with [`local_kek`](Self::local_kek),
/// [`parse`](Self::parse) (an [`Identity`](crate::recipient::Identity), a
/// number...), [`field`](Self::field) (one member of a JSON secret) or
/// [`secrets`](Self::secrets) (all of them).
pub struct SecretValue {
    name: String,
    version: String,
    value: Value,
}

enum Value {
    Text(SecretString),
    Bytes(SecretBox<[u8]>),
}

impl SecretValue {
    /// A text secret named `name` at `version`.
    pub fn from_text(name: impl Into<String>, version: impl Into<String>, text: SecretString) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            value: Value::Text(text),
        }
    }

    /// A binary secret named `name` at `version`.
    pub fn from_bytes(name: impl Into<String>, version: impl Into<String>, bytes: SecretBox<[u8]>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            value: Value::Bytes(bytes),
        }
    }

    /// The secret's name (or path) as the service knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version that was read (a Secrets Manager version id, a KV
    /// version number): pin it to read exactly this value again.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The text, for a text secret.
    pub fn text(&self) -> Option<&SecretString> {
        match &self.value {
            Value::Text(t) => Some(t),
            Value::Bytes(_) => None,
        }
    }

    /// The bytes, for a binary secret.
    pub fn bytes(&self) -> Option<&SecretBox<[u8]>> {
        match &self.value {
            Value::Bytes(b) => Some(b),
            Value::Text(_) => None,
        }
    }

    fn require_text(&self) -> Result<&str, Error> {
        self.text().map(|t| t.expose_secret()).ok_or_else(|| {
            SecretsError::InvalidValue {
                name: self.name.clone(),
                why: "a binary secret, not text",
            }
            .into()
        })
    }

    /// A local KEK: a binary secret of exactly 32 bytes, or text holding
    /// standard base64 of 32 bytes (the key-file form).
    pub fn local_kek(&self) -> Result<crate::LocalKek, Error> {
        match &self.value {
            Value::Bytes(b) => {
                let bytes: &[u8; crate::LOCAL_KEK_LEN] = b.expose_secret().try_into().map_err(|_| {
                    Error::from(SecretsError::InvalidValue {
                        name: self.name.clone(),
                        why: "a binary KEK is exactly 32 bytes",
                    })
                })?;
                let mut key = Box::new([0u8; crate::LOCAL_KEK_LEN]);
                key.copy_from_slice(bytes);
                Ok(crate::LocalKek::from_boxed(SecretBox::new(key)))
            }
            Value::Text(t) => crate::LocalKek::from_base64(t.expose_secret()).map_err(|_| {
                SecretsError::InvalidValue {
                    name: self.name.clone(),
                    why: "not standard base64 of a 32-byte key",
                }
                .into()
            }),
        }
    }

    /// The text parsed as a `T` (an [`Identity`](crate::recipient::Identity)
    /// string, a number...). Errors name the secret, never show it.
    pub fn parse<T: FromStr>(&self) -> Result<T, Error> {
        self.require_text()?.trim().parse().map_err(|_| {
            SecretsError::InvalidValue {
                name: self.name.clone(),
                why: "does not parse as the requested type",
            }
            .into()
        })
    }

    /// Every member of a JSON-object secret (`{"user": "…", "password":
    /// "…"}`), as [`Secrets`].
    pub fn secrets(&self) -> Result<Secrets, Error> {
        Secrets::from_json_object(self.require_text()?)
    }

    /// One member of a JSON-object secret.
    pub fn field(&self, key: &str) -> Result<SecretString, Error> {
        let all = self.secrets()?;
        let v = all.get(key).ok_or_else(|| {
            Error::from(SecretsError::InvalidName {
                name: key.to_string(),
                why: "no such member in the secret",
            })
        })?;
        Ok(SecretString::from(v.expose_secret()))
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("name", &self.name)
            .field("version", &self.version)
            .field(
                "value",
                &match self.value {
                    Value::Text(_) => "[REDACTED text]",
                    Value::Bytes(_) => "[REDACTED bytes]",
                },
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_load_and_env_names_map() {
        let s = Secrets::from_json_object(r#"{"user":"app","port":5432,"tls":{"on":true}}"#).unwrap();
        assert_eq!(s.get("user").unwrap().expose_secret(), "app");
        assert_eq!(s.parse::<u16>("port").unwrap(), 5432);
        assert_eq!(s.get("tls").unwrap().expose_secret(), r#"{"on":true}"#);
        assert!(s.parse::<u16>("user").is_err());
        assert!(!format!("{s:?}").contains("app"));
        assert!(Secrets::from_json_object(r#"{"a":1,"a":2}"#).is_err());
        assert_eq!(env_name("/database/pass-word"), "DATABASE_PASS_WORD");
        let v = SecretValue::from_text("n", "1", SecretString::from("{\"k\":\"v\"}"));
        assert_eq!(v.field("k").unwrap().expose_secret(), "v");
        assert!(!format!("{v:?}").contains('k'));
    }
}

//! A small, strict JSON parser and writer (RFC 8259), for the JSON form of
//! secrets files, for plaintext JSON values, and for secret-manager values.
//!
//! Written here rather than taken from `serde_json` because secrets need what
//! a general parser does not give: **duplicate object keys are refused**
//! (`serde_json` keeps the last one silently, so two readers could disagree
//! on a value), nesting and size are bounded, every string and number is
//! decoded into a buffer sized up front and zeroized on drop (no growth
//! leaves a copy of a secret in freed memory), and nothing else is accepted:
//! no byte-order mark, no trailing data, no lone surrogates, no raw control
//! characters, no comments.

use alloc::string::String;
use alloc::vec::Vec;

use zeroize::Zeroizing;

/// Deepest nesting of arrays and objects accepted.
pub(crate) const MAX_DEPTH: usize = 32;

/// A JSON value. Strings and numbers (their exact text) are zeroized on drop.
#[derive(Clone)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// The number's text, exactly as written (validated against the grammar).
    Number(Zeroizing<String>),
    String(Zeroizing<String>),
    Array(Vec<Json>),
    /// Members in document order; keys are unique.
    Object(Vec<(String, Json)>),
}

/// Where and why parsing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JsonError {
    /// Byte offset in the input.
    pub(crate) offset: usize,
    pub(crate) what: &'static str,
}

fn fail<T>(offset: usize, what: &'static str) -> Result<T, JsonError> {
    Err(JsonError { offset, what })
}

/// Parses one JSON value that spans the whole input (whitespace around it
/// allowed), nesting at most `max_depth` deep.
pub(crate) fn parse(input: &[u8], max_depth: usize) -> Result<Json, JsonError> {
    let text = match core::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => return fail(e.valid_up_to(), "not UTF-8"),
    };
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        max_depth,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.pos != p.s.len() {
        return fail(p.pos, "trailing data after the JSON value");
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn bump(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.bump();
            Ok(())
        } else {
            fail(self.pos, what)
        }
    }

    fn literal(&mut self, word: &'static [u8], v: Json) -> Result<Json, JsonError> {
        let end = self.pos.saturating_add(word.len());
        if self.s.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(v)
        } else {
            fail(self.pos, "invalid literal")
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        match self.peek() {
            None => fail(self.pos, "unexpected end of input"),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => fail(self.pos, "unexpected character"),
        }
    }

    fn nest(&self, depth: usize) -> Result<usize, JsonError> {
        let d = depth.saturating_add(1);
        if d > self.max_depth {
            return fail(self.pos, "nested too deeply");
        }
        Ok(d)
    }

    fn object(&mut self, depth: usize) -> Result<Json, JsonError> {
        let depth = self.nest(depth)?;
        self.bump();
        let mut members: Vec<(String, Json)> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.bump();
            return Ok(Json::Object(members));
        }
        loop {
            self.ws();
            let at = self.pos;
            if self.peek() != Some(b'"') {
                return fail(at, "expected a string key");
            }
            let key = self.string()?;
            if members.iter().any(|(k, _)| k.as_str() == key.as_str()) {
                return fail(at, "duplicate object key");
            }
            self.ws();
            self.expect(b':', "expected ':'")?;
            self.ws();
            let v = self.value(depth)?;
            members.push((String::from(key.as_str()), v));
            self.ws();
            match self.peek() {
                Some(b',') => self.bump(),
                Some(b'}') => {
                    self.bump();
                    return Ok(Json::Object(members));
                }
                _ => return fail(self.pos, "expected ',' or '}'"),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, JsonError> {
        let depth = self.nest(depth)?;
        self.bump();
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.bump();
            return Ok(Json::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.bump(),
                Some(b']') => {
                    self.bump();
                    return Ok(Json::Array(items));
                }
                _ => return fail(self.pos, "expected ',' or ']'"),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.bump();
        }
        self.pos.saturating_sub(start)
    }

    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.bump();
        }
        match self.peek() {
            Some(b'0') => self.bump(),
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return fail(self.pos, "invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.bump();
            if self.digits() == 0 {
                return fail(self.pos, "invalid number");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.bump();
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.bump();
            }
            if self.digits() == 0 {
                return fail(self.pos, "invalid number");
            }
        }
        let text = self.text.get(start..self.pos).unwrap_or_default();
        Ok(Json::Number(Zeroizing::new(String::from(text))))
    }

    /// A string starting at the opening quote: its raw extent is found
    /// first, so the decoded text goes into a buffer that never grows.
    fn string(&mut self) -> Result<Zeroizing<String>, JsonError> {
        self.bump();
        let start = self.pos;
        let mut end = start;
        loop {
            match self.s.get(end) {
                None => return fail(end, "unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => end = end.saturating_add(2),
                Some(_) => end = end.saturating_add(1),
            }
        }
        let mut out = Zeroizing::new(String::with_capacity(end.saturating_sub(start)));
        while self.pos < end {
            let at = self.pos;
            let Some(c) = self.text.get(at..).and_then(|t| t.chars().next()) else {
                return fail(at, "unterminated string");
            };
            if c < ' ' {
                return fail(at, "control character in string");
            }
            if c != '\\' {
                out.push(c);
                self.pos = at.saturating_add(c.len_utf8());
                continue;
            }
            let esc = self.s.get(at.saturating_add(1)).copied();
            self.pos = at.saturating_add(2);
            let decoded = match esc {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => self.unicode_escape(at)?,
                _ => return fail(at, "invalid escape"),
            };
            out.push(decoded);
        }
        // The closing quote.
        self.bump();
        Ok(out)
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b) => char::from(b).to_digit(16),
                None => None,
            };
            let Some(d) = d else {
                return fail(self.pos, "invalid \\u escape");
            };
            v = v.saturating_mul(16).saturating_add(d);
            self.bump();
        }
        Ok(v)
    }

    /// After `\u`: one code point, a surrogate pair, never a lone surrogate.
    fn unicode_escape(&mut self, at: usize) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if self.s.get(self.pos..self.pos.saturating_add(2)) != Some(b"\\u") {
                return fail(at, "lone surrogate in \\u escape");
            }
            self.pos = self.pos.saturating_add(2);
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return fail(at, "lone surrogate in \\u escape");
            }
            0x10000u32
                .saturating_add((hi.saturating_sub(0xD800)) << 10)
                .saturating_add(lo.saturating_sub(0xDC00))
        } else if (0xDC00..0xE000).contains(&hi) {
            return fail(at, "lone surrogate in \\u escape");
        } else {
            hi
        };
        char::from_u32(code).map_or_else(|| fail(at, "invalid \\u escape"), Ok)
    }
}

pub(crate) use crate::json::{string_len, write_string};

/// Whether `text` is a JSON number, exactly (the grammar of RFC 8259 §6).
pub(crate) fn is_number(text: &str) -> bool {
    matches!(parse(text.as_bytes(), 1), Ok(Json::Number(n)) if n.len() == text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Json {
        parse(s.as_bytes(), MAX_DEPTH).unwrap()
    }
    fn err(s: &str) -> JsonError {
        match parse(s.as_bytes(), MAX_DEPTH) {
            Err(e) => e,
            Ok(_) => panic!("accepted {s:?}"),
        }
    }

    #[test]
    fn accepts_json() {
        match ok(r#" {"a": [1, -0.5e+3, true, false, null, "x\u00e9\ud83d\ude00\n"], "b": {}} "#) {
            Json::Object(m) => {
                assert_eq!(m.len(), 2);
                match &m[0].1 {
                    Json::Array(a) => match (&a[1], &a[5]) {
                        (Json::Number(n), Json::String(s)) => {
                            assert_eq!(n.as_str(), "-0.5e+3");
                            assert_eq!(s.as_str(), "xé😀\n");
                        }
                        _ => panic!(),
                    },
                    _ => panic!(),
                }
            }
            _ => panic!(),
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "{",
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,}"#,
            "[1,]",
            "01",
            "1.",
            "-",
            "1e",
            "\u{feff}{}",
            "{} x",
            "\"\u{1}\"",
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\x""#,
            "'a'",
            "// c\n{}",
            "nul",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        ] {
            let _ = err(bad);
        }
        assert_eq!(err(r#"{"a":1,"a":2}"#).what, "duplicate object key");
    }

    #[test]
    fn strings_round_trip() {
        for s in ["", "plain", "q\"b\\s/", "\n\r\t\u{8}\u{c}\u{1}\u{7f}", "é😀"] {
            let mut out = String::new();
            write_string(&mut out, s);
            assert_eq!(out.len(), string_len(s));
            match ok(&out) {
                Json::String(back) => assert_eq!(back.as_str(), s),
                _ => panic!(),
            }
        }
        assert!(is_number("-12.5E-3") && !is_number("1 ") && !is_number("+1"));
    }
}

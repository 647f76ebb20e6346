//! The little JSON the engine writes (reports, log lines) and reads back
//! (its own log lines: flat objects of strings and unsigned integers).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

/// Appends `s` as a JSON string.
pub(crate) fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A flat JSON object being written.
pub(crate) struct Obj<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> Obj<'o> {
    pub(crate) fn new(out: &'o mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, k);
        self.out.push(':');
    }
    pub(crate) fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        string(self.out, v);
        self
    }
    pub(crate) fn num(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        let _ = write!(self.out, "{v}");
        self
    }
    pub(crate) fn float(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k);
        if v.is_finite() {
            let _ = write!(self.out, "{v:.3}");
        } else {
            self.out.push_str("null");
        }
        self
    }
    /// A raw JSON value (an array or object written by the caller).
    pub(crate) fn raw(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.out.push_str(v);
        self
    }
    pub(crate) fn end(&mut self) {
        self.out.push('}');
    }
}

/// A value of a flat object read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Str(String),
    Num(u64),
}

/// Parses a flat object of strings and unsigned integers (what [`Obj`]
/// writes without `raw` or `float`); `None` for anything else (a torn line).
pub(crate) fn parse_flat(line: &str) -> Option<Vec<(String, Value)>> {
    let mut p = Parser {
        s: line.as_bytes(),
        at: 0,
    };
    p.ws();
    p.eat(b'{')?;
    let mut out = Vec::new();
    p.ws();
    if p.peek() == Some(b'}') {
        p.at = p.at.saturating_add(1);
        return p.done(out);
    }
    loop {
        p.ws();
        let k = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        let v = match p.peek()? {
            b'"' => Value::Str(p.string()?),
            b'0'..=b'9' => Value::Num(p.number()?),
            _ => return None,
        };
        out.push((k, v));
        p.ws();
        match p.next()? {
            b',' => {}
            b'}' => return p.done(out),
            _ => return None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at = self.at.saturating_add(1);
        Some(b)
    }
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at = self.at.saturating_add(1);
        }
    }
    fn done<T>(&mut self, t: T) -> Option<T> {
        self.ws();
        (self.at == self.s.len()).then_some(t)
    }
    fn number(&mut self) -> Option<u64> {
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(d.wrapping_sub(b'0')))?;
            self.at = self.at.saturating_add(1);
        }
        Some(n)
    }
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(buf).ok(),
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.s.get(self.at..self.at.checked_add(4)?)?;
                            self.at = self.at.checked_add(4)?;
                            let code = u32::from_str_radix(core::str::from_utf8(hex).ok()?, 16).ok()?;
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
                b => buf.push(b),
            }
        }
    }
}

/// The string field `k` of a parsed object.
pub(crate) fn get_str<'v>(obj: &'v [(String, Value)], k: &str) -> Option<&'v str> {
    obj.iter().find_map(|(key, v)| match v {
        Value::Str(s) if key == k => Some(s.as_str()),
        _ => None,
    })
}

/// The number field `k` of a parsed object.
pub(crate) fn get_num(obj: &[(String, Value)], k: &str) -> Option<u64> {
    obj.iter().find_map(|(key, v)| match v {
        Value::Num(n) if key == k => Some(*n),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_awkward_strings() {
        let mut s = String::new();
        Obj::new(&mut s).str("k", "a\"b\\c\nd\u{1}é/").num("n", 42).end();
        let o = parse_flat(&s).unwrap();
        assert_eq!(get_str(&o, "k"), Some("a\"b\\c\nd\u{1}é/"));
        assert_eq!(get_num(&o, "n"), Some(42));
        assert!(parse_flat(&s[..s.len() - 1]).is_none());
        assert!(parse_flat("{\"a\":1}x").is_none());
    }
}

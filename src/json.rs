//! The one JSON string writer, for everything lockbox writes as JSON: audit
//! records (`AUDIT.md`), rotation reports and checkpoints, secrets files
//! (`SECRETS.md`).
//!
//! Quotes, backslashes and every control character (C0, DEL and C1), plus
//! U+2028 and U+2029, are escaped, so a string never spans lines: `\n`,
//! `\r`, `\t` by name, the rest as `\uXXXX` (lowercase hex). Everything else
//! is written as is (UTF-8).

use alloc::string::String;
use core::fmt::Write as _;

/// Whether `c` is written as a `\uXXXX` escape.
fn escaped_as_unicode(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Appends `s` as a JSON string literal. It appends exactly
/// [`string_len`]`(s)` bytes, so an `out` reserved for that many never
/// grows (growing would leave a copy of what it held: secrets files write
/// values into zeroizing buffers sized in advance).
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Every escaped character is in the Basic Multilingual Plane:
            // one UTF-16 unit, one escape.
            c if escaped_as_unicode(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The number of bytes [`write_string`] appends for `s` (for presizing).
#[cfg_attr(not(feature = "secrets"), allow(dead_code))]
pub(crate) fn string_len(s: &str) -> usize {
    s.chars().fold(2usize, |n, c| {
        n.saturating_add(match c {
            '"' | '\\' | '\n' | '\r' | '\t' => 2,
            c if escaped_as_unicode(c) => 6,
            c => c.len_utf8(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_to_one_line_with_the_predicted_length() {
        let cases = [
            ("", r#""""#),
            ("a\"b\\c\nd\u{1}e\u{2028}é", r#""a\"b\\c\nd\u0001e\u2028é""#),
            (
                "\r\t\u{8}\u{c}\u{7f}\u{85}\u{2029}/😀",
                r#""\r\t\u0008\u000c\u007f\u0085\u2029/😀""#,
            ),
        ];
        for (s, want) in cases {
            let mut out = String::new();
            write_string(&mut out, s);
            assert_eq!(out, want);
            assert_eq!(out.len(), string_len(s), "{s:?}");
        }
    }
}

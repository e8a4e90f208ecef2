//! The part of Go's `encoding/json` that nsqd's wire exposes, reproduced exactly.
//!
//! Decoding: IDENTIFY's body is `json.Unmarshal`ed into a Go struct, and what Go accepts is
//! narrower or wider than serde_json in ways a client can hit: Go coerces invalid UTF-8 and lone
//! surrogates in strings to U+FFFD (serde_json refuses them), matches keys case-insensitively and
//! applies duplicate keys in order (a `null` leaves the field alone), accepts `-0` for an integer
//! field, and refuses `1.0` or `1e3` there. So this is a small reader for exactly that: it walks
//! the top-level object and hands each member's scalar value to the caller in order.
//!
//! Encoding: `write_string` is `json.Marshal`'s string encoder with HTML escaping on (`<`, `>`,
//! `&`, U+2028, U+2029 become `\u....`), as Go 1.22+ writes it (`\b` and `\f` use the short forms).

use super::quote::decode_rune;

/// Input Go's `json.Unmarshal` would refuse (syntax, type or range). nsqd turns every such failure
/// into the same error text, so no detail is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct JsonError;

/// Go's scanner refuses deeper nesting (`maxNestingDepth`); the top-level object is depth 1.
const NESTING_DEPTH_MAX: usize = 10_000;

/// One member value of the top-level object, as the caller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Value<'a> {
    Null,
    Bool(bool),
    /// A string's raw contents between the quotes, already validated; see `unquote`.
    Str(&'a [u8]),
    /// A number literal, already validated against JSON's grammar; see `parse_int`.
    Number(&'a [u8]),
    /// An object or array (validated and skipped): never a valid value for a scalar field.
    Composite,
}

/// Walks `input` as `json.Unmarshal(input, &someStruct)` does: `member(key, value)` is called for
/// each member of the top-level object in order, keys unquoted. A top-level `null` is accepted
/// and calls nothing; any other top-level value, or trailing non-whitespace, is an error.
pub(super) fn decode_object(
    input: &[u8],
    mut member: impl FnMut(&str, Value<'_>) -> Result<(), JsonError>,
) -> Result<(), JsonError> {
    let mut r = Reader { input, at: 0 };
    r.skip_ws();
    match r.peek() {
        Some(b'n') => r.literal(b"null")?,
        Some(b'{') => {
            r.at += 1;
            r.skip_ws();
            if r.peek() == Some(b'}') {
                r.at += 1;
            } else {
                loop {
                    r.skip_ws();
                    let key = unquote(r.string()?);
                    r.skip_ws();
                    r.expect(b':')?;
                    r.skip_ws();
                    let value = r.value()?;
                    member(&key, value)?;
                    r.skip_ws();
                    match r.next() {
                        Some(b',') => continue,
                        Some(b'}') => break,
                        _ => return Err(JsonError),
                    }
                }
            }
        }
        _ => return Err(JsonError),
    }
    r.skip_ws();
    if r.at == input.len() {
        Ok(())
    } else {
        Err(JsonError)
    }
}

/// Go's `strconv.ParseInt(literal, 10, bits)` on a JSON number literal, which is what decoding a
/// number into a Go integer field does: fractions and exponents are errors, so is overflow.
pub(super) fn parse_int(literal: &[u8], bits: u32) -> Result<i64, JsonError> {
    let (negative, digits) = match literal.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, literal),
    };
    if digits.is_empty() {
        return Err(JsonError);
    }
    let mut magnitude: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(JsonError);
        }
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(d - b'0')))
            .ok_or(JsonError)?;
    }
    let limit = 1u64 << (bits - 1); // |min|; max is one less
    match negative {
        true if magnitude <= limit => Ok((magnitude as i64).wrapping_neg()),
        false if magnitude < limit => Ok(magnitude as i64),
        _ => Err(JsonError),
    }
}

/// Go's `unquoteBytes` on validated string contents: escapes resolved, a `\u` surrogate that is
/// not part of a valid pair becomes U+FFFD, and each byte of invalid UTF-8 becomes U+FFFD.
pub(super) fn unquote(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        let b = raw[at];
        if b == b'\\' {
            at += 1;
            let esc = raw.get(at).copied().unwrap_or(b'\\');
            at += 1;
            let c = match esc {
                b'b' => '\u{08}',
                b'f' => '\u{0c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let (c, used) = unicode_escape(&raw[at - 2..]);
                    at += used - 2;
                    c
                }
                other => char::from(other), // `"`, `\`, `/`
            };
            out.push(c);
        } else if let Some((c, width)) = decode_rune(&raw[at..]) {
            out.push(c);
            at += width;
        } else {
            out.push(char::REPLACEMENT_CHARACTER);
            at += 1;
        }
    }
    out
}

/// `s` starts with `\uXXXX` (validated). Returns the character and how many bytes it used: 12 for
/// a valid surrogate pair, else 6.
fn unicode_escape(s: &[u8]) -> (char, usize) {
    let hi = hex4(s.get(2..6)).unwrap_or(0xfffd);
    if !(0xd800..0xe000).contains(&hi) {
        return (char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER), 6);
    }
    let lo = match s.get(6..8) {
        Some(b"\\u") => hex4(s.get(8..12)),
        _ => None,
    };
    match lo {
        Some(lo) if (0xd800..0xdc00).contains(&hi) && (0xdc00..0xe000).contains(&lo) => {
            let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
            (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 12)
        }
        _ => (char::REPLACEMENT_CHARACTER, 6),
    }
}

fn hex4(digits: Option<&[u8]>) -> Option<u32> {
    let digits = digits?;
    if digits.len() != 4 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc << 4 | char::from(d).to_digit(16)?))
}

/// Appends `s` as Go's `json.Marshal` writes a string (HTML-safe escaping).
pub(super) fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if c < ' ' || c == '<' || c == '>' || c == '&' => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), JsonError> {
        match self.next() {
            Some(b) if b == want => Ok(()),
            _ => Err(JsonError),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        match self.input.get(self.at..self.at + word.len()) {
            Some(found) if found == word => {
                self.at += word.len();
                Ok(())
            }
            _ => Err(JsonError),
        }
    }

    /// A member value at depth 2 (inside the top-level object).
    fn value(&mut self) -> Result<Value<'a>, JsonError> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b't') => self.literal(b"true").map(|()| Value::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Value::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(b'{' | b'[') => self.skip_composite(2).map(|()| Value::Composite),
            _ => Err(JsonError),
        }
    }

    /// A string token; returns the raw bytes between the quotes. Go's scanner refuses raw control
    /// bytes and unknown escapes but lets any other byte through (unquoting coerces it later).
    fn string(&mut self) -> Result<&'a [u8], JsonError> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.next().ok_or(JsonError)? {
                b'"' => return Ok(&self.input[start..self.at - 1]),
                b'\\' => match self.next().ok_or(JsonError)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let digits = self.input.get(self.at..self.at + 4);
                        hex4(digits).ok_or(JsonError)?;
                        self.at += 4;
                    }
                    _ => return Err(JsonError),
                },
                0x00..=0x1f => return Err(JsonError),
                _ => {}
            }
        }
    }

    /// A number token, checked against `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<&'a [u8], JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(JsonError),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Ok(&self.input[start..self.at])
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), JsonError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(JsonError);
        }
        self.digits();
        Ok(())
    }

    /// Validates and skips an object or array starting at the cursor, whose opening bracket sits
    /// at nesting depth `depth`. Iterative, so hostile nesting cannot exhaust the stack.
    fn skip_composite(&mut self, depth: usize) -> Result<(), JsonError> {
        // Closing bracket of every open container, innermost last.
        let mut open: Vec<u8> = Vec::new();
        loop {
            // Expecting a value.
            self.skip_ws();
            match self.peek().ok_or(JsonError)? {
                opener @ (b'{' | b'[') => {
                    self.at += 1;
                    open.push(if opener == b'{' { b'}' } else { b']' });
                    if depth - 1 + open.len() > NESTING_DEPTH_MAX {
                        return Err(JsonError);
                    }
                    self.skip_ws();
                    let close = if opener == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.at += 1;
                        open.pop();
                    } else {
                        if opener == b'{' {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => {
                    self.number()?;
                }
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&close) = open.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match self.next() {
                    Some(b',') => {
                        if close == b'}' {
                            self.skip_ws();
                            self.member_key()?;
                        }
                        break;
                    }
                    Some(b) if b == close => {
                        open.pop();
                    }
                    _ => return Err(JsonError),
                }
            }
        }
    }

    /// `"key" :` inside an object being skipped.
    fn member_key(&mut self) -> Result<(), JsonError> {
        self.string()?;
        self.skip_ws();
        self.expect(b':')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes and records every member as `(key, value debug)`.
    fn members(input: &[u8]) -> Result<Vec<(String, String)>, JsonError> {
        let mut seen = Vec::new();
        decode_object(input, |k, v| {
            let v = match v {
                Value::Str(raw) => format!("s:{}", unquote(raw)),
                Value::Number(n) => format!("n:{}", String::from_utf8_lossy(n)),
                other => format!("{other:?}"),
            };
            seen.push((k.to_owned(), v));
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn accepts_objects_null_and_whitespace() {
        assert_eq!(members(b"{}"), Ok(vec![]));
        assert_eq!(members(b" \t\r\n{ } \n"), Ok(vec![]));
        assert_eq!(members(b"null"), Ok(vec![]));
        let got = members(br#"{"a":1,"b":"x","c":true,"d":null,"e":[1,{"f":[]}],"g":-0.5e+3}"#);
        let got = got.unwrap();
        let want = [
            ("a", "n:1"),
            ("b", "s:x"),
            ("c", "Bool(true)"),
            ("d", "Null"),
            ("e", "Composite"),
            ("g", "n:-0.5e+3"),
        ];
        assert_eq!(got.len(), want.len());
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((k.as_str(), v.as_str()), (wk, wv));
        }
    }

    #[test]
    fn duplicate_keys_are_reported_in_order() {
        let got = members(br#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(got, vec![("a".into(), "n:1".into()), ("a".into(), "n:2".into())]);
    }

    #[test]
    fn refuses_bad_syntax() {
        for bad in [
            &b""[..],
            b" ",
            b"[]",
            b"1",
            b"\"x\"",
            b"true",
            b"{",
            b"{}x",
            b"{} {}",
            b"{,}",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":.5}",
            b"{\"a\":1e}",
            b"{\"a\":-}",
            b"{\"a\":+1}",
            b"{\"a\":tru}",
            b"{\"a\":truex}",
            b"{\"a\":[1,]}",
            b"{\"a\":[1}",
            b"{\"a\":{\"b\"}}",
            b"{\"a\":{\"b\":1]}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\u12\"}",
            b"{'a':1}",
            b"\xef\xbb\xbf{}",
        ] {
            assert_eq!(members(bad), Err(JsonError), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn nesting_limit_matches_go() {
        // Top-level object is depth 1, so 9999 arrays inside it reach exactly 10000.
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(9999), "]".repeat(9999));
        assert!(members(ok.as_bytes()).is_ok());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(members(deep.as_bytes()), Err(JsonError));
        // Far deeper than any stack would allow with recursion.
        let hostile = format!("{{\"a\":{}", "[".repeat(1_000_000));
        assert_eq!(members(hostile.as_bytes()), Err(JsonError));
    }

    #[test]
    fn unquote_follows_go() {
        assert_eq!(unquote(br#"a\"\\\/\b\f\n\r\t"#), "a\"\\/\u{8}\u{c}\n\r\t");
        assert_eq!(unquote(br"\u00e9\u0041"), "éA");
        assert_eq!(unquote(br"\ud83d\ude00"), "😀");
        assert_eq!(unquote(br"\ud83dx"), "\u{fffd}x");
        assert_eq!(unquote(br"\ude00\ud83d"), "\u{fffd}\u{fffd}");
        assert_eq!(unquote(br"\ud83d\u0041"), "\u{fffd}A");
        assert_eq!(unquote(b"\xff\xe2\x82x"), "\u{fffd}\u{fffd}\u{fffd}x");
        assert_eq!(unquote("ok é".as_bytes()), "ok é");
    }

    #[test]
    fn parse_int_is_go_parse_int() {
        assert_eq!(parse_int(b"0", 64), Ok(0));
        assert_eq!(parse_int(b"-0", 64), Ok(0));
        assert_eq!(parse_int(b"-1", 64), Ok(-1));
        assert_eq!(parse_int(b"9223372036854775807", 64), Ok(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808", 64), Ok(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775808", 64), Err(JsonError));
        assert_eq!(parse_int(b"99999999999999999999999", 64), Err(JsonError));
        assert_eq!(parse_int(b"2147483647", 32), Ok(2147483647));
        assert_eq!(parse_int(b"-2147483648", 32), Ok(-2147483648));
        assert_eq!(parse_int(b"2147483648", 32), Err(JsonError));
        assert_eq!(parse_int(b"1.0", 64), Err(JsonError));
        assert_eq!(parse_int(b"1e3", 64), Err(JsonError));
        assert_eq!(parse_int(b"-", 64), Err(JsonError));
    }

    #[test]
    fn write_string_is_go_marshal() {
        let mut out = Vec::new();
        write_string(&mut out, "a\"\\<>&\u{8}\u{c}\n\r\t\u{1}\u{7f}é\u{2028}\u{2029}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"\\\\\\u003c\\u003e\\u0026\\b\\f\\n\\r\\t\\u0001\u{7f}é\\u2028\\u2029\""
        );
    }
}

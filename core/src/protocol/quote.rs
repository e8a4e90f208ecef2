//! Go's `strconv.Quote`, because nsqd formats a peer's topic and channel names with `%q` and
//! clients compare those error texts byte for byte (spec §2).
//!
//! Go decides what to escape from the Unicode general category ("printable" = letters, marks,
//! numbers, punctuation, symbols, and the ASCII space). Rust's standard library has no category
//! tables, so `is_print` approximates: control characters, every space/separator except U+0020,
//! the format characters (Cf, listed below from Unicode 15), private use, noncharacters and the
//! large unassigned ranges (U+323B0..=U+3FFFF, planes 4 to 13, the unassigned part of plane 14)
//! are not printable; any other code point is. The only difference from Go is therefore a scattered
//! unassigned code point inside planes 0 to 2, which Go escapes as `\uXXXX` and we keep as is.

/// Quotes `raw` as Go's `strconv.Quote(string(raw))` does.
pub fn go_quote(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + 2);
    out.push('"');
    let mut at = 0;
    while at < raw.len() {
        match decode_rune(&raw[at..]) {
            Some((c, width)) => {
                push_escaped(&mut out, c);
                at += width;
            }
            None => {
                push_hex(&mut out, "\\x", u32::from(raw[at]), 2);
                at += 1;
            }
        }
    }
    out.push('"');
    out
}

/// Decodes the first UTF-8 encoded character of a non-empty `bytes`, like Go's
/// `utf8.DecodeRune`: `None` where Go returns `(RuneError, 1)` (invalid or truncated sequence,
/// surrogate, overlong form), so callers consume exactly one byte and go on.
pub(super) fn decode_rune(bytes: &[u8]) -> Option<(char, usize)> {
    let width = match *bytes.first()? {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let encoded = std::str::from_utf8(bytes.get(..width)?).ok()?;
    encoded.chars().next().map(|c| (c, width))
}

/// Go's `appendEscapedRune` with `quote = '"'`, not ASCII-only, not graphic-only.
fn push_escaped(out: &mut String, c: char) {
    if c == '"' || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\u{07}' => out.push_str("\\a"),
        '\u{08}' => out.push_str("\\b"),
        '\u{0c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{0b}' => out.push_str("\\v"),
        c if c < ' ' || c == '\u{7f}' => push_hex(out, "\\x", u32::from(c), 2),
        c if u32::from(c) < 0x10000 => push_hex(out, "\\u", u32::from(c), 4),
        c => push_hex(out, "\\U", u32::from(c), 8),
    }
}

fn push_hex(out: &mut String, prefix: &str, value: u32, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str(prefix);
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((value >> (4 * i)) & 0xf) as usize]));
    }
}

/// Approximates Go's `strconv.IsPrint` (see the module doc for what differs).
fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    if c.is_control() || c.is_whitespace() {
        return false; // Cc, Zs, Zl, Zp
    }
    let v = u32::from(c);
    !(is_format(v) || is_private_use(v) || is_noncharacter(v) || is_unassigned_range(v))
}

/// General category Cf (Unicode 15.0, the tables of the Go releases nsqd is built with).
fn is_format(v: u32) -> bool {
    matches!(
        v,
        0x00ad
            | 0x0600..=0x0605
            | 0x061c
            | 0x06dd
            | 0x070f
            | 0x0890..=0x0891
            | 0x08e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    )
}

fn is_private_use(v: u32) -> bool {
    matches!(v, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd)
}

fn is_noncharacter(v: u32) -> bool {
    (0xfdd0..=0xfdef).contains(&v) || v & 0xfffe == 0xfffe
}

/// Whole unassigned stretches; scattered unassigned points are not covered.
fn is_unassigned_range(v: u32) -> bool {
    matches!(
        v,
        0x323b0..=0x3ffff
            | 0x40000..=0xdffff
            | 0xe0000
            | 0xe0002..=0xe001f
            | 0xe0080..=0xe00ff
            | 0xe01f0..=0xeffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(raw: &[u8]) -> String {
        go_quote(raw)
    }

    #[test]
    fn plain_ascii_is_wrapped_in_quotes() {
        assert_eq!(q(b""), r#""""#);
        assert_eq!(q(b"test:ephemeral"), r#""test:ephemeral""#);
        assert_eq!(q(b"a b~"), r#""a b~""#);
    }

    #[test]
    fn quote_and_backslash_are_escaped() {
        assert_eq!(q(br#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(q(b"'"), r#""'""#);
    }

    #[test]
    fn ascii_controls_use_named_escapes_or_hex() {
        assert_eq!(q(b"\x07\x08\x0c\n\r\t\x0b"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(q(b"\x00\x1f\x7f"), r#""\x00\x1f\x7f""#);
    }

    #[test]
    fn invalid_utf8_bytes_are_hex_escaped_one_by_one() {
        assert_eq!(q(b"\xff"), r#""\xff""#);
        assert_eq!(q(b"a\xe2\x82"), r#""a\xe2\x82""#);
        assert_eq!(q(b"\xe2\x82x"), r#""\xe2\x82x""#);
        // An encoded surrogate and an overlong form are invalid in Go too.
        assert_eq!(q(b"\xed\xa0\x80"), r#""\xed\xa0\x80""#);
        assert_eq!(q(b"\xc0\xaf"), r#""\xc0\xaf""#);
        assert_eq!(q(b"\x80"), r#""\x80""#);
    }

    #[test]
    fn printable_unicode_is_kept() {
        assert_eq!(q("héllo wörld".as_bytes()), "\"héllo wörld\"");
        assert_eq!(q("日本".as_bytes()), "\"日本\"");
        assert_eq!(q("😀".as_bytes()), "\"😀\"");
        // A correctly encoded U+FFFD is a printable symbol, unlike a bad byte.
        assert_eq!(q("\u{fffd}".as_bytes()), "\"\u{fffd}\"");
    }

    #[test]
    fn non_printable_unicode_uses_u_escapes() {
        assert_eq!(q("\u{85}".as_bytes()), r#""\u0085""#);
        assert_eq!(q("\u{a0}".as_bytes()), r#""\u00a0""#);
        assert_eq!(q("\u{ad}".as_bytes()), r#""\u00ad""#);
        assert_eq!(q("\u{2028}".as_bytes()), r#""\u2028""#);
        assert_eq!(q("\u{3000}".as_bytes()), r#""\u3000""#);
        assert_eq!(q("\u{feff}".as_bytes()), r#""\ufeff""#);
        assert_eq!(q("\u{e000}".as_bytes()), r#""\ue000""#);
        assert_eq!(q("\u{ffff}".as_bytes()), r#""\uffff""#);
        assert_eq!(q("\u{e0001}".as_bytes()), r#""\U000e0001""#);
        assert_eq!(q("\u{10ffff}".as_bytes()), r#""\U0010ffff""#);
        assert_eq!(q("\u{50000}".as_bytes()), r#""\U00050000""#);
    }

    #[test]
    fn decode_rune_matches_go_widths() {
        assert_eq!(decode_rune(b"a"), Some(('a', 1)));
        assert_eq!(decode_rune("é!".as_bytes()), Some(('é', 2)));
        assert_eq!(decode_rune("😀".as_bytes()), Some(('😀', 4)));
        assert_eq!(decode_rune(b"\xf0\x9f\x98"), None);
        assert_eq!(decode_rune(b"\xf5\x80\x80\x80"), None);
        assert_eq!(decode_rune(b""), None);
    }
}

//! JSON bytes as Go's `encoding/json` writes them: compact, object keys in struct declaration
//! order (serde derives keep it; Go maps sort their keys, so map-shaped answers are declared in
//! sorted order), and `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`-style sequences
//! (Go's default HTML-safe escaping), which serde_json alone does not do.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// serde_json's compact formatter plus Go's HTML-safe string escaping.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Serialises `value` like Go's `json.Marshal`.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Z {
        zebra: &'static str,
        apple: i64,
        list: Vec<bool>,
    }

    #[test]
    fn declaration_order_and_html_escapes() {
        let z = Z {
            zebra: "<a&b>\u{2028}\"\n\u{1}é",
            apple: -1,
            list: vec![true, false],
        };
        assert_eq!(
            String::from_utf8(to_go_json(&z).unwrap()).unwrap(),
            r#"{"zebra":"\u003ca\u0026b\u003e\u2028\"\n\u0001é","apple":-1,"list":[true,false]}"#
        );
    }
}

//! JSON bytes as Go's `encoding/json` writes them: compact, object keys in struct declaration
//! order (serde derives keep it; Go maps sort their keys, so map-shaped answers are declared in
//! sorted order), and `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`-style sequences
//! (Go's default HTML-safe escaping), which serde_json alone does not do. Floats are written as
//! Go writes a `float64`: shortest round-trip digits, `1` not `1.0`, and exponent form only
//! below 1e-6 or from 1e21 on (`1e+21`, `1e-7`).

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

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let abs = value.abs();
        let exponent = abs != 0.0 && !(1e-6..1e21).contains(&abs);
        let text = go_float(value.to_string(), format!("{value:e}"), exponent);
        writer.write_all(text.as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        // Compared and formatted as float32, as Go does for `bitSize` 32.
        let abs = value.abs();
        let exponent = abs != 0.0 && !(1e-6..1e21).contains(&abs);
        let text = go_float(value.to_string(), format!("{value:e}"), exponent);
        writer.write_all(text.as_bytes())
    }
}

/// `encoding/json`'s `floatEncoder` for a finite float: strconv's `'f'` format with precision -1,
/// or `'e'` (`exponent`: the magnitude is below 1e-6 or at least 1e21), with `e-07` trimmed to
/// `e-7`. `plain` and
/// `exp` are the value's Rust `Display` and `LowerExp`: the same shortest round-trip digits, the
/// latter with a bare exponent (`1.5e-7`, `1e21`) where Go writes `1.5e-7` and `1e+21`. serde_json
/// writes NaN and the infinities as `null` before a formatter sees them (Go refuses to encode them).
fn go_float(plain: String, exp: String, exponent: bool) -> String {
    if !exponent {
        return plain;
    }
    match exp.split_once('e') {
        // Go pads a positive exponent to two digits; every one here has two already (>= 21).
        Some((mantissa, e)) if !e.starts_with('-') => format!("{mantissa}e+{e}"),
        _ => exp,
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

    #[test]
    fn floats_as_go_writes_them() {
        let json = |v: f64| String::from_utf8(to_go_json(&v).unwrap()).unwrap();
        for (v, want) in [
            (1.0, "1"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.99, "0.99"),
            (0.5, "0.5"),
            (123456789.0, "123456789"),
            (1234567.5, "1234567.5"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (-2.5e21, "-2.5e+21"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-10, "1.5e-10"),
            (5e-324, "5e-324"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(json(v), want, "{v:e}");
        }
        assert_eq!(json(f64::NAN), "null");
        assert_eq!(
            String::from_utf8(to_go_json(&serde_json::json!([1.0, 0.99, 0.5])).unwrap()).unwrap(),
            "[1,0.99,0.5]"
        );
        let f32_json = |v: f32| String::from_utf8(to_go_json(&v).unwrap()).unwrap();
        assert_eq!(f32_json(0.1), "0.1");
        assert_eq!(f32_json(1e21), "1e+21");
    }
}

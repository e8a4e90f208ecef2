//! Go's value syntax, so `squalld` reads every flag value exactly as nsqd (Go's `flag` package)
//! does: `strconv.ParseBool`, `strconv.ParseInt(s, 0, 64)`, `strconv.ParseFloat` and
//! `time.ParseDuration`, with Go's error texts where operators see them.

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("invalid boolean value (1, t, T, TRUE, true, True, 0, f, F, ...)".into()),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms people write (`1`, `0.99`, `1e-2`).
pub fn parse_go_f64(s: &str) -> Result<f64, String> {
    s.parse::<f64>().map_err(|_| "parse error".to_string())
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, `0x`/`0o`/`0b`/leading-`0` prefixes, and
/// `_` between digits.
pub fn parse_go_i64(s: &str) -> Result<i64, String> {
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let b = unsigned.as_bytes();
    let (radix, digits) = if b.len() >= 2 && b[0] == b'0' {
        match b[1].to_ascii_lowercase() {
            b'x' => (16, &unsigned[2..]),
            b'o' => (8, &unsigned[2..]),
            b'b' => (2, &unsigned[2..]),
            _ => (8, &unsigned[1..]),
        }
    } else {
        (10, unsigned)
    };
    if !go_underscores_ok(unsigned) {
        return Err("parse error".into());
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() {
        // "", "-", "0x": a lone "0" never gets here (it is decimal).
        return Err("parse error".into());
    }
    let mut magnitude: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or_else(|| "parse error".to_string())?;
        magnitude = magnitude
            .checked_mul(u64::from(radix))
            .and_then(|m| m.checked_add(u64::from(d)))
            .ok_or_else(|| "value out of range".to_string())?;
    }
    let limit = if negative { 1u64 << 63 } else { (1u64 << 63) - 1 };
    if magnitude > limit {
        return Err("value out of range".into());
    }
    // Two's complement: -(2^63) is representable, and wrapping_neg handles it.
    let value = magnitude as i64;
    Ok(if negative { value.wrapping_neg() } else { value })
}

/// Go's `underscoreOK`: an underscore only between digits or after a base prefix.
fn go_underscores_ok(unsigned: &str) -> bool {
    let b = unsigned.as_bytes();
    let mut i = 0;
    let mut saw = b'^';
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &b[i..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

pub fn parse_go_usize(s: &str) -> Result<usize, String> {
    let v = parse_go_i64(s)?;
    usize::try_from(v).map_err(|_| "must not be negative".to_string())
}

pub fn parse_go_u16(s: &str) -> Result<u16, String> {
    let v = parse_go_i64(s)?;
    u16::try_from(v).map_err(|_| "must be in [0,65535]".to_string())
}

/// A Go duration string in whole milliseconds, truncated toward zero as `d / time.Millisecond`.
pub fn parse_go_duration_ms(s: &str) -> Result<i64, String> {
    parse_go_duration_ns(s).map(|ns| ns / 1_000_000)
}

/// Go's `time.Duration.String`: `0s`, `1.5s`, `100ms`, `1m0s`, `1h0m0s`, `-2µs`.
pub fn format_go_duration(ns: i64) -> String {
    let body = squall_rpc::nsqd::go_duration(ns.unsigned_abs());
    if ns < 0 {
        format!("-{body}")
    } else {
        body
    }
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units ns, us (µs, μs), ms, s,
/// m, h; a bare `0` is allowed. Returns nanoseconds with Go's error texts.
pub fn parse_go_duration_ns(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let mut rest = s.as_bytes();
    let mut negative = false;
    if let Some(&c) = rest.first() {
        if c == b'-' || c == b'+' {
            negative = c == b'-';
            rest = &rest[1..];
        }
    }
    if rest == b"0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    const OVERFLOW: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !(rest[0] == b'.' || rest[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in &rest[..int_len] {
            if whole > OVERFLOW / 10 {
                return Err(invalid());
            }
            whole = whole * 10 + u64::from(c - b'0');
            if whole > OVERFLOW {
                return Err(invalid());
            }
        }
        rest = &rest[int_len..];
        // Fraction: digits past what fits are ignored, as Go does.
        let (mut fraction, mut scale, mut frac_len) = (0u64, 1f64, 0usize);
        if rest.first() == Some(&b'.') {
            rest = &rest[1..];
            frac_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflowed = false;
            for &c in &rest[..frac_len] {
                if overflowed || fraction > (OVERFLOW - 1) / 10 {
                    overflowed = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(c - b'0');
                if next > OVERFLOW {
                    overflowed = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            rest = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or '.'.
        let unit_len = rest
            .iter()
            .take_while(|&&c| c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration \"{s}\""));
        }
        let unit_ns: u64 = match &rest[..unit_len] {
            b"ns" => 1,
            // "µs" (U+00B5) and "μs" (U+03BC) in UTF-8.
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60 * 1_000_000_000,
            b"h" => 3_600 * 1_000_000_000,
            other => {
                let unit = String::from_utf8_lossy(other);
                return Err(format!("time: unknown unit \"{unit}\" in duration \"{s}\""));
            }
        };
        rest = &rest[unit_len..];
        if whole > OVERFLOW / unit_ns {
            return Err(invalid());
        }
        let mut v = whole * unit_ns;
        if fraction > 0 {
            // float64 keeps fractions of hours nanosecond-accurate (Go's comment).
            v += (fraction as f64 * (unit_ns as f64 / scale)) as u64;
            if v > OVERFLOW {
                return Err(invalid());
            }
        }
        total += v;
        if total > OVERFLOW {
            return Err(invalid());
        }
    }
    if negative {
        // total <= 2^63, and -(2^63) is i64::MIN.
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-0s", 0),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.00s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("-2m3.4s", -123_400_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036.854775808s", i64::MIN),
            ("0.100000000000000000000h", 360_000_000_000),
            ("0.830103483285477580700h", 2_988_372_539_827),
        ];
        for &(s, ns) in cases {
            assert_eq!(parse_go_duration_ns(s), Ok(ns), "{s}");
        }
        let errors = [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "\u{85}\u{85}",
            "\u{ffff}",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "-9223372036854775809ns",
            "9223372036854ms775us808ns",
            "1s ",
            " 1s",
            "1.5.3s",
        ];
        for s in errors {
            assert!(parse_go_duration_ns(s).is_err(), "{s:?} should fail");
        }
        assert_eq!(
            parse_go_duration_ns("3"),
            Err("time: missing unit in duration \"3\"".into())
        );
        assert_eq!(
            parse_go_duration_ns("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        assert_eq!(
            parse_go_duration_ns("x"),
            Err("time: invalid duration \"x\"".into())
        );
    }

    #[test]
    fn go_durations_in_milliseconds_truncate() {
        assert_eq!(parse_go_duration_ms("60s"), Ok(60_000));
        assert_eq!(parse_go_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_go_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_go_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_go_duration_ms("2.5s"), Ok(2_500));
        assert_eq!(parse_go_duration_ms("100us"), Ok(0));
        assert_eq!(parse_go_duration_ms("1999us"), Ok(1));
        assert_eq!(parse_go_duration_ms("-1999us"), Ok(-1));
        assert_eq!(parse_go_duration_ms("0"), Ok(0));
    }

    #[test]
    fn go_duration_strings() {
        for (ns, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (100_000_000, "100ms"),
            (1_234_567, "1.234567ms"),
            (1_500_000_000, "1.5s"),
            (30_000_000_000, "30s"),
            (60_000_000_000, "1m0s"),
            (120_000_000_000, "2m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_430_000_000_000, "1h30m30s"),
            (-2_000, "-2µs"),
        ] {
            assert_eq!(format_go_duration(ns), want, "{ns}");
        }
    }

    #[test]
    fn go_integers() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+5", 5),
            ("12345", 12345),
            ("-12345", -12345),
            ("0x1f", 31),
            ("0X1F", 31),
            ("-0x10", -16),
            ("017", 15),
            ("0o17", 15),
            ("0b101", 5),
            ("1_000_000", 1_000_000),
            ("0x_1f", 31),
            ("0_17", 15),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ];
        for &(s, v) in cases {
            assert_eq!(parse_go_i64(s), Ok(v), "{s}");
        }
        for s in [
            "", "-", "+", "0x", "1_", "_1", "1__0", "12a", "08", "0b2", "1.5", " 1",
        ] {
            assert!(parse_go_i64(s).is_err(), "{s:?} should fail");
        }
        assert_eq!(
            parse_go_i64("9223372036854775808"),
            Err("value out of range".into())
        );
        assert_eq!(
            parse_go_i64("-9223372036854775809"),
            Err("value out of range".into())
        );
        assert_eq!(
            parse_go_i64("99999999999999999999"),
            Err("value out of range".into())
        );
    }
}

//! Query strings as Go's `url.ParseQuery` reads them: `&`-separated `key=value` pairs, `+` as
//! space, `%XX` escapes; a bad escape (or a `;`, which Go refuses since 1.17) fails the whole
//! query. The first value of a repeated key wins (spec 0.4).

/// The decoded pairs, in order.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadQuery;

impl Query {
    pub fn parse(raw: &str) -> Result<Query, BadQuery> {
        let mut pairs = Vec::new();
        for part in raw.split('&') {
            if part.is_empty() {
                continue;
            }
            if part.contains(';') {
                return Err(BadQuery);
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((unescape(k)?, unescape(v)?));
        }
        Ok(Query { pairs })
    }

    /// The first value of `key`, if present (possibly empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn unescape(s: &str) -> Result<String, BadQuery> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(BadQuery)?;
                let hi = (hex[0] as char).to_digit(16).ok_or(BadQuery)?;
                let lo = (hex[1] as char).to_digit(16).ok_or(BadQuery)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    // Go keeps invalid UTF-8 in strings; names with it fail validation later anyway.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// nsqd's boolean query values: `true`/`1` and `false`/`0`; anything else (or absence) gives
/// `default`.
pub fn flag(q: &Query, key: &str, default: bool) -> bool {
    match q.get(key) {
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let q = Query::parse("topic=a%20b&topic=second&x=1+2&empty=&bare").unwrap();
        assert_eq!(q.get("topic"), Some("a b"));
        assert_eq!(q.get("x"), Some("1 2"));
        assert_eq!(q.get("empty"), Some(""));
        assert_eq!(q.get("bare"), Some(""));
        assert_eq!(q.get("missing"), None);
        assert_eq!(Query::parse("a=%zz").unwrap_err(), BadQuery);
        assert_eq!(Query::parse("a=%4").unwrap_err(), BadQuery);
        assert_eq!(Query::parse("a=1;b=2").unwrap_err(), BadQuery);
    }

    #[test]
    fn flags() {
        let q = Query::parse("a=true&b=0&c=yes").unwrap();
        assert!(flag(&q, "a", false));
        assert!(!flag(&q, "b", true));
        assert!(flag(&q, "c", true));
        assert!(flag(&q, "d", true));
    }
}

//! Query strings decoded the way Go's `url.ParseQuery` decodes them, which is what nsqd and
//! nsqlookupd read their parameters with (spec part 0.4).

use thiserror::Error;

/// A query string that Go's `url.ParseQuery` would have refused; nsq answers it with
/// 400 `INVALID_REQUEST`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    #[error("invalid semicolon separator in query")]
    Semicolon,
    #[error("invalid URL escape {0:?}")]
    Escape(String),
}

/// Decoded `key=value` pairs in the order they were sent. A key may repeat; `get` returns the
/// first value, as nsq's `ReqParams.Get` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// The first value of `key`, or `None` when the key was not sent at all. `?topic=` gives
    /// `Some("")`: a key present with an empty value is not "missing" to nsq.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// Go's `url.ParseQuery`: pairs separated by `&`, `key=value` (a missing `=` means an empty
/// value), `+` is a space, `%XX` is a byte. A pair containing `;` or a bad escape is skipped and
/// makes the whole parse an error, as Go returns the first error after parsing the rest.
pub fn parse_query(raw: &str) -> Result<Query, QueryError> {
    let mut query = Query::default();
    let mut first_error = None;
    for pair in raw.split('&') {
        if pair.contains(';') {
            first_error.get_or_insert(QueryError::Semicolon);
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (query_unescape(key), query_unescape(value)) {
            (Ok(k), Ok(v)) => query.pairs.push((k, v)),
            (Err(e), _) | (_, Err(e)) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(query),
    }
}

/// Go's `url.QueryUnescape`. Decoded bytes that are not UTF-8 become U+FFFD (Go keeps them as
/// raw bytes; no valid topic or channel name contains them, so no answer changes).
pub fn query_unescape(s: &str) -> Result<String, QueryError> {
    percent_decode(s, true)
}

/// Go's `url.PathUnescape` (no `+` → space).
pub fn path_unescape(s: &str) -> Result<String, QueryError> {
    percent_decode(s, false)
}

fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, QueryError> {
    let bytes = s.as_bytes();
    let needs_work = bytes.contains(&b'%') || (plus_is_space && bytes.contains(&b'+'));
    if !needs_work {
        return Ok(s.to_string());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
                match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => {
                        let end = (i + 3).min(bytes.len());
                        let bad = String::from_utf8_lossy(&bytes[i..end]).into_owned();
                        return Err(QueryError::Escape(bad));
                    }
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_and_empty_values_are_present() {
        let q = parse_query("topic=a&topic=b&channel=&flag").unwrap();
        assert_eq!(q.get("topic"), Some("a"));
        assert_eq!(q.get_all("topic").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.get("channel"), Some(""));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn escapes_and_plus() {
        let q = parse_query("t=a%2Eb+c&%74opic=x%20y&&").unwrap();
        assert_eq!(q.get("t"), Some("a.b c"));
        assert_eq!(q.get("topic"), Some("x y"));
        assert_eq!(path_unescape("/a+b%2F").unwrap(), "/a+b/");
    }

    #[test]
    fn errors_like_go() {
        assert_eq!(parse_query("topic=%zz"), Err(QueryError::Escape("%zz".into())));
        assert_eq!(parse_query("topic=%4"), Err(QueryError::Escape("%4".into())));
        assert_eq!(parse_query("a=1;b=2"), Err(QueryError::Semicolon));
        assert_eq!(parse_query(""), Ok(Query::default()));
    }
}

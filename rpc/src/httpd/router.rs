//! Routing as `julienschmidt/httprouter` v1.3.0 does it for nsqd and nsqlookupd (spec 0.1):
//! exact paths per method, where a `:name` segment (nsqd's `/config/:opt`) matches any one
//! non-empty segment; for a method that has routes, a trailing-slash mismatch or a
//! case/dirty-path mismatch is redirected (301 for GET, 307 otherwise); OPTIONS on a known path
//! answers its `Allow` list; another method's path gets 405 with `Allow`; the rest is 404.
//! Query strings play no part.

/// A static routing table from (method, path) to a handler tag `R`.
#[derive(Clone, Debug)]
pub struct Router<R> {
    routes: Vec<(&'static str, &'static str, R)>,
}

/// What the router decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed<R> {
    Handler(R),
    /// Send the client elsewhere: 301 (GET) or 307, `Location` (query kept).
    Redirect {
        status: u16,
        location: String,
    },
    /// OPTIONS on a known path: 200, empty body, this `Allow`.
    Options {
        allow: String,
    },
    /// Known path, other method: 405 with this `Allow`.
    MethodNotAllowed {
        allow: String,
    },
    NotFound,
}

impl<R: Copy> Router<R> {
    pub fn new(routes: Vec<(&'static str, &'static str, R)>) -> Router<R> {
        Router { routes }
    }

    fn has_method(&self, method: &str) -> bool {
        self.routes.iter().any(|(m, _, _)| *m == method)
    }

    fn find(&self, method: &str, path: &str) -> Option<R> {
        self.routes
            .iter()
            .find(|(m, p, _)| *m == method && matches(p, path, false))
            .map(|(_, _, r)| *r)
    }

    pub fn route(&self, method: &str, path: &str, raw_query: &str) -> Routed<R> {
        if self.has_method(method) {
            if let Some(handler) = self.find(method, path) {
                return Routed::Handler(handler);
            }
            if method != "CONNECT" && path != "/" {
                let status = if method == "GET" { 301 } else { 307 };
                let with_query = |p: &str| {
                    if raw_query.is_empty() {
                        p.to_string()
                    } else {
                        format!("{p}?{raw_query}")
                    }
                };
                let toggled = toggle_trailing_slash(path);
                if self.find(method, &toggled).is_some() {
                    return Routed::Redirect {
                        status,
                        location: with_query(&toggled),
                    };
                }
                if let Some(fixed) = self.find_case_insensitive(method, &clean_path(path)) {
                    return Routed::Redirect {
                        status,
                        location: with_query(&fixed),
                    };
                }
            }
        }
        if method == "OPTIONS" {
            let allow = self.allowed(path, method);
            if !allow.is_empty() {
                return Routed::Options { allow };
            }
        } else {
            let allow = self.allowed(path, method);
            if !allow.is_empty() {
                return Routed::MethodNotAllowed { allow };
            }
        }
        Routed::NotFound
    }

    /// The route path matching `path` ignoring ASCII case, or with its trailing slash toggled:
    /// the route's own spelling, with the request's parameter segments as they came.
    fn find_case_insensitive(&self, method: &str, path: &str) -> Option<String> {
        let find = |candidate: &str| {
            self.routes
                .iter()
                .find(|(m, p, _)| *m == method && matches(p, candidate, true))
                .map(|(_, p, _)| {
                    p.split('/')
                        .zip(candidate.split('/'))
                        .map(|(route, given)| if route.starts_with(':') { given } else { route })
                        .collect::<Vec<_>>()
                        .join("/")
                })
        };
        find(path).or_else(|| find(&toggle_trailing_slash(path)))
    }

    /// httprouter's `allowed`: the other methods serving `path` (every method for `*`), plus
    /// OPTIONS, sorted and comma-joined; empty when none.
    fn allowed(&self, path: &str, method: &str) -> String {
        let mut methods: Vec<&str> = Vec::new();
        for (m, p, _) in &self.routes {
            let serves = path == "*" || matches(p, path, false);
            if serves && *m != "OPTIONS" && (*m != method || path == "*") && !methods.contains(m) {
                methods.push(m);
            }
        }
        if methods.is_empty() {
            return String::new();
        }
        methods.push("OPTIONS");
        methods.sort_unstable();
        methods.join(", ")
    }
}

/// Whether `path` is `route`'s path: segment by segment equal (ASCII case aside when
/// `ignore_case`), a `:name` segment standing for any one non-empty segment.
fn matches(route: &str, path: &str, ignore_case: bool) -> bool {
    if !route.contains(':') {
        // Every route but `/config/:opt`: one comparison, no splitting.
        return if ignore_case {
            route.eq_ignore_ascii_case(path)
        } else {
            route == path
        };
    }
    let mut given = path.split('/');
    for segment in route.split('/') {
        let Some(g) = given.next() else { return false };
        let same = if segment.starts_with(':') {
            !g.is_empty()
        } else if ignore_case {
            segment.eq_ignore_ascii_case(g)
        } else {
            segment == g
        };
        if !same {
            return false;
        }
    }
    given.next().is_none()
}

fn toggle_trailing_slash(path: &str) -> String {
    match path.strip_suffix('/') {
        Some(stripped) if path.len() > 1 => stripped.to_string(),
        _ => format!("{path}/"),
    }
}

/// httprouter's `CleanPath`: Go's `path.Clean` that keeps a trailing slash and always starts
/// with `/`.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if out.is_empty() || (trailing && !out.ends_with('/')) {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<u8> {
        Router::new(vec![
            ("GET", "/ping", 1),
            ("GET", "/debug", 2),
            ("POST", "/topic/create", 3),
            ("GET", "/debug/pprof/symbol", 4),
            ("POST", "/debug/pprof/symbol", 5),
            ("GET", "/config/:opt", 6),
            ("PUT", "/config/:opt", 7),
        ])
    }

    #[test]
    fn exact_and_not_found() {
        assert_eq!(router().route("GET", "/ping", "x=1"), Routed::Handler(1));
        assert_eq!(router().route("POST", "/topic/create", ""), Routed::Handler(3));
        assert_eq!(router().route("GET", "/nope", ""), Routed::NotFound);
        assert_eq!(router().route("PUT", "/nope", ""), Routed::NotFound);
    }

    #[test]
    fn method_not_allowed_lists_methods_sorted() {
        let allow = |a: &str| Routed::MethodNotAllowed { allow: a.to_string() };
        assert_eq!(router().route("POST", "/ping", ""), allow("GET, OPTIONS"));
        assert_eq!(router().route("HEAD", "/ping", ""), allow("GET, OPTIONS"));
        assert_eq!(router().route("GET", "/topic/create", ""), allow("OPTIONS, POST"));
        assert_eq!(
            router().route("DELETE", "/debug/pprof/symbol", ""),
            allow("GET, OPTIONS, POST")
        );
    }

    #[test]
    fn options() {
        let options = |a: &str| Routed::Options { allow: a.to_string() };
        assert_eq!(router().route("OPTIONS", "/ping", ""), options("GET, OPTIONS"));
        assert_eq!(
            router().route("OPTIONS", "*", ""),
            options("GET, OPTIONS, POST, PUT")
        );
        assert_eq!(router().route("OPTIONS", "/nope", ""), Routed::NotFound);
    }

    #[test]
    fn redirects() {
        let redirect = |status, l: &str| Routed::Redirect {
            status,
            location: l.to_string(),
        };
        assert_eq!(router().route("GET", "/ping/", "a=b"), redirect(301, "/ping?a=b"));
        assert_eq!(router().route("GET", "/PING", ""), redirect(301, "/ping"));
        assert_eq!(router().route("GET", "//ping/", ""), redirect(301, "/ping"));
        assert_eq!(router().route("GET", "/x/../Debug", ""), redirect(301, "/debug"));
        assert_eq!(
            router().route("POST", "/topic/create/", ""),
            redirect(307, "/topic/create")
        );
        assert_eq!(
            router().route("POST", "/Topic/Create", ""),
            redirect(307, "/topic/create")
        );
    }

    /// What nsqd v1.3.0 answers for its `/config/:opt` routes.
    #[test]
    fn named_parameters() {
        let redirect = |status, l: &str| Routed::Redirect {
            status,
            location: l.to_string(),
        };
        let allow = "GET, OPTIONS, PUT".to_string();
        assert_eq!(router().route("GET", "/config/log_level", ""), Routed::Handler(6));
        assert_eq!(router().route("PUT", "/config/x", ""), Routed::Handler(7));
        assert_eq!(
            router().route("GET", "/config/log_level/", "x=1"),
            redirect(301, "/config/log_level?x=1")
        );
        assert_eq!(
            router().route("PUT", "/config/log_level/", ""),
            redirect(307, "/config/log_level")
        );
        assert_eq!(
            router().route("GET", "/CONFIG/Log_Level", ""),
            redirect(301, "/config/Log_Level")
        );
        assert_eq!(
            router().route("GET", "/config//log_level", ""),
            redirect(301, "/config/log_level")
        );
        for (method, path) in [
            ("GET", "/config/"),
            ("GET", "/config"),
            ("GET", "/config/a/b"),
            ("POST", "/config/log_level/"),
            ("HEAD", "/config/log_level/"),
            ("OPTIONS", "/config/log_level/"),
        ] {
            assert_eq!(
                router().route(method, path, ""),
                Routed::NotFound,
                "{method} {path}"
            );
        }
        assert_eq!(
            router().route("DELETE", "/config/log_level", ""),
            Routed::MethodNotAllowed { allow: allow.clone() }
        );
        assert_eq!(
            router().route("OPTIONS", "/config/log_level", ""),
            Routed::Options { allow }
        );
    }

    #[test]
    fn clean_path_like_httprouter() {
        for (input, want) in [
            ("", "/"),
            ("/", "/"),
            ("a/b", "/a/b"),
            ("/a//b/./c/..", "/a/b/"),
            ("/../a", "/a"),
            ("/a/", "/a/"),
        ] {
            assert_eq!(clean_path(input), want, "{input}");
        }
    }
}

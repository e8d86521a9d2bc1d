//! The routing table: which backend answers a host and path, by the rules
//! Kubernetes gives Ingresses (the `Ingress` concept page and the API's
//! `HTTPIngressPath`):
//!
//! - a rule's host is exact (`foo.example.com`) or a wildcard of one label
//!   (`*.example.com` matches `a.example.com`, not `a.b.example.com` nor
//!   `example.com`); a rule without a host matches every host;
//! - `Exact` paths match the path as written; `Prefix` paths match element
//!   by element (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`; a
//!   trailing `/` changes nothing); `ImplementationSpecific` is taken as
//!   `Prefix`, as ingress-nginx does without its regex annotation;
//! - the longest matching path wins, and `Exact` before `Prefix` of the same
//!   length; between equal rules, the one added first (the caller adds the
//!   oldest Ingress first, as ingress-nginx lets the oldest win);
//! - the most specific host group answers, as one server block per host does
//!   in ingress-nginx: the exact host, else its wildcard, else the rules
//!   without a host; a path matching nothing in that group goes to the
//!   default backend, and without one the request gets 404.
//!
//! The table is generic over what a backend is, so the matching is tested
//! without a cluster.

use std::collections::HashMap;

/// How a rule's path is compared with a request's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathType {
    Exact,
    Prefix,
}

impl PathType {
    /// The type an Ingress path names; `ImplementationSpecific` (and
    /// anything unknown) is matched as a prefix.
    pub fn from_api(path_type: &str) -> PathType {
        match path_type {
            "Exact" => PathType::Exact,
            _ => PathType::Prefix,
        }
    }
}

struct Route<B> {
    path: String,
    path_type: PathType,
    backend: B,
}

impl<B> Route<B> {
    /// How long a match this rule makes: its path without the trailing `/`
    /// a prefix ignores.
    fn length(&self) -> usize {
        match self.path_type {
            PathType::Exact => self.path.len(),
            PathType::Prefix => self.path.trim_end_matches('/').len(),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self.path_type {
            PathType::Exact => self.path == path,
            PathType::Prefix => {
                let mut elements = path.split('/').filter(|e| !e.is_empty());
                self.path
                    .split('/')
                    .filter(|e| !e.is_empty())
                    .all(|wanted| elements.next() == Some(wanted))
            }
        }
    }
}

/// The routes of one host group, most specific first.
struct Routes<B>(Vec<Route<B>>);

impl<B> Default for Routes<B> {
    fn default() -> Self {
        Routes(Vec::new())
    }
}

impl<B> Routes<B> {
    fn add(&mut self, route: Route<B>) {
        // After every route at least as specific, so earlier rules win ties.
        let at = self.0.partition_point(|r| {
            (r.length(), r.path_type == PathType::Exact)
                >= (route.length(), route.path_type == PathType::Exact)
        });
        self.0.insert(at, route);
    }

    fn find(&self, path: &str) -> Option<&B> {
        self.0.iter().find(|r| r.matches(path)).map(|r| &r.backend)
    }
}

/// Every served rule, by host.
pub struct Table<B> {
    exact: HashMap<String, Routes<B>>,
    /// Wildcard hosts by what follows their `*.`.
    wildcard: HashMap<String, Routes<B>>,
    any_host: Routes<B>,
    default_backend: Option<B>,
}

impl<B> Default for Table<B> {
    fn default() -> Self {
        Table {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            any_host: Routes::default(),
            default_backend: None,
        }
    }
}

impl<B> Table<B> {
    /// Adds a rule; `host` empty for a rule without one.
    pub fn add(&mut self, host: &str, path: &str, path_type: PathType, backend: B) {
        let host = host.to_ascii_lowercase();
        let routes = if host.is_empty() {
            &mut self.any_host
        } else if let Some(domain) = host.strip_prefix("*.") {
            self.wildcard.entry(domain.to_owned()).or_default()
        } else {
            self.exact.entry(host).or_default()
        };
        routes.add(Route {
            path: if path.is_empty() { "/" } else { path }.to_owned(),
            path_type,
            backend,
        });
    }

    /// Sets the backend of requests no rule takes, unless one is set: the
    /// first Ingress with a default backend keeps it.
    pub fn set_default(&mut self, backend: B) {
        self.default_backend.get_or_insert(backend);
    }

    /// The backend for a request to `host` (as the Host header has it, port
    /// and all) and `path`; `None` is a 404.
    pub fn find(&self, host: &str, path: &str) -> Option<&B> {
        let host = normalize_host(host);
        let group = self
            .exact
            .get(&host)
            .or_else(|| {
                let (_, domain) = host.split_once('.')?;
                self.wildcard.get(domain)
            })
            .unwrap_or(&self.any_host);
        group.find(path).or(self.default_backend.as_ref())
    }
}

/// The host name alone: lower case, without a port or a trailing dot.
pub fn normalize_host(host: &str) -> String {
    let name = match host.strip_prefix('[') {
        // An IPv6 literal keeps its brackets; only what follows `]` is a port.
        Some(_) => host.split_inclusive(']').next().unwrap_or(host),
        None => host.split(':').next().unwrap_or(host),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rules: &[(&str, &str, PathType, &'static str)]) -> Table<&'static str> {
        let mut table = Table::default();
        for (host, path, path_type, backend) in rules {
            table.add(host, path, *path_type, *backend);
        }
        table
    }

    use PathType::{Exact, Prefix};

    #[test]
    fn prefix_matches_whole_path_elements() {
        let t = table(&[("", "/foo", Prefix, "foo")]);
        assert_eq!(t.find("h", "/foo"), Some(&"foo"));
        assert_eq!(t.find("h", "/foo/"), Some(&"foo"));
        assert_eq!(t.find("h", "/foo/bar"), Some(&"foo"));
        assert_eq!(t.find("h", "/foobar"), None);
        assert_eq!(t.find("h", "/"), None);
    }

    #[test]
    fn trailing_slash_of_a_prefix_changes_nothing() {
        let t = table(&[("", "/aaa/bbb/", Prefix, "b")]);
        assert_eq!(t.find("h", "/aaa/bbb"), Some(&"b"));
        assert_eq!(t.find("h", "/aaa/bbb/ccc"), Some(&"b"));
        assert_eq!(t.find("h", "/aaa/bbbxyz"), None);
    }

    #[test]
    fn root_prefix_matches_everything() {
        let t = table(&[("", "/", Prefix, "root")]);
        assert_eq!(t.find("h", "/"), Some(&"root"));
        assert_eq!(t.find("h", "/any/thing"), Some(&"root"));
    }

    #[test]
    fn exact_matches_only_the_path_as_written() {
        let t = table(&[("", "/foo", Exact, "foo")]);
        assert_eq!(t.find("h", "/foo"), Some(&"foo"));
        assert_eq!(t.find("h", "/foo/"), None);
        assert_eq!(t.find("h", "/FOO"), None);
    }

    #[test]
    fn longest_path_wins_whatever_the_order() {
        let t = table(&[
            ("", "/", Prefix, "root"),
            ("", "/aaa/bbb", Prefix, "long"),
            ("", "/aaa", Prefix, "short"),
        ]);
        assert_eq!(t.find("h", "/aaa/bbb/c"), Some(&"long"));
        assert_eq!(t.find("h", "/aaa/c"), Some(&"short"));
        assert_eq!(t.find("h", "/c"), Some(&"root"));
    }

    #[test]
    fn exact_wins_over_a_prefix_of_the_same_path() {
        let t = table(&[
            ("", "/foo/", Prefix, "prefix"),
            ("", "/foo", Exact, "exact"),
        ]);
        assert_eq!(t.find("h", "/foo"), Some(&"exact"));
        assert_eq!(t.find("h", "/foo/"), Some(&"prefix"));
        assert_eq!(t.find("h", "/foo/x"), Some(&"prefix"));
    }

    #[test]
    fn the_first_of_equal_rules_wins() {
        let t = table(&[("", "/x", Prefix, "older"), ("", "/x", Prefix, "newer")]);
        assert_eq!(t.find("h", "/x"), Some(&"older"));
    }

    #[test]
    fn hosts_match_exactly_without_case_or_port() {
        let t = table(&[("foo.example.com", "/", Prefix, "foo")]);
        assert_eq!(t.find("foo.example.com", "/"), Some(&"foo"));
        assert_eq!(t.find("FOO.Example.com:8080", "/"), Some(&"foo"));
        assert_eq!(t.find("foo.example.com.", "/"), Some(&"foo"));
        assert_eq!(t.find("bar.example.com", "/"), None);
    }

    #[test]
    fn a_wildcard_host_covers_one_label() {
        let t = table(&[("*.example.com", "/", Prefix, "wild")]);
        assert_eq!(t.find("a.example.com", "/"), Some(&"wild"));
        assert_eq!(t.find("a.b.example.com", "/"), None);
        assert_eq!(t.find("example.com", "/"), None);
    }

    #[test]
    fn the_most_specific_host_group_answers() {
        let t = table(&[
            ("", "/", Prefix, "any"),
            ("*.example.com", "/", Prefix, "wild"),
            ("a.example.com", "/api", Prefix, "exact"),
        ]);
        assert_eq!(t.find("a.example.com", "/api"), Some(&"exact"));
        // The exact host's group has no `/`: no fall back to other hosts' rules.
        assert_eq!(t.find("a.example.com", "/other"), None);
        assert_eq!(t.find("b.example.com", "/other"), Some(&"wild"));
        assert_eq!(t.find("elsewhere.org", "/other"), Some(&"any"));
    }

    #[test]
    fn the_default_backend_takes_what_no_rule_matches() {
        let mut t = table(&[("foo.com", "/app", Prefix, "app")]);
        t.set_default("default");
        t.set_default("later default");
        assert_eq!(t.find("foo.com", "/app/x"), Some(&"app"));
        assert_eq!(t.find("foo.com", "/other"), Some(&"default"));
        assert_eq!(t.find("bar.com", "/app"), Some(&"default"));
    }

    #[test]
    fn implementation_specific_is_a_prefix() {
        assert_eq!(PathType::from_api("ImplementationSpecific"), Prefix);
        assert_eq!(PathType::from_api("Prefix"), Prefix);
        assert_eq!(PathType::from_api("Exact"), Exact);
    }

    #[test]
    fn host_names_are_normalized() {
        assert_eq!(normalize_host("Foo.COM:80"), "foo.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("10.0.0.1"), "10.0.0.1");
    }
}

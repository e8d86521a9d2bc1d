//! Image references, normalised as Docker's `ParseNormalizedNamed` does
//! (and so as Kubernetes does): `busybox` is `docker.io/library/busybox:latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::Error;

const DEFAULT_REGISTRY: &str = "docker.io";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_REPOSITORY_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LENGTH: usize = 255;
const MAX_TAG_LENGTH: usize = 128;

/// A fully qualified image reference: registry, repository, and a tag, a
/// digest or both. Displays in full (`docker.io/library/busybox:latest`), the
/// form Kubernetes reports in container statuses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The registry host, with its port if it has one: `docker.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry: `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when the name had neither tag nor digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Registry and repository: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest`, without a tag: the form of an
    /// image's repo digests.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Whether the registry is this machine (`localhost` or a loopback
    /// address), which is reached over plain HTTP as Docker does.
    pub fn is_loopback_registry(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
            None => self.registry.split(':').next().unwrap_or_default(),
        };
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference, Error> {
        let invalid = |why: &str| Error::InvalidReference(format!("{s:?}: {why}"));
        if s.is_empty() {
            return Err(invalid("empty name"));
        }
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("cannot specify 64-byte hexadecimal strings"));
        }
        let (named, digest) = match s.split_once('@') {
            Some((named, digest)) => (named, Some(digest.parse::<Digest>()?)),
            None => (s, None),
        };
        let (registry, remainder) = split_registry(named);
        let (path, tag) = match remainder.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
            _ => (remainder, None),
        };
        let registry = if registry == LEGACY_DEFAULT_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("{OFFICIAL_REPOSITORY_PREFIX}{path}")
        } else {
            path.to_string()
        };
        if !valid_registry(registry) {
            return Err(invalid("invalid registry host"));
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(invalid("invalid repository name"));
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LENGTH {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        if tag.is_some_and(|tag| !valid_tag(tag)) {
            return Err(invalid("invalid tag"));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG),
            (tag, _) => tag,
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first component is a registry when it has a `.` or a
/// `:`, is `localhost`, or has upper-case letters (which a repository cannot).
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

/// A host name or IPv4 address, or a bracketed IPv6 address, and an optional port.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(bracketed) = registry.strip_prefix('[') {
        let Some((ipv6, rest)) = bracketed.split_once(']') else {
            return false;
        };
        if ipv6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match rest {
            "" => return true,
            _ => match rest.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    let valid_label = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (host.is_empty() || host.split('.').all(valid_label))
        && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alphanumeric(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let separator = &component[i..];
        let length = if separator.starts_with("__") {
            2
        } else if separator.starts_with(['.', '_']) {
            1
        } else {
            separator.bytes().take_while(|&b| b == b'-').count()
        };
        if length == 0 {
            return false;
        }
        i += length;
    }
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    tag.len() <= MAX_TAG_LENGTH
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn normalised(s: &str) -> String {
        s.parse::<Reference>()
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .to_string()
    }

    #[test]
    fn short_names_are_official_docker_hub_images() {
        assert_eq!(normalised("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalised("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(
            normalised("library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalised("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalised("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalised("bitnami/redis"),
            "docker.io/bitnami/redis:latest"
        );
    }

    #[test]
    fn first_component_is_a_registry_with_a_dot_a_colon_localhost_or_capitals() {
        assert_eq!(normalised("localhost/x"), "localhost/x:latest");
        assert_eq!(normalised("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(normalised("quay.io/a/b/c:v1"), "quay.io/a/b/c:v1");
        assert_eq!(
            normalised("127.0.0.1:5000/tugboat/busybox"),
            "127.0.0.1:5000/tugboat/busybox:latest"
        );
        assert_eq!(normalised("[::1]:5000/x:y"), "[::1]:5000/x:y");
        assert_eq!(normalised("Registry/x"), "Registry/x:latest");
        // No slash: "foo:5000" is repository foo with tag 5000.
        assert_eq!(normalised("foo:5000"), "docker.io/library/foo:5000");
        // Without a dot, colon or "localhost" the first component is a path.
        assert_eq!(normalised("myhost/x"), "docker.io/myhost/x:latest");
    }

    #[test]
    fn digests_without_a_tag_get_no_default_tag() {
        let reference: Reference = format!("busybox@sha256:{HEX}").parse().unwrap();
        assert_eq!(reference.tag(), None);
        assert_eq!(reference.digest().unwrap().hex(), HEX);
        assert_eq!(
            reference.to_string(),
            format!("docker.io/library/busybox@sha256:{HEX}")
        );
        assert_eq!(
            normalised(&format!("localhost:5000/x:v1@sha256:{HEX}")),
            format!("localhost:5000/x:v1@sha256:{HEX}")
        );
    }

    #[test]
    fn invalid_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "docker.io/Library/busybox",
            "busybox:",
            "busybox:-x",
            "a:b:c",
            "busybox@sha256:abc",
            "busybox@md5:d41d8cd98f00b204e9800998ecf8427e",
            "/busybox",
            "busybox/",
            "a//b",
            "a..b",
            "-a",
            "a-",
            "local host/x",
            HEX,
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} was accepted");
        }
        let long_tag = format!("busybox:{}", "a".repeat(129));
        assert!(long_tag.parse::<Reference>().is_err());
        let long_name = format!("x/{}", "a".repeat(260));
        assert!(long_name.parse::<Reference>().is_err());
    }

    #[test]
    fn separators_in_path_components() {
        for good in ["a.b", "a_b", "a__b", "a---b", "a-b.c_d"] {
            assert!(valid_path_component(good), "{good}");
        }
        for bad in ["a___b", "a._b", "_a", "a.", ""] {
            assert!(!valid_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn loopback_registries() {
        let loopback = |s: &str| s.parse::<Reference>().unwrap().is_loopback_registry();
        assert!(loopback("localhost:5000/x"));
        assert!(loopback("127.0.0.1:5000/x"));
        assert!(loopback("127.1.2.3/x"));
        assert!(loopback("[::1]:5000/x"));
        assert!(!loopback("busybox"));
        assert!(!loopback("10.0.0.1:5000/x"));
    }
}

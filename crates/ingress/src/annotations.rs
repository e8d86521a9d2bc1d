//! The ingress-nginx annotations this ingress honours, read as
//! ingress-nginx reads them: `proxy-read-timeout`, how long an endpoint may
//! take to answer.

use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;

const PROXY_READ_TIMEOUT: &str = "nginx.ingress.kubernetes.io/proxy-read-timeout";
/// ingress-nginx's default proxy-read-timeout.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the endpoints of `ingress`'s backends may take to answer: its
/// `proxy-read-timeout` (whole seconds), else 60 s, as ingress-nginx falls
/// back on its default for a value that is not a positive number.
pub fn read_timeout(ingress: &Ingress) -> Duration {
    ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROXY_READ_TIMEOUT))
        .and_then(|value| value.trim().parse::<u64>().ok())
        .filter(|&seconds| seconds > 0)
        .map_or(DEFAULT_READ_TIMEOUT, Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(value: Option<&str>) -> Ingress {
        let mut ingress = Ingress::default();
        ingress.metadata.annotations =
            value.map(|v| [(PROXY_READ_TIMEOUT.to_owned(), v.to_owned())].into());
        ingress
    }

    #[test]
    fn the_read_timeout_is_the_annotations_seconds_else_sixty() {
        assert_eq!(read_timeout(&annotated(Some("5"))), Duration::from_secs(5));
        assert_eq!(
            read_timeout(&annotated(Some("120"))),
            Duration::from_secs(120)
        );
        for unusable in [None, Some("0"), Some("-3"), Some("5s"), Some("")] {
            assert_eq!(
                read_timeout(&annotated(unusable)),
                DEFAULT_READ_TIMEOUT,
                "{unusable:?}"
            );
        }
    }
}

//! Service account tokens: the JWTs `kubectl create token` and the
//! TokenRequest API hand out and pods find mounted at
//! `/var/run/secrets/kubernetes.io/serviceaccount/token`, signed with the
//! cluster's service-account key (ES256) and checked on every request that
//! shows one as `Authorization: Bearer`.
//!
//! A JWT here is the JWS compact form: base64url(header) "." base64url(claims)
//! "." base64url(signature), the signature being ECDSA P-256 over the first
//! two parts in the fixed r‖s form JWS uses, which `ring` makes and checks
//! directly.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};

/// The issuer and the audience the API server accepts, as kube-apiserver's
/// default `--service-account-issuer` and `--api-audiences`.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

const KEY_FILE: &str = "service-account.key";

/// What a token says: Kubernetes' own claims, so tools that read them
/// (`kubectl auth whoami`, Vault, jwt.io) understand ours.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Bound,
}

/// The service account a token stands for, and the object it lives only as
/// long as (a pod, for the tokens mounted into pods).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bound {
    pub namespace: String,
    pub serviceaccount: Named,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Named>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Named>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Named>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Named {
    pub name: String,
    pub uid: String,
}

/// The cluster's service-account key pair.
pub struct Tokens {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Tokens {
    /// Loads the key from `pki_dir`, making it at first start. The key must
    /// outlive restarts: tokens already in pods stay valid.
    pub fn load_or_create(pki_dir: &Path) -> anyhow::Result<Tokens> {
        let path = pki_dir.join(KEY_FILE);
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = rcgen::KeyPair::generate()?.serialize_pem();
                crate::pki::write_private(&path, &pem)?;
                pem
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let der = rcgen::KeyPair::from_pem(&pem)
            .with_context(|| format!("reading the key in {}", path.display()))?
            .serialize_der();
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| anyhow::anyhow!("{} is not an ECDSA P-256 key: {e}", path.display()))?;
        Ok(Tokens { key, rng })
    }

    /// A signed token carrying `claims`.
    pub fn issue(&self, claims: &Claims) -> anyhow::Result<String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
        let signed = format!("{header}.{body}");
        let signature = self
            .key
            .sign(&self.rng, signed.as_bytes())
            .map_err(|e| anyhow::anyhow!("signing a token: {e}"))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The claims of a token this cluster signed, for our audience and valid
    /// at `now` (seconds since the epoch); `None` for anything else.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, body) = signed.split_once('.')?;
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "ES256" {
            return None;
        }
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key());
        public
            .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).ok()?)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let valid = claims.iss == ISSUER
            && claims.aud.iter().any(|a| a == ISSUER)
            && claims.nbf <= now
            && now < claims.exp;
        valid.then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "system:serviceaccount:default:default".into(),
            aud: vec![ISSUER.into()],
            exp,
            iat: 100,
            nbf: 100,
            jti: "id".into(),
            kubernetes: Bound {
                namespace: "default".into(),
                serviceaccount: Named {
                    name: "default".into(),
                    uid: "u".into(),
                },
                pod: None,
                secret: None,
                node: None,
            },
        }
    }

    #[test]
    fn a_token_is_accepted_until_it_expires_and_only_as_signed() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::load_or_create(dir.path()).unwrap();
        let token = tokens.issue(&claims(200)).unwrap();
        assert_eq!(tokens.verify(&token, 150).unwrap().sub, claims(0).sub);
        assert!(tokens.verify(&token, 200).is_none(), "expired");
        assert!(tokens.verify(&token, 99).is_none(), "not yet valid");

        let (signed, _) = token.rsplit_once('.').unwrap();
        let mut forged = claims(10_000);
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let header = signed.split('.').next().unwrap();
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            tokens
                .verify(&format!("{header}.{forged_body}.{signature}"), 150)
                .is_none(),
            "changed claims must not verify"
        );

        let reloaded = Tokens::load_or_create(dir.path()).unwrap();
        assert!(
            reloaded.verify(&token, 150).is_some(),
            "the key survives a restart"
        );
        let other = Tokens::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(other.verify(&token, 150).is_none(), "another cluster's key");
    }

    #[test]
    fn tokens_for_other_audiences_do_not_reach_the_api() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::load_or_create(dir.path()).unwrap();
        let mut vault = claims(200);
        vault.aud = vec!["vault".into()];
        assert!(tokens.verify(&tokens.issue(&vault).unwrap(), 150).is_none());
    }
}

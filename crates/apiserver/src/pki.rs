//! The cluster's certificates: a CA, the API server's serving certificate and
//! the admin's client certificate, made at first start and kept in the data
//! dir; and the admin kubeconfig that embeds them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM files of the cluster's PKI.
pub struct Pki {
    pub ca_cert: String,
    /// Kept so that later certificates (joining nodes) can be signed by the same CA.
    pub ca_key: String,
    pub server_cert: String,
    pub server_key: String,
    pub admin_cert: String,
    pub admin_key: String,
}

const FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "admin.crt",
    "admin.key",
];

impl Pki {
    /// Loads the PKI from `dir/pki`, making it first if it is not there.
    /// `hosts` are the names and addresses the serving certificate is valid for.
    pub fn load_or_create(dir: &Path, hosts: &[String]) -> anyhow::Result<Pki> {
        let pki_dir = dir.join("pki");
        if FILES.iter().all(|f| pki_dir.join(f).exists()) {
            let read = |f: &str| {
                std::fs::read_to_string(pki_dir.join(f)).with_context(|| format!("reading {f}"))
            };
            return Ok(Pki {
                ca_cert: read("ca.crt")?,
                ca_key: read("ca.key")?,
                server_cert: read("server.crt")?,
                server_key: read("server.key")?,
                admin_cert: read("admin.crt")?,
                admin_key: read("admin.key")?,
            });
        }
        let pki = Self::create(hosts)?;
        std::fs::create_dir_all(&pki_dir)?;
        let files = [
            ("ca.crt", &pki.ca_cert),
            ("ca.key", &pki.ca_key),
            ("server.crt", &pki.server_cert),
            ("server.key", &pki.server_key),
            ("admin.crt", &pki.admin_cert),
            ("admin.key", &pki.admin_key),
        ];
        for (name, pem) in files {
            write_private(&pki_dir.join(name), pem)?;
        }
        Ok(pki)
    }

    fn create(hosts: &[String]) -> anyhow::Result<Pki> {
        let ca_key = KeyPair::generate()?;
        let ca_params = ca_params()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut sans: Vec<String> = [
            "localhost",
            "127.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from)
        .to_vec();
        sans.extend(hosts.iter().cloned());
        sans.dedup();
        let mut server_params = CertificateParams::new(sans)?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        // The admin is in system:masters, as kubeadm's admin.conf user is.
        let admin_key = KeyPair::generate()?;
        let mut admin_params = CertificateParams::new(Vec::<String>::new())?;
        admin_params
            .distinguished_name
            .push(DnType::CommonName, "admin");
        admin_params
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        admin_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let admin_cert = admin_params.signed_by(&admin_key, &issuer)?;

        Ok(Pki {
            ca_cert: ca_cert.pem(),
            ca_key: ca_key_pem,
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
            admin_cert: admin_cert.pem(),
            admin_key: admin_key.serialize_pem(),
        })
    }

    /// A client certificate and key (PEM) the API server shows kubelets, as
    /// kube-apiserver's `--kubelet-client-certificate`; made afresh at each
    /// start, signed by the cluster CA.
    pub fn kubelet_client(&self) -> anyhow::Result<(String, String)> {
        let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&self.ca_key)?);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver-kubelet-client");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Writes the admin kubeconfig for a server at `url` and returns its path.
    pub fn write_admin_kubeconfig(&self, dir: &Path, url: &str) -> anyhow::Result<PathBuf> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let kubeconfig = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: tugboat
  cluster:
    server: {url}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: tugboat
  context:
    cluster: tugboat
    user: admin
    namespace: default
current-context: tugboat
preferences: {{}}
",
            ca = b64(&self.ca_cert),
            cert = b64(&self.admin_cert),
            key = b64(&self.admin_key),
        );
        let path = dir.join("admin.kubeconfig");
        write_private(&path, &kubeconfig)?;
        Ok(path)
    }
}

/// The CA's own parameters: what it was made with, and what certificates it
/// signs name as their issuer.
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "tugboat-ca");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(params)
}

/// Writes a file readable by its owner only: these hold private keys.
pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

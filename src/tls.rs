//! Why: HTTPS from the first start. Without `tls_cert`/`tls_key` a self-signed certificate
//! for localhost and this host's name is generated once into the data directory (key file
//! mode 0600) and reused, so browsers can pin the exception.

use std::path::{Path, PathBuf};

use crate::config::Config;

pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub generated: bool,
}

pub fn ensure(cfg: &Config) -> anyhow::Result<TlsFiles> {
    if let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) {
        for (name, p) in [("tls_cert", cert), ("tls_key", key)] {
            if !p.exists() {
                anyhow::bail!("invalid setting `{name}`: {} does not exist", p.display());
            }
        }
        return Ok(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            generated: false,
        });
    }
    let dir = cfg.data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok(TlsFiles {
            cert,
            key,
            generated: false,
        });
    }
    std::fs::create_dir_all(&dir)?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_string());
        }
    }
    let ck = rcgen::generate_simple_self_signed(names)?;
    std::fs::write(&cert, ck.cert.pem())?;
    write_private(&key, ck.signing_key.serialize_pem().as_bytes())?;
    Ok(TlsFiles {
        cert,
        key,
        generated: true,
    })
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(data)
}

//! Why: the RDP connection sequence (X.224 negotiation, TLS, CredSSP/NLA, capability
//! exchange) over any byte stream, so it runs through landing-server tunnels unchanged. The
//! server's TLS certificate plays the part of an SSH host key: the gateway pins its SHA-256
//! fingerprint per resource (trust on first use or administrator approval, as for SSH), so
//! the certificate is not checked against a CA here but against the pin afterwards.

use std::sync::Arc;

use ironrdp_connector::{ClientConnector, ConnectionResult, ConnectorErrorKind, Credentials};
use ironrdp_tokio::{Framed, TokioStream};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;

use crate::adapter::TargetStream;
use crate::event::FailureKind;
use crate::host_key::HostKeyObservation;

use super::clipboard::ClipboardPolicy;
use super::{RdpSecurity, RdpTarget};

/// The stream after the TLS upgrade, as the active session reads and writes it.
pub type Upgraded = Framed<TokioStream<tokio_rustls::client::TlsStream<SyncStream>>>;

/// IronRDP's framing wants a `Sync` stream; a target stream is only `Send`. The wrapper is
/// only ever used through `&mut`, which `SyncWrapper` turns into `Sync` safely.
pub struct SyncStream(sync_wrapper::SyncWrapper<TargetStream>);

impl AsyncRead for SyncStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.get_mut().0.get_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for SyncStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(self.get_mut().0.get_mut()).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.get_mut().0.get_mut()).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.get_mut().0.get_mut()).poll_shutdown(cx)
    }
}

type Fail = (FailureKind, String);

/// Kerberos is not offered: CredSSP falls back to NTLM, which needs no network calls.
struct NoKerberos;

impl ironrdp_tokio::NetworkClient for NoKerberos {
    async fn send(
        &mut self,
        _request: &ironrdp_connector::sspi::generator::NetworkRequest,
    ) -> ironrdp_connector::ConnectorResult<Vec<u8>> {
        Err(ironrdp_connector::general_err!(
            "Kerberos is not supported by this gateway"
        ))
    }
}

/// Accepts any certificate during the handshake (the pin is checked right after it), while
/// still verifying the handshake signatures, so the server proves it holds the key.
#[derive(Debug)]
struct PinLater(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for PinLater {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificate's fingerprint in the form host keys use: `SHA256:` + unpadded base64.
pub fn fingerprint(der: &[u8]) -> String {
    use base64::Engine;
    let digest = sha2::Sha256::digest(der);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// The subject public key of a DER certificate (CredSSP binds to it).
fn public_key(der: &[u8]) -> Result<Vec<u8>, String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    Ok(cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec())
}

fn config(t: &RdpTarget, nla: bool, tls: bool) -> ironrdp_connector::Config {
    use ironrdp_pdu::gcc;
    use ironrdp_pdu::rdp::capability_sets::{MajorPlatformType, RailSupportLevel};
    let (username, domain) = t.split_user();
    ironrdp_connector::Config {
        desktop_size: ironrdp_connector::DesktopSize {
            width: t.width,
            height: t.height,
        },
        monitor_layout: None,
        desktop_scale_factor: 0,
        desktop_physical_size: None,
        desktop_orientation: None,
        device_scale_factor: None,
        monitor_extended_layout: None,
        relative_mouse_input: false,
        enable_tls: tls,
        enable_credssp: nla,
        enable_standard_rdp_security: false,
        // IronRDP holds the password as a plain String for the connection sequence; it is
        // dropped (not zeroized) when the connector is (docs/rdp.md, trust boundaries).
        credentials: Credentials::UsernamePassword {
            username,
            password: String::from_utf8_lossy(t.password.expose()).into_owned(),
        },
        domain,
        // A modern client build: servers (xrdp among them) refuse to resize the desktop of
        // clients that report an old one.
        client_build: 18363,
        client_name: "portcullis".into(),
        keyboard_type: gcc::KeyboardType::IBM_ENHANCED,
        keyboard_subtype: 0,
        keyboard_functional_keys_count: 12,
        keyboard_layout: t.keyboard_layout,
        connection_type: gcc::ConnectionType::Lan,
        ime_file_name: String::new(),
        // RemoteFX is not offered: it is lossy, so text arrives with many shades that
        // compress poorly for the browser and the recording, and it costs more CPU to decode.
        // With it off, servers send lossless planar/interleaved bitmaps (bench/README.md,
        // "RDP desktops": 95 -> 6 MB per minute to the browser on a scrolling terminal).
        bitmap: Some(ironrdp_connector::BitmapConfig {
            lossy_compression: false,
            color_depth: 32,
            codecs: ironrdp_pdu::rdp::capability_sets::client_codecs_capabilities(&[
                "remotefx:off",
            ])
            .unwrap_or_default(),
        }),
        dig_product_id: String::new(),
        client_dir: String::new(),
        alternate_shell: String::new(),
        work_dir: String::new(),
        remote_application_mode: false,
        rail_support_level: RailSupportLevel::empty(),
        platform: MajorPlatformType::UNIX,
        hardware_id: None,
        request_data: None,
        autologon: true,
        enable_audio_playback: false,
        enable_audio_capture: false,
        performance_flags: Default::default(),
        license_cache: None,
        timezone_info: Default::default(),
        compression_type: None,
        // Pointer shapes come as images for the browser's cursor (not drawn into the picture).
        enable_server_pointer: true,
        pointer_software_rendering: false,
        multitransport_flags: None,
        support_dyn_vc_gfx_protocol: false,
    }
}

/// What the connection sequence yields: the upgraded stream, the session's parameters and
/// whether NLA was used.
pub struct Connected {
    pub framed: Upgraded,
    pub result: ConnectionResult,
    pub nla: bool,
    /// What the clipboard channel reports (None: the policy is off, no channel).
    pub clipboard: Option<std::sync::mpsc::Receiver<super::clipboard::ClipEvent>>,
}

/// Runs the connection sequence. The certificate is reported (for pinning) as soon as it is
/// seen, and a certificate the pin refuses ends the attempt before any credential is sent.
pub async fn connect(
    t: &RdpTarget,
    stream: TargetStream,
    report: tokio::sync::oneshot::Sender<HostKeyObservation>,
) -> Result<Connected, Fail> {
    let (nla, tls) = match t.security {
        RdpSecurity::NlaRequired => (true, false),
        RdpSecurity::NlaPreferred => (true, true),
        RdpSecurity::TlsOnly => (false, true),
    };
    let label = &t.label;
    let proto_err = |what: &str, e: &dyn std::fmt::Display| {
        (
            FailureKind::Protocol,
            format!("{label}: the RDP connection failed during {what}: {e}"),
        )
    };
    let mut framed =
        Framed::<TokioStream<SyncStream>>::new(SyncStream(sync_wrapper::SyncWrapper::new(stream)));
    let mut connector = ClientConnector::new(
        config(t, nla, tls),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    // The clipboard channel exists only when the policy lets something through.
    let clipboard = (t.clipboard != ClipboardPolicy::Off).then(|| {
        let (bridge, events) = super::clipboard::Bridge::new();
        connector.attach_static_channel(ironrdp_cliprdr::CliprdrClient::new(Box::new(bridge)));
        events
    });
    // The Display Control channel lets the desktop follow the browser tab's size (servers
    // that do not offer it keep the first size; the browser scales the picture).
    if t.follow_tab {
        connector.attach_static_channel(ironrdp_dvc::DrdynvcClient::new().with_dynamic_channel(
            ironrdp_displaycontrol::client::DisplayControlClient::new(|_| Ok(Vec::new())),
        ));
    }
    let should_upgrade = ironrdp_tokio::connect_begin(&mut framed, &mut connector)
        .await
        .map_err(|e| negotiation_failure(label, nla, tls, &e))?;
    let stream = framed.into_inner_no_leftover();
    // TLS, with session resumption off (CredSSP binds to this very handshake).
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls_config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| proto_err("TLS set-up", &e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinLater(provider)))
        .with_no_client_auth();
    tls_config.resumption = rustls::client::Resumption::disabled();
    let server_name = rustls::pki_types::ServerName::try_from(t.server_name.clone())
        .map_err(|e| proto_err("TLS set-up (the host name)", &e))?;
    let tls_stream = tokio_rustls::TlsConnector::from(Arc::new(tls_config))
        .connect(server_name, stream)
        .await
        .map_err(|e| {
            (
                FailureKind::Protocol,
                format!("{label}: the TLS handshake failed: {e}"),
            )
        })?;
    let der = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| {
            (
                FailureKind::Protocol,
                format!("{label}: the server sent no TLS certificate"),
            )
        })?;
    let (obs, accept) = t.certificate.judge(fingerprint(&der));
    let refusal = obs.refusal(&t.label);
    let _ = report.send(obs);
    if !accept {
        return Err(refusal.unwrap_or((
            FailureKind::HostKeyMismatch,
            format!("{label}: its TLS certificate was refused"),
        )));
    }
    let server_public_key =
        public_key(&der).map_err(|e| proto_err("reading the certificate", &e))?;
    let upgraded = ironrdp_tokio::mark_as_upgraded(should_upgrade, &mut connector);
    let mut framed = Framed::<TokioStream<_>>::new(tls_stream);
    let used_nla = connector.should_perform_credssp();
    let outcome = ironrdp_tokio::connect_finalize(
        upgraded,
        connector,
        &mut framed,
        &mut NoKerberos,
        ironrdp_connector::ServerName::new(t.server_name.clone()),
        server_public_key,
        None,
    )
    .await
    .map_err(|e| finalize_failure(label, used_nla, &e))?;
    let result = outcome
        .into_connected()
        .map_err(|e| proto_err("activation", &e))?;
    Ok(Connected {
        framed,
        result,
        nla: used_nla,
        clipboard,
    })
}

/// A refused negotiation, in words: usually a security setting that does not match the server.
fn negotiation_failure(
    label: &str,
    nla: bool,
    tls: bool,
    e: &ironrdp_connector::ConnectorError,
) -> Fail {
    let hint = match (nla, tls) {
        (true, false) => " This resource requires NLA; the server may not offer it (set the resource's RDP security to \u{201c}NLA preferred\u{201d} or \u{201c}TLS only\u{201d} if that is intended).",
        (false, true) => " This resource is set to TLS only; the server may require NLA.",
        _ => "",
    };
    if matches!(e.kind(), ConnectorErrorKind::Negotiation(_)) {
        return (
            FailureKind::Protocol,
            format!("{label}: the server refused the security protocol: {e}.{hint}"),
        );
    }
    (
        FailureKind::Unreachable,
        format!("{label}: the RDP negotiation failed: {e}.{hint}"),
    )
}

/// A failure after TLS: with NLA, the server closing the connection during CredSSP (or
/// refusing it) means the credentials were refused.
fn finalize_failure(label: &str, nla: bool, e: &ironrdp_connector::ConnectorError) -> Fail {
    let text = e.to_string();
    let credssp = matches!(
        e.kind(),
        ConnectorErrorKind::Credssp(_) | ConnectorErrorKind::AccessDenied
    ) || (nla && (text.contains("CredSSP") || text.contains("credssp")))
        || (nla && io_closed(e));
    if credssp {
        return (
            FailureKind::AuthenticationFailed,
            format!("{label}: authentication failed (NLA): the server refused the vault's credential. The stored secret is probably out of date: verify or rotate it."),
        );
    }
    (
        FailureKind::Protocol,
        format!("{label}: the RDP connection failed: {e}"),
    )
}

fn io_closed(e: &ironrdp_connector::ConnectorError) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        src = s.source();
    }
    false
}

//! Why: the part of launching a session that depends on its path. Tunnel-mode landing
//! servers become `gateway::hop_chain` hops (each with its vault login and host-key pin);
//! from the first interactive landing server on, the chain becomes a
//! `gateway::interactive_hop` adapter that types its way to the target. The path itself is
//! resolved in `hop_path`; the rest of the launch (tickets, access, recording, audit) is in
//! `sessions`.

use gateway::adapter::ProtocolAdapter;
use gateway::broker::SessionInfo;
use gateway::event::{FailureKind, Protocol};
use gateway::host_key::HostKeyObservation;
use gateway::ssh::{SshCredential, SshTarget};
use gateway::tcp::{connect_tcp, connect_tcp_sized};
use serde_json::json;

use crate::app::App;
use crate::audit::Actor;
use crate::host_key_pins::{host_key_policy, record_host_key, PinKind};
use crate::telnet_logon::{telnet_target, TelnetLogin};
use crate::vault::accounts;
use gateway::ssh::SshAdapter;
use gateway::telnet::TelnetAdapter;

/// The login for one landing-server resource: its account (the landing server's, or on a
/// secondary the account with the same user name), its pin policy.
async fn hop_endpoint(
    app: &App,
    l: &crate::hop_path::LandingServer,
    resource_id: &str,
) -> Result<gateway::hop_chain::HopEndpoint, (FailureKind, String)> {
    let unusable = |what: &str| {
        (
            FailureKind::Protocol,
            format!(
                "Landing server {}: {what}; an administrator must fix its settings.",
                l.name
            ),
        )
    };
    let r = crate::vault::resources::get(app, resource_id)
        .await
        .map_err(|_| unusable("its resource is missing"))?;
    let port = r
        .ssh_port
        .ok_or_else(|| unusable("its resource has no SSH port"))?;
    let account = accounts::open_landing_login(app, &l.account_id, &r.id)
        .await
        .map_err(|_| unusable("its login account cannot be opened"))?;
    let host_key = host_key_policy(app, &r.id, PinKind::Ssh)
        .await
        .map_err(|_| unusable("its host-key pin cannot be read"))?;
    let credential = match account.kind.as_str() {
        "ssh_key" => SshCredential::PrivateKey {
            pem: account.secret,
            passphrase: account.passphrase,
        },
        _ => SshCredential::Password(account.secret),
    };
    Ok(gateway::hop_chain::HopEndpoint {
        resource_id: r.id.clone(),
        host: r.host.clone(),
        port: port as u16,
        ssh: SshTarget {
            username: account.username,
            credential,
            host_key,
            label: r.name.clone(),
            // A landing server that does not finish its handshake in this time is treated
            // as down (its secondary, if any, is tried).
            handshake_timeout: gateway::hop_chain::FAILOVER_AFTER,
        },
    })
}

pub(crate) async fn chain_hops(
    app: &App,
    chain: &[crate::hop_path::LandingServer],
) -> Result<Vec<gateway::hop_chain::Hop>, (FailureKind, String)> {
    let mut hops = Vec::new();
    for l in chain {
        let primary = hop_endpoint(app, l, &l.primary_resource_id).await?;
        let secondary = match &l.secondary_resource_id {
            Some(id) => Some(hop_endpoint(app, l, id).await?),
            None => None,
        };
        hops.push(gateway::hop_chain::Hop {
            name: l.name.clone(),
            primary,
            secondary,
        });
    }
    Ok(hops)
}

/// What a terminal login takes from the vault.
pub(crate) struct TerminalLogin<'a> {
    pub(crate) account: &'a accounts::AccountRow,
    pub(crate) secret: secret::Secret,
    pub(crate) passphrase: Option<secret::Secret>,
}

/// The adapter, the host-key report, what the audit should add, and the stream.
pub(crate) type Connection = (
    Box<dyn ProtocolAdapter>,
    Option<tokio::sync::oneshot::Receiver<HostKeyObservation>>,
    serde_json::Value,
    gateway::adapter::TargetStream,
);

/// A terminal (SSH or Telnet) login to `r` as `login.account`, over the resource's path:
/// direct, tunnelled through landing servers, or typed at interactive ones. Sessions and
/// rotation jobs both come here, so a rotation reaches a target exactly as a session does.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn connect_terminal(
    app: &App,
    actor: &Actor,
    info: &SessionInfo,
    chain: &[crate::hop_path::LandingServer],
    r: &crate::vault::resources::ResourceRow,
    port: u16,
    protocol: Protocol,
    login: TerminalLogin<'_>,
) -> Result<Connection, (FailureKind, String)> {
    let TerminalLogin {
        account,
        secret,
        passphrase,
    } = login;
    if let Some(k) = chain.iter().position(|l| l.mode == "interactive") {
        // From the first interactive landing server on, the hops are typed at shells.
        return interactive_session(
            app, actor, info, chain, k, r, port, protocol, account, secret,
        )
        .await;
    }
    let label = format!("{} ({}:{port})", r.name, r.host);
    let (adapter, host_key, mut audit_detail): (
        Box<dyn ProtocolAdapter>,
        Option<tokio::sync::oneshot::Receiver<HostKeyObservation>>,
        serde_json::Value,
    ) = match protocol {
        Protocol::Telnet => {
            let (target, detail) = telnet_target(
                app,
                &TelnetLogin {
                    username: &account.username,
                    secret_kind: &account.secret_kind,
                },
                r,
                secret,
                label,
                info,
            )
            .await?;
            (Box::new(TelnetAdapter::new(target)), None, detail)
        }
        _ => {
            let policy = host_key_policy(app, &r.id, PinKind::Ssh)
                .await
                .map_err(|_| {
                    (
                        FailureKind::Protocol,
                        "The gateway's database is unavailable.".to_string(),
                    )
                })?;
            let credential = match account.secret_kind.as_str() {
                "ssh_key" => SshCredential::PrivateKey {
                    pem: secret,
                    passphrase,
                },
                _ => SshCredential::Password(secret),
            };
            let (adapter, host_key) = SshAdapter::new(SshTarget {
                username: account.username.clone(),
                credential,
                host_key: policy,
                label,
                handshake_timeout: std::time::Duration::from_secs(15),
            });
            (Box::new(adapter), Some(host_key), json!({}))
        }
    };
    let stream = path_stream(app, actor, info, chain, &r.host, port, &mut audit_detail).await?;
    Ok((adapter, host_key, audit_detail, stream))
}

/// The byte stream to `host:port`: a TCP connection, or a channel through the tunnel-mode
/// landing servers of `chain` (which ones were used, and whether a secondary stood in, goes
/// into `audit_detail["path"]`; their host keys are pinned or checked as for any session).
pub(crate) async fn path_stream(
    app: &App,
    actor: &Actor,
    info: &SessionInfo,
    chain: &[crate::hop_path::LandingServer],
    host: &str,
    port: u16,
    audit_detail: &mut serde_json::Value,
) -> Result<gateway::adapter::TargetStream, (FailureKind, String)> {
    if chain.is_empty() {
        let sizes = (info.protocol == Protocol::Rdp).then_some(gateway::rdp::PACED_SOCKET);
        return connect_tcp_sized(host, port, std::time::Duration::from_secs(5), sizes).await;
    }
    let hops = chain_hops(app, chain).await?;
    let opened = gateway::hop_chain::open(hops, host, port).await;
    let used = match &opened {
        Ok((_, used)) => used.as_slice(),
        Err(e) => e.used.as_slice(),
    };
    audit_detail["path"] = json!(used
        .iter()
        .filter(|u| u.logged_in)
        .map(|u| json!({ "landing_server": u.name, "secondary": u.secondary }))
        .collect::<Vec<_>>());
    for u in used {
        record_hop_host_key(app, actor, info, u);
    }
    match opened {
        Ok((s, _)) => Ok(s),
        Err(e) => Err((e.kind, e.message)),
    }
}

/// A session whose path has an interactive landing server at index `k`: the hops before it
/// are tunnelled as usual; it is logged in to (over SSH, or by Telnet and its logon script
/// when its machine has no SSH port), and every later machine (landing servers, then the
/// target) is reached by typing its client command at the previous shell. Returns the
/// adapter, the stream to the first interactive landing server and the audit detail.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn interactive_session(
    app: &App,
    actor: &Actor,
    info: &SessionInfo,
    chain: &[crate::hop_path::LandingServer],
    k: usize,
    r: &crate::vault::resources::ResourceRow,
    port: u16,
    protocol: Protocol,
    account: &accounts::AccountRow,
    secret: secret::Secret,
) -> Result<
    (
        Box<dyn ProtocolAdapter>,
        Option<tokio::sync::oneshot::Receiver<HostKeyObservation>>,
        serde_json::Value,
        gateway::adapter::TargetStream,
    ),
    (FailureKind, String),
> {
    use gateway::interactive_hop::{self as ih, TypedHop, TypedSshHop, TypedTarget};
    let total = chain.len();
    let command = |l: &crate::hop_path::LandingServer, telnet: bool| {
        let own = if telnet {
            &l.telnet_command
        } else {
            &l.ssh_command
        };
        match (own.is_empty(), telnet) {
            (false, _) => own.clone(),
            (true, true) => ih::DEFAULT_TELNET_COMMAND.to_string(),
            (true, false) => ih::DEFAULT_SSH_COMMAND.to_string(),
        }
    };
    // A typed landing server as the adapter types it: the previous landing server's client
    // command, the machine's password.
    let typed = |hop: TypedLanding, prev: &crate::hop_path::LandingServer| match hop {
        TypedLanding::Ssh(e, label) => {
            let gateway::hop_chain::HopEndpoint {
                resource_id,
                host,
                port,
                ssh,
            } = *e;
            Ok(TypedHop::Ssh(TypedSshHop {
                password: typed_password(ssh.credential, &label)?,
                label,
                resource_id,
                resource_name: ssh.label,
                host,
                port,
                username: ssh.username,
                host_key: ssh.host_key,
                command: command(prev, false),
            }))
        }
        TypedLanding::Telnet(mut t) => {
            t.command = command(prev, true);
            Ok::<_, (FailureKind, String)>(TypedHop::Telnet(t))
        }
    };
    let mut hops: Vec<ih::TypedLandingServer> = Vec::new();
    let mut first: Option<FirstLanding> = None;
    for (i, l) in chain.iter().enumerate().skip(k) {
        let hop = typed_landing(app, l, &l.primary_resource_id, i, total, info).await?;
        if i == k {
            first = Some(first_hop(hop));
            continue;
        }
        let prev = &chain[i - 1];
        let secondary = match &l.secondary_resource_id {
            Some(id) => Some(typed(
                typed_landing(app, l, id, i, total, info).await?,
                prev,
            )?),
            None => None,
        };
        hops.push(ih::TypedLandingServer {
            name: l.name.clone(),
            primary: typed(hop, prev)?,
            secondary,
        });
    }
    let Some(mut first) = first else {
        return Err((
            FailureKind::Protocol,
            "an interactive chain without its first landing server".into(),
        ));
    };
    let mut detail = json!({ "path": chain.iter().enumerate().map(|(i, l)| json!({ "landing_server": l.name, "secondary": false, "interactive": i >= k })).collect::<Vec<_>>() });
    // The first interactive landing server: reached directly or through the tunnels before it.
    // Its primary machine first; one that does not answer hands over to the secondary.
    let speaks_first = |f: &FirstLanding| f.pinned.is_some();
    let stream = match reach_first(
        app,
        actor,
        info,
        &chain[..k],
        &first.host,
        first.port,
        speaks_first(&first),
    )
    .await
    {
        Ok(s) => s,
        Err((kind, m)) => {
            let Some(secondary) = chain[k]
                .secondary_resource_id
                .as_deref()
                .filter(|_| matches!(kind, FailureKind::Unreachable | FailureKind::TimedOut))
            else {
                return Err((kind, format!("{}: {m}", first.label)));
            };
            let second = first_hop(typed_landing(app, &chain[k], secondary, k, total, info).await?);
            let s = reach_first(
                app,
                actor,
                info,
                &chain[..k],
                &second.host,
                second.port,
                speaks_first(&second),
            )
            .await
            .map_err(|(kind, m2)| {
                (
                    kind,
                    format!(
                        "{}: {m}; then its secondary {}: {m2}",
                        first.label, second.label
                    ),
                )
            })?;
            first = second;
            detail["path"][k]["secondary"] = json!(true);
            s
        }
    };
    let last = &chain[total - 1];
    let target_label = format!("the target {} ({}:{port})", r.name, r.host);
    let target = match protocol {
        Protocol::Telnet => {
            let login = TelnetLogin {
                username: &account.username,
                secret_kind: &account.secret_kind,
            };
            let (t, extra) =
                telnet_target(app, &login, r, secret, target_label.clone(), info).await?;
            if let Some(obj) = extra.as_object() {
                for (key, v) in obj {
                    detail[key] = v.clone();
                }
            }
            TypedTarget::Telnet(ih::TypedTelnetHop {
                label: t.label,
                host: r.host.clone(),
                port,
                username: t.username,
                password: t.password,
                enable_secret: t.enable_secret,
                script: t.script,
                command: command(last, true),
            })
        }
        _ => {
            if account.secret_kind == "ssh_key" {
                return Err((FailureKind::Protocol, format!("{target_label} is reached by typing at a landing server's shell, so its account must be a password account, not an SSH key.")));
            }
            TypedTarget::Ssh(TypedSshHop {
                password: secret,
                label: target_label,
                resource_id: r.id.clone(),
                resource_name: r.name.clone(),
                host: r.host.clone(),
                port,
                username: account.username.clone(),
                host_key: host_key_policy(app, &r.id, PinKind::Ssh)
                    .await
                    .map_err(|_| {
                        (
                            FailureKind::Protocol,
                            "The gateway's database is unavailable.".to_string(),
                        )
                    })?,
                command: command(last, false),
            })
        }
    };
    // Host keys the typed `ssh` commands saw are pinned like any other.
    let (report, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let (first_report, first_seen) = tokio::sync::oneshot::channel();
    {
        let (app, actor, info) = (app.clone(), actor.clone(), info.clone());
        tokio::spawn(async move {
            while let Some((resource_id, resource_name, obs)) = seen.recv().await {
                let mut hop = info.clone();
                hop.resource_id = resource_id;
                hop.resource_name = resource_name;
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = tx.send(obs);
                record_host_key(app.core.clone(), actor.clone(), hop, PinKind::Ssh, rx).await;
            }
        });
    }
    if let Some((resource_id, resource_name)) = first.pinned {
        let (app, actor, mut hop) = (app.clone(), actor.clone(), info.clone());
        hop.resource_id = resource_id;
        hop.resource_name = resource_name;
        tokio::spawn(record_host_key(
            app.core,
            actor,
            hop,
            PinKind::Ssh,
            first_seen,
        ));
    }
    // A typed landing server whose primary did not answer: the audit says which was used.
    let (failovers, mut failed_over) = tokio::sync::mpsc::unbounded_channel::<ih::Failover>();
    {
        let (app, actor, info) = (app.clone(), actor.clone(), info.clone());
        tokio::spawn(async move {
            while let Some(f) = failed_over.recv().await {
                let detail = json!({ "landing_server": f.landing_server, "secondary": true, "primary": f.primary, "used": f.secondary, "why": f.why });
                audit_hop_failover(&app, &actor, &info, detail).await;
            }
        });
    }
    let adapter = ih::InteractiveChain {
        first: first.hop,
        first_label: first.label,
        hops,
        target,
        report,
        first_report,
        failovers,
    };
    Ok((Box::new(adapter), None, detail, stream))
}

/// A landing server reached in interactive mode: over SSH when its machine has an SSH port,
/// else by Telnet with its machine's logon script.
enum TypedLanding {
    Ssh(Box<gateway::hop_chain::HopEndpoint>, String),
    Telnet(gateway::interactive_hop::TypedTelnetHop),
}

/// The first interactive landing server as the adapter logs in to it.
struct FirstLanding {
    hop: gateway::interactive_hop::FirstHop,
    label: String,
    host: String,
    port: u16,
    /// (resource id, name) whose host-key pin applies; set exactly for SSH.
    pinned: Option<(String, String)>,
}

fn first_hop(hop: TypedLanding) -> FirstLanding {
    use gateway::interactive_hop::FirstHop;
    match hop {
        TypedLanding::Ssh(e, label) => {
            let pinned = Some((e.resource_id.clone(), e.ssh.label.clone()));
            FirstLanding {
                hop: FirstHop::Ssh(e.ssh),
                label,
                host: e.host,
                port: e.port,
                pinned,
            }
        }
        TypedLanding::Telnet(t) => FirstLanding {
            label: t.label.clone(),
            host: t.host.clone(),
            port: t.port,
            hop: FirstHop::Telnet(t),
            pinned: None,
        },
    }
}

/// A stream to `host:port`: directly, or through the tunnel-mode landing servers `tunnels`.
async fn reach_first(
    app: &App,
    actor: &Actor,
    info: &SessionInfo,
    tunnels: &[crate::hop_path::LandingServer],
    host: &str,
    port: u16,
    speaks_first: bool,
) -> Result<gateway::adapter::TargetStream, (FailureKind, String)> {
    use gateway::hop_chain::{answering, FAILOVER_AFTER};
    let stream = if tunnels.is_empty() {
        connect_tcp(host, port, FAILOVER_AFTER).await?
    } else {
        let hops = chain_hops(app, tunnels).await?;
        let opened = gateway::hop_chain::open(hops, host, port).await;
        let used = match &opened {
            Ok((_, used)) => used.as_slice(),
            Err(e) => e.used.as_slice(),
        };
        for u in used {
            record_hop_host_key(app, actor, info, u);
        }
        opened.map(|(s, _)| s).map_err(|e| (e.kind, e.message))?
    };
    if !speaks_first {
        return Ok(stream);
    }
    // An SSH server that accepts the connection but says nothing (no banner) is as good as
    // down. (A Telnet server may wait for the client to negotiate first.)
    answering(stream, FAILOVER_AFTER)
        .await
        .map_err(|why| (FailureKind::TimedOut, why))
}

/// The password of a login typed at a shell (an SSH key cannot be typed).
fn typed_password(
    credential: SshCredential,
    who: &str,
) -> Result<secret::Secret, (FailureKind, String)> {
    match credential {
        SshCredential::Password(p) => Ok(p),
        SshCredential::PrivateKey { .. } => Err((
            FailureKind::Protocol,
            format!("{who} is reached by typing at a landing server's shell, so its login must be a password account, not an SSH key."),
        )),
    }
}

async fn typed_landing(
    app: &App,
    l: &crate::hop_path::LandingServer,
    machine_id: &str,
    i: usize,
    total: usize,
    info: &SessionInfo,
) -> Result<TypedLanding, (FailureKind, String)> {
    let machine = crate::vault::resources::get(app, machine_id)
        .await
        .map_err(|_| (FailureKind::Protocol, format!("Landing server {}: its resource is missing; an administrator must fix its settings.", l.name)))?;
    if machine.ssh_port.is_some() {
        let e = hop_endpoint(app, l, &machine.id).await?;
        let label = format!(
            "hop {} of {total}, landing server {} ({}:{})",
            i + 1,
            l.name,
            e.host,
            e.port
        );
        return Ok(TypedLanding::Ssh(Box::new(e), label));
    }
    let Some(port) = machine.telnet_port else {
        return Err((
            FailureKind::Protocol,
            format!(
                "Landing server {}: its machine has neither an SSH nor a Telnet port.",
                l.name
            ),
        ));
    };
    let label = format!(
        "hop {} of {total}, landing server {} ({}:{port}, Telnet)",
        i + 1,
        l.name,
        machine.host
    );
    let login = accounts::open_landing_login(app, &l.account_id, &machine.id)
        .await
        .map_err(|_| (FailureKind::Protocol, format!("Landing server {}: its login account cannot be opened; an administrator must fix its settings.", l.name)))?;
    let who = TelnetLogin {
        username: &login.username,
        secret_kind: &login.kind,
    };
    let (t, _) = telnet_target(app, &who, &machine, login.secret, label.clone(), info).await?;
    Ok(TypedLanding::Telnet(
        gateway::interactive_hop::TypedTelnetHop {
            label,
            host: machine.host.clone(),
            port: port as u16,
            username: t.username,
            password: t.password,
            enable_secret: t.enable_secret,
            script: t.script,
            command: String::new(),
        },
    ))
}

/// Pins (or flags) a landing server's host key as for a direct target, against the landing
/// server's own resource.
pub(crate) fn record_hop_host_key(
    app: &App,
    actor: &Actor,
    info: &SessionInfo,
    used: &gateway::hop_chain::HopUsed,
) {
    let Some(obs) = used.host_key.clone() else {
        return;
    };
    let mut hop = info.clone();
    hop.resource_id = used.resource_id.clone();
    hop.resource_name = used.resource_name.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(obs);
    tokio::spawn(record_host_key(
        app.core.clone(),
        actor.clone(),
        hop,
        PinKind::Ssh,
        rx,
    ));
}

/// A landing server reached by typing whose primary did not answer (found while the session
/// was being built, after its start was audited).
async fn audit_hop_failover(
    app: &App,
    actor: &Actor,
    info: &SessionInfo,
    detail: serde_json::Value,
) {
    let r = app
        .audit
        .append(crate::audit::Event {
            actor,
            action: "session.hop_failover",
            outcome: crate::audit::Outcome::Ok,
            object_kind: "session",
            object_id: &info.id,
            object_name: &format!("{}@{}", info.account_name, info.resource_name),
            detail,
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "could not audit a landing-server failover");
    }
}

//! The SSH adapter and session broker against a real OpenSSH `sshd` (no HTTP yet): login
//! with vault credentials, terminal I/O, resize, exit status, host-key pinning, and the
//! errors a user sees.

use std::sync::Arc;
use std::time::Duration;

use gateway::broker::{Broker, Delivery, SessionInfo, Subscription};
use gateway::event::{ClientInput, FailureKind, Lifecycle, Protocol, SessionEvent};
use gateway::host_key::{HostKeyObservation, HostKeyPolicy};
use gateway::screen::TerminalScreen;
use gateway::ssh::{SshAdapter, SshCredential, SshTarget};
use gateway::tcp::connect_tcp;
use gateway::Secret;

use crate::sshd_server::sshd;

const PASSWORD: &str = "Ssh-Canary-Passw0rd!";

fn info() -> SessionInfo {
    SessionInfo {
        id: uuid::Uuid::new_v4().to_string(),
        owner_id: "u".into(),
        owner_name: "tester".into(),
        account_id: "a".into(),
        account_name: "acct".into(),
        resource_id: "r".into(),
        resource_name: "sshd".into(),
        protocol: Protocol::Ssh,
        path: vec![],
        client_addr: "127.0.0.1".into(),
        started_at_ms: 0,
        state: "connecting".into(),
        bytes_from_target: 0,
        bytes_to_target: 0,
        recording_id: None,
        participants: Vec::new(),
        control: Default::default(),
    }
}

struct Run {
    session: Arc<gateway::broker::LiveSession>,
    sub: Subscription,
    screen: TerminalScreen,
    host_key: tokio::sync::oneshot::Receiver<HostKeyObservation>,
}

async fn open(
    broker: &Arc<Broker>,
    user: &str,
    credential: SshCredential,
    host_key: HostKeyPolicy,
) -> Run {
    let s = sshd();
    let stream = connect_tcp("127.0.0.1", s.port, Duration::from_secs(5))
        .await
        .expect("tcp");
    let (adapter, host_key) = SshAdapter::new(SshTarget {
        username: user.into(),
        credential,
        host_key,
        label: format!("127.0.0.1:{}", s.port),
        handshake_timeout: Duration::from_secs(10),
    });
    let session = broker.start(info(), Box::new(adapter), stream, 100, 30);
    let (snap, sub) = session.subscribe();
    let mut screen = TerminalScreen::new(snap.cols, snap.rows);
    screen.process(&snap.data);
    Run {
        session,
        sub,
        screen,
        host_key,
    }
}

impl Run {
    /// Feeds events to the local screen until `done` says stop; returns the lifecycle end if
    /// the session ended first.
    async fn until(
        &mut self,
        what: &str,
        done: impl Fn(&TerminalScreen) -> bool,
    ) -> Option<Lifecycle> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if done(&self.screen) {
                return None;
            }
            let next = tokio::time::timeout_at(deadline, self.sub.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for {what}; screen:\n{}\nsshd log:\n{}",
                        self.screen.text(),
                        sshd().log()
                    )
                });
            match next {
                Delivery::Event(SessionEvent::Output(b)) => self.screen.process(&b),
                Delivery::Event(SessionEvent::Resize { cols, rows }) => {
                    self.screen.resize(cols, rows)
                }
                Delivery::Event(SessionEvent::Lifecycle(
                    l @ (Lifecycle::Ended { .. } | Lifecycle::Failed { .. }),
                )) => return Some(l),
                Delivery::Resync(s) => {
                    self.screen = TerminalScreen::new(s.cols, s.rows);
                    self.screen.process(&s.data);
                }
                Delivery::Closed => panic!("session closed while waiting for {what}"),
                _ => {}
            }
        }
    }

    async fn type_line(&self, line: &str) {
        self.session
            .send_input(ClientInput::Data(format!("{line}\r").into_bytes()))
            .await
            .expect("input");
    }

    async fn end(&mut self) -> Lifecycle {
        self.until("the end", |_| false).await.expect("an end")
    }
}

fn has_line(screen: &TerminalScreen, line: &str) -> bool {
    screen.text().lines().any(|l| l.trim_end() == line)
}

#[tokio::test]
async fn password_login_runs_commands_resizes_and_reports_exit_status() {
    let s = sshd();
    let user = s.user(PASSWORD);
    let broker = Arc::new(Broker::default());
    let mut run = open(
        &broker,
        &user,
        SshCredential::Password(Secret::from_str_copy(PASSWORD)),
        HostKeyPolicy::TrustOnFirstUse,
    )
    .await;
    run.type_line("echo $((6*7))").await;
    assert!(run.until("42", |sc| has_line(sc, "42")).await.is_none());
    let obs = (&mut run.host_key).await.expect("host key reported");
    assert_eq!(
        obs,
        HostKeyObservation::TrustedOnFirstUse(s.fingerprint.clone())
    );
    assert_eq!(broker.list()[0].state, "connected");

    run.session
        .send_input(ClientInput::Resize {
            cols: 132,
            rows: 50,
        })
        .await
        .unwrap();
    // The adapter announces the new size once it has sent it to the target; the command is
    // typed after that. (Once, under CI load, `stty size` typed at the same instant printed
    // the old size; the window change and the data leave russh in order, so the cause is
    // not known. The issue note says so.)
    assert!(run
        .until("the resize", |sc| sc.size() == (132, 50))
        .await
        .is_none());
    run.type_line("stty size").await;
    assert!(run
        .until("stty size", |sc| has_line(sc, "50 132"))
        .await
        .is_none());

    run.type_line("exit 3").await;
    match run.end().await {
        Lifecycle::Ended {
            exit_status,
            reason,
        } => {
            assert_eq!(exit_status, Some(3));
            assert!(reason.contains("exited with status 3"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(broker.list().len() <= 1);
}

#[tokio::test]
async fn pinned_key_is_accepted_and_a_changed_key_refused() {
    let s = sshd();
    let user = s.user(PASSWORD);
    let broker = Arc::new(Broker::default());
    let mut ok = open(
        &broker,
        &user,
        SshCredential::Password(Secret::from_str_copy(PASSWORD)),
        HostKeyPolicy::Pinned(s.fingerprint.clone()),
    )
    .await;
    ok.type_line("echo pinned-ok").await;
    assert!(ok
        .until("pinned-ok", |sc| has_line(sc, "pinned-ok"))
        .await
        .is_none());
    assert_eq!(
        (&mut ok.host_key).await.unwrap(),
        HostKeyObservation::Matched(s.fingerprint.clone())
    );

    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string();
    let mut bad = open(
        &broker,
        &user,
        SshCredential::Password(Secret::from_str_copy(PASSWORD)),
        HostKeyPolicy::Pinned(wrong.clone()),
    )
    .await;
    match bad.end().await {
        Lifecycle::Failed {
            kind: FailureKind::HostKeyMismatch,
            message,
        } => {
            assert!(
                message.contains(&wrong) && message.contains(&s.fingerprint),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut unknown = open(
        &broker,
        &user,
        SshCredential::Password(Secret::from_str_copy(PASSWORD)),
        HostKeyPolicy::RequireApproval,
    )
    .await;
    match unknown.end().await {
        Lifecycle::Failed {
            kind: FailureKind::HostKeyUnknown,
            message,
        } => assert!(message.contains(&s.fingerprint), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (&mut unknown.host_key).await.unwrap(),
        HostKeyObservation::AwaitingApproval(s.fingerprint.clone())
    );
}

#[tokio::test]
async fn wrong_password_is_a_clear_authentication_failure() {
    let s = sshd();
    let user = s.user(PASSWORD);
    let broker = Arc::new(Broker::default());
    let mut run = open(
        &broker,
        &user,
        SshCredential::Password(Secret::from_str_copy("not-the-password")),
        HostKeyPolicy::TrustOnFirstUse,
    )
    .await;
    match run.end().await {
        Lifecycle::Failed {
            kind: FailureKind::AuthenticationFailed,
            message,
        } => {
            assert!(
                message.contains(&user) && message.contains("verify or rotate"),
                "{message}"
            );
            assert!(!message.contains("not-the-password"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn private_key_with_passphrase_logs_in_and_a_wrong_passphrase_is_named() {
    let s = sshd();
    let user = s.user("unused-Passw0rd!x");
    let pem = s.key_for(&user, "key passphrase 1");
    let broker = Arc::new(Broker::default());
    let cred = SshCredential::PrivateKey {
        pem: Secret::from_str_copy(&pem),
        passphrase: Some(Secret::from_str_copy("key passphrase 1")),
    };
    let mut run = open(&broker, &user, cred, HostKeyPolicy::TrustOnFirstUse).await;
    run.type_line("echo key-login-$((2+3))").await;
    assert!(run
        .until("key login", |sc| has_line(sc, "key-login-5"))
        .await
        .is_none());

    let cred = SshCredential::PrivateKey {
        pem: Secret::from_str_copy(&pem),
        passphrase: Some(Secret::from_str_copy("wrong")),
    };
    let mut bad = open(&broker, &user, cred, HostKeyPolicy::TrustOnFirstUse).await;
    match bad.end().await {
        Lifecycle::Failed {
            kind: FailureKind::AuthenticationFailed,
            message,
        } => assert!(message.contains("passphrase"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unreachable_target_names_host_and_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    match connect_tcp("127.0.0.1", port, Duration::from_secs(3)).await {
        Err((FailureKind::Unreachable, msg)) => {
            assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

//! Why: the handles the domain needs and nothing more: the database, the vault's keys, the
//! audit log, the configuration, the login throttle, and the signal that access changed.
//! The vault, identity, landing-server resolution and per-resource settings take a `Core`,
//! never the whole `App`, so they cannot reach up into live sessions, recordings or
//! rotation; `App` (the composition root) derefs to its `Core`, so a handler passes `&app`.
//!
//! "Access changed" is how the vault asks for live sessions to be re-checked without knowing
//! about sessions: the launcher registers a watcher at start-up; the vault awaits it after a
//! share, an account or a group changed (so a revoked user's session has ended when the
//! request that revoked it returns).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use crate::audit::Audit;
use crate::config::Config;
use crate::db::Database;
use crate::keys::Crypto;
use crate::throttle::LoginLimiter;

#[derive(Clone)]
pub struct Core {
    pub db: Database,
    pub crypto: Arc<Crypto>,
    pub audit: Audit,
    pub config: Arc<Config>,
    pub limiter: Arc<LoginLimiter>,
    pub access: AccessSignal,
}

/// What is told that access changed (the launcher: it ends sessions that lost their access).
pub trait AccessWatcher: Send + Sync + 'static {
    fn access_changed<'a>(
        &'a self,
        core: &'a Core,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// The one watcher of access changes, registered once at start-up.
#[derive(Clone, Default)]
pub struct AccessSignal(Arc<OnceLock<Arc<dyn AccessWatcher>>>);

impl AccessSignal {
    /// Registers the watcher; a second registration is ignored (there is one launcher).
    pub fn watch(&self, watcher: Arc<dyn AccessWatcher>) {
        let _ = self.0.set(watcher);
    }

    /// Tells the watcher and waits until it has acted. Without one (a CLI command, a
    /// benchmark) there is nothing live to re-check.
    pub async fn changed(&self, core: &Core) {
        if let Some(w) = self.0.get() {
            w.access_changed(core).await;
        }
    }
}

//! Why: the state every request handler, CLI command and benchmark shares, built once at
//! start-up. Cheap to clone (everything inside is shared).

use std::sync::Arc;

use crate::audit::Audit;
use crate::config::Config;
use crate::db::Database;
use crate::identity::sessions::LoginLimiter;
use crate::sessions::SessionDesk;
use crate::vault::keys::Crypto;
use gateway::broker::Broker;

#[derive(Clone)]
pub struct App {
    pub db: Database,
    pub crypto: Arc<Crypto>,
    pub audit: Audit,
    pub config: Arc<Config>,
    pub limiter: Arc<LoginLimiter>,
    /// Every live session (gateway crate) and the server's bookkeeping about them.
    pub broker: Arc<Broker>,
    pub desk: Arc<SessionDesk>,
    /// The recording store and the manifest signing key.
    pub recordings: Arc<crate::recordings::Recordings>,
    /// The rotation engine's queue state (jobs themselves are rows).
    pub rotation: Arc<crate::rotation::Engine>,
}

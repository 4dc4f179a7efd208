//! Why: the composition root every request handler, CLI command and benchmark shares, built
//! once at start-up: the `Core` the domain works with, and the services above it (live
//! sessions, recordings, rotation). Cheap to clone (everything inside is shared). Derefs to
//! `Core`, so code that needs only the core takes `&Core` and is passed `&app`.

use std::sync::Arc;

use crate::core::Core;
use crate::sessions::SessionDesk;
use gateway::broker::Broker;

#[derive(Clone)]
pub struct App {
    pub core: Core,
    /// Every live session (gateway crate) and the server's bookkeeping about them.
    pub broker: Arc<Broker>,
    pub desk: Arc<SessionDesk>,
    /// Users whose access was revoked: their watching and joined sockets close.
    pub revocations: Arc<crate::revocation::Revocations>,
    /// The recording store and the manifest signing key.
    pub recordings: Arc<crate::recordings::Recordings>,
    /// The rotation engine's queue state (jobs themselves are rows).
    pub rotation: Arc<crate::rotation::Engine>,
}

impl std::ops::Deref for App {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

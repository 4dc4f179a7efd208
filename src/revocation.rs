//! Why: taking a user's access away must take *all* of it at once. A deleted, locked or
//! demoted user, or one whose password or second factor an administrator reset, could
//! otherwise keep typing in a live session, keep watching someone else's, or keep calling
//! the API with a token made before. `revoke_user_access` is the one path every such change
//! calls: it ends the user's web logins and API tokens, ends the gateway sessions they own,
//! and closes the sockets through which they watch or join other people's sessions (those
//! hear it through `SessionDesk::revoked`). It is audited with what it ended.

use serde_json::json;
use tokio::sync::broadcast;

use crate::app::App;
use crate::error::ApiResult;
use crate::identity::Principal;

/// A user whose access was revoked, and why (shown to each socket that closes).
#[derive(Clone, Debug)]
pub struct Revoked {
    pub user_id: String,
    pub reason: String,
}

/// The channel watching and joined sockets listen on. A socket that falls behind it closes
/// too (it cannot tell whether its own user was among those it missed): a reconnect is
/// authorized afresh.
pub struct Revocations(broadcast::Sender<Revoked>);

impl Default for Revocations {
    fn default() -> Self {
        Revocations(broadcast::channel(256).0)
    }
}

impl Revocations {
    pub fn subscribe(&self) -> broadcast::Receiver<Revoked> {
        self.0.subscribe()
    }

    fn announce(&self, r: Revoked) {
        // No receiver: nobody watches or joins a session right now.
        let _ = self.0.send(r);
    }
}

/// Resolves when `user_id`'s access is revoked (or when revocations were missed); with the
/// reason to show. Never resolves once the channel is gone.
pub async fn revoked(rx: &mut broadcast::Receiver<Revoked>, user_id: &str) -> String {
    loop {
        match rx.recv().await {
            Ok(r) if r.user_id == user_id => return r.reason,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                return "Access changed while this view was busy; open it again.".into()
            }
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// What to keep: the web login from which a user changes their own password stays.
#[derive(Clone, Copy)]
pub enum Keep<'a> {
    Nothing,
    WebLogin(&'a str),
}

/// What `revoke_user_access` ended.
#[derive(Debug, Default, serde::Serialize)]
pub struct Ended {
    pub web_logins: u64,
    pub api_tokens: u64,
    pub sessions: usize,
}

/// Ends everything `user_id` holds (see the module comment), except what `keep` names, and
/// audits it as `user.access.revoke` by `by`. `reason` is what the user's open sessions and
/// sockets are told.
pub async fn revoke_user_access(
    app: &App,
    by: &Principal,
    user_id: &str,
    user_name: &str,
    reason: &str,
    keep: Keep<'_>,
) -> ApiResult<Ended> {
    let mut tx = app.db.begin_write().await?;
    let web_logins = match keep {
        Keep::Nothing => sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(tx.conn())
            .await?
            .rows_affected(),
        Keep::WebLogin(id) => {
            sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND id <> $2")
                .bind(user_id)
                .bind(id)
                .execute(tx.conn())
                .await?
                .rows_affected()
        }
    };
    let api_tokens = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    tx.commit().await?;
    let kept = match keep {
        Keep::Nothing => None,
        Keep::WebLogin(id) => Some(id.to_string()),
    };
    let owner = user_id.to_string();
    let sessions = crate::sessions::terminate_where(app, reason, move |info, web| {
        info.owner_id == owner && (kept.is_none() || web != kept.as_deref())
    })
    .await;
    app.revocations.announce(Revoked {
        user_id: user_id.into(),
        reason: reason.into(),
    });
    let ended = Ended {
        web_logins,
        api_tokens,
        sessions,
    };
    let mut tx = app.db.begin_write().await?;
    crate::audited::audit(
        app,
        &mut tx,
        by,
        "user.access.revoke",
        user_id,
        user_name,
        json!({ "reason": reason, "ended": ended }),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

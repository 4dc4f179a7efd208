//! Why: privileged sessions should not stay open forever or sit unattended. Each session has
//! an idle limit (nobody typed) and a maximum duration, from the resource's policy or the
//! global settings. A watchdog warns everyone in the session shortly before a limit (one
//! minute, or half the limit when it is shorter) and then ends the session with the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::broker::LiveSession;
use gateway::event::{ClientInput, Lifecycle};

use crate::app::App;

/// The limits that apply to a session. `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub idle: Option<Duration>,
    pub max: Option<Duration>,
}

/// The resource's limits: its own where set (0 = none), else the global settings.
pub async fn for_resource(app: &App, resource_id: &str) -> Result<Limits, sqlx::Error> {
    let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT idle_limit_s, max_duration_s FROM resource_session_limits WHERE resource_id = $1",
    )
    .bind(resource_id)
    .fetch_optional(&app.db.pool)
    .await?;
    let pick = |own: Option<i64>, global: Option<Duration>| match own {
        Some(0) => None,
        Some(s) if s > 0 => Some(Duration::from_secs(s as u64)),
        _ => global,
    };
    let (idle, max) = row.unwrap_or((None, None));
    Ok(Limits {
        idle: pick(idle, app.config.session_idle_limit),
        max: pick(max, app.config.session_max_duration),
    })
}

/// How long before a limit the warning comes.
pub fn warn_before(limit: Duration) -> Duration {
    (limit / 2).min(Duration::from_secs(60))
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Watches one session until it ends, warning before and enforcing its limits.
pub fn spawn_watchdog(session: Arc<LiveSession>, limits: Limits) {
    if limits == Limits::default() {
        return;
    }
    tokio::spawn(async move {
        let started = Instant::now();
        let (mut warned_idle, mut warned_max) = (false, false);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if matches!(
                session.lifecycle(),
                Some(Lifecycle::Ended { .. } | Lifecycle::Failed { .. })
            ) {
                return;
            }
            if let Some(max) = limits.max {
                let elapsed = started.elapsed();
                if elapsed >= max {
                    let reason = format!(
                        "The session reached its maximum duration of {} and was ended.",
                        human(max)
                    );
                    let _ = session.send_input(ClientInput::Terminate { reason }).await;
                    return;
                }
                if !warned_max && elapsed + warn_before(max) >= max {
                    warned_max = true;
                    session.apply_marker(&format!(
                        "Warning: this session reaches its maximum duration of {} in {}; it will then be ended.",
                        human(max),
                        human(max.saturating_sub(elapsed))
                    ));
                }
            }
            if let Some(idle_limit) = limits.idle {
                let idle = session.idle_for();
                if idle >= idle_limit {
                    let reason = format!(
                        "Nobody typed in this session for {}; it was ended.",
                        human(idle_limit)
                    );
                    let _ = session.send_input(ClientInput::Terminate { reason }).await;
                    return;
                }
                if idle + warn_before(idle_limit) >= idle_limit {
                    if !warned_idle {
                        warned_idle = true;
                        session.apply_marker(&format!(
                            "Warning: this session has been idle; it will be ended in {} unless someone types.",
                            human(idle_limit.saturating_sub(idle))
                        ));
                    }
                } else {
                    warned_idle = false;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_comes_a_minute_before_or_halfway_for_short_limits() {
        assert_eq!(
            warn_before(Duration::from_secs(1800)),
            Duration::from_secs(60)
        );
        assert_eq!(warn_before(Duration::from_secs(4)), Duration::from_secs(2));
        assert_eq!(human(Duration::from_secs(7200)), "2 h");
        assert_eq!(human(Duration::from_secs(90)), "90 s");
        assert_eq!(human(Duration::from_secs(1800)), "30 min");
    }
}

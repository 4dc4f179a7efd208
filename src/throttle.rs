//! Why: a per-address token bucket for login attempts, kept with the other handles every
//! layer may hold (`Core`), so the identity code that logs users in needs nothing above it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-address throttle for login attempts (successful or not): a token bucket.
pub struct LoginLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    per_minute: f64,
}

impl LoginLimiter {
    pub fn new(per_minute: u32) -> Self {
        LoginLimiter {
            buckets: Mutex::new(HashMap::new()),
            per_minute: per_minute as f64,
        }
    }

    pub fn allow(&self, addr: &str) -> bool {
        let Ok(mut map) = self.buckets.lock() else {
            return true;
        };
        let now = Instant::now();
        if map.len() > 10_000 {
            map.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(120));
        }
        let (tokens, last) = map
            .entry(addr.to_string())
            .or_insert((self.per_minute, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_minute / 60.0)
            .min(self.per_minute);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

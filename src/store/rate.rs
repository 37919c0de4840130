//! Rate limit counters kept in the database, so that every node of many counts against one
//! limit. Only PostgreSQL keeps them: SQLite serves one node, whose counters live in memory
//! (`flow::limits`).

use async_trait::async_trait;

use super::{StoreError, StoreResult};

/// One fixed window of one rate limit key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateWindow {
    /// SHA-256 of the policy name and the key (an address or a client id): never the key.
    pub key_hash: [u8; 32],
    /// Unix seconds.
    pub window_start: i64,
    /// The window's end; the counter is swept after it.
    pub expires_at: i64,
}

#[async_trait]
pub trait RateCounterStore: Send + Sync {
    /// Whether this store keeps counters shared between processes.
    fn shares_rate_counters(&self) -> bool {
        false
    }

    /// Adds one hit to each window (a new window starts at zero) and returns each one's count
    /// including this hit, in the order given. Windows must have distinct keys.
    async fn add_rate_hits(&self, _windows: &[RateWindow]) -> StoreResult<Vec<u32>> {
        Err(StoreError::Internal(
            "this store keeps no shared rate counters".into(),
        ))
    }

    /// The count of one window, without adding to it.
    async fn read_rate_hits(&self, _window: &RateWindow) -> StoreResult<u32> {
        Err(StoreError::Internal(
            "this store keeps no shared rate counters".into(),
        ))
    }
}

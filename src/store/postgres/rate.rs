//! [`RateCounterStore`] on PostgreSQL: one upsert per limited request, whatever the number of
//! policies it counts against.

use async_trait::async_trait;
use sqlx::Row;

use super::PostgresStore;
use crate::store::rate::{RateCounterStore, RateWindow};
use crate::store::{StoreError, StoreResult};

/// Every window of the request in one statement. Rows are locked in the order of their keys,
/// so two requests counting against the same two windows never wait on each other in a cycle.
const ADD_HITS: &str = "INSERT INTO rate_counters (key_hash, window_start, expires_at, hits) \
     SELECT k, w, e, 1 FROM unnest($1::bytea[], $2::bigint[], $3::bigint[]) AS t(k, w, e) ORDER BY k \
     ON CONFLICT (key_hash, window_start) DO UPDATE SET hits = rate_counters.hits + 1 \
     RETURNING key_hash, hits";

const READ_HITS: &str = "SELECT hits FROM rate_counters WHERE key_hash = $1 AND window_start = $2";

#[async_trait]
impl RateCounterStore for PostgresStore {
    fn shares_rate_counters(&self) -> bool {
        true
    }

    async fn add_rate_hits(&self, windows: &[RateWindow]) -> StoreResult<Vec<u32>> {
        let keys: Vec<&[u8]> = windows.iter().map(|w| &w.key_hash[..]).collect();
        let starts: Vec<i64> = windows.iter().map(|w| w.window_start).collect();
        let ends: Vec<i64> = windows.iter().map(|w| w.expires_at).collect();
        let rows = sqlx::query(ADD_HITS)
            .bind(&keys)
            .bind(&starts)
            .bind(&ends)
            .fetch_all(&self.pool)
            .await?;
        let mut counted = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: Vec<u8> = row.try_get("key_hash")?;
            let hits: i32 = row.try_get("hits")?;
            counted.push((key, u32::try_from(hits).unwrap_or(0)));
        }
        windows
            .iter()
            .map(|w| {
                counted
                    .iter()
                    .find(|(key, _)| key[..] == w.key_hash[..])
                    .map(|(_, hits)| *hits)
                    .ok_or_else(|| StoreError::Internal("a rate counter was not returned".into()))
            })
            .collect()
    }

    async fn read_rate_hits(&self, window: &RateWindow) -> StoreResult<u32> {
        let hits: Option<i32> = sqlx::query_scalar(READ_HITS)
            .bind(&window.key_hash[..])
            .bind(window.window_start)
            .fetch_optional(&self.pool)
            .await?;
        Ok(hits.map_or(0, |h| u32::try_from(h).unwrap_or(0)))
    }
}

//! [`RateCounterStore`] on PostgreSQL. The hits of every request waiting at the moment are one
//! upsert (a [`Job`] of `group.rs`): a request counting against two windows and sixty requests
//! counting against the same one cost PostgreSQL the same single statement.
//!
//! Within a group the hits on one window are added at once, and each request is given the
//! count it would have seen alone, in the order the requests were taken: the first of three
//! hits on a window at 10 sees 11, the last 13. Nothing is answered before the statement that
//! counted it has committed, so every node counts against the same totals as before.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{PgPool, Row};

use super::PostgresStore;
use super::group::{Grouper, Job, Pending};
use crate::store::rate::{RateCounterStore, RateWindow};
use crate::store::{StoreError, StoreResult};

/// Every window of the group in one statement, each with the hits it gets. Rows are locked in
/// the order of their keys, so two groups counting against the same windows (on two nodes)
/// never wait on each other in a cycle.
const ADD_HITS: &str = "INSERT INTO rate_counters (key_hash, window_start, expires_at, hits) \
     SELECT k, w, e, n FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::integer[]) AS t(k, w, e, n) ORDER BY k, w \
     ON CONFLICT (key_hash, window_start) DO UPDATE SET hits = rate_counters.hits + EXCLUDED.hits \
     RETURNING key_hash, window_start, hits";

const READ_HITS: &str = "SELECT hits FROM rate_counters WHERE key_hash = $1 AND window_start = $2";

/// Most requests one upsert counts.
const MOST_COUNTED: usize = 512;

/// One request's hits: one on each of its windows (distinct keys).
pub(super) struct Hits(Vec<RateWindow>);

/// The task that counts hits, one group at a time.
pub(super) type HitCounter = Grouper<Hits>;

/// A window of a group: its key and start.
type WindowId = ([u8; 32], i64);

impl Job for Hits {
    type Answer = Vec<u32>;
    const MOST: usize = MOST_COUNTED;

    async fn run(pool: PgPool, group: Vec<Pending<Hits>>) -> bool {
        // Each window once, with the hits the group adds to it and the latest end asked.
        let mut added: BTreeMap<WindowId, (i64, i32)> = BTreeMap::new();
        for request in &group {
            for w in &request.job.0 {
                let entry = added
                    .entry((w.key_hash, w.window_start))
                    .or_insert((w.expires_at, 0));
                entry.0 = entry.0.max(w.expires_at);
                entry.1 = entry.1.saturating_add(1);
            }
        }
        match add(&pool, &added).await {
            Ok(mut counted) => {
                for request in group {
                    let answer = request
                        .job
                        .0
                        .iter()
                        .map(|w| {
                            let next = counted.get_mut(&(w.key_hash, w.window_start)).ok_or_else(
                                || StoreError::Internal("a rate counter was not returned".into()),
                            )?;
                            *next = next.saturating_add(1);
                            Ok(*next)
                        })
                        .collect();
                    request.answer(answer);
                }
                true
            }
            Err(error) => {
                for request in group {
                    request.answer(Err(error.clone()));
                }
                false
            }
        }
    }
}

/// Adds the hits and returns, for each window, its count before this group's hits.
async fn add(
    pool: &PgPool,
    added: &BTreeMap<WindowId, (i64, i32)>,
) -> StoreResult<BTreeMap<WindowId, u32>> {
    let keys: Vec<&[u8]> = added.keys().map(|(k, _)| &k[..]).collect();
    let starts: Vec<i64> = added.keys().map(|(_, w)| *w).collect();
    let ends: Vec<i64> = added.values().map(|(e, _)| *e).collect();
    let hits: Vec<i32> = added.values().map(|(_, n)| *n).collect();
    let rows = sqlx::query(ADD_HITS)
        .bind(&keys)
        .bind(&starts)
        .bind(&ends)
        .bind(&hits)
        .fetch_all(pool)
        .await?;
    let mut before = BTreeMap::new();
    for row in &rows {
        let key: Vec<u8> = row.try_get("key_hash")?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| StoreError::Internal("a rate counter's key is not 32 bytes".into()))?;
        let start: i64 = row.try_get("window_start")?;
        let total: i32 = row.try_get("hits")?;
        let here = added.get(&(key, start)).map_or(0, |(_, n)| *n);
        before.insert((key, start), u32::try_from(total - here).unwrap_or(0));
    }
    Ok(before)
}

#[async_trait]
impl RateCounterStore for PostgresStore {
    fn shares_rate_counters(&self) -> bool {
        true
    }

    async fn add_rate_hits(&self, windows: &[RateWindow]) -> StoreResult<Vec<u32>> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        self.hits.run(Hits(windows.to_vec())).await
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

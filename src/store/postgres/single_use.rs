//! What may be used once, for every request waiting at the moment in one statement (a [`Job`]
//! of `group.rs`): authorization codes redeemed, and Telegram proofs consumed.
//!
//! - The same code or proof twice in one group goes to the statement once: the first request
//!   of the group that names it is answered as the statement found it, any later one as
//!   already used, as a second statement of its own would have been.
//! - Keys go to the statement in order, so two nodes' groups meet their rows in the same order.
//! - A group that fails for any reason other than a lost database runs each request again
//!   alone, so that only the culprit hears of its error.

use std::collections::BTreeMap;

use sqlx::{PgPool, Row};

use super::group::{Grouper, Job, Pending, Repeats, run_keyed};
use super::{rows, text};
use crate::store::{CodeRecord, StoreResult};

/// As `sql::REDEEM_CODE`, for many: a code is taken if its grant is live and the client's. The
/// codes are found by `= ANY` on their key, so that PostgreSQL reads them and their grants by
/// index whatever it knows of the tables (a join on the array alone was once planned as a
/// scan of every grant, on tables not yet analysed).
const REDEEM_CODES: &str = "UPDATE codes c SET used_at = v.now \
     FROM unnest($1::bytea[], $2::text[], $3::bigint[]) AS v(h, client, now), grants g \
     WHERE c.code_hash = ANY($1::bytea[]) AND c.code_hash = v.h AND c.used_at IS NULL \
     AND g.id = c.grant_id AND g.client_id = v.client AND g.revoked_at IS NULL \
     RETURNING c.code_hash, c.grant_id, c.redirect_uri, c.code_challenge, c.expires_at, v.client";
/// As `sql::CONSUME_PROOF`, for many.
const CONSUME_PROOFS: &str = "INSERT INTO used_proofs (proof_hash, expires_at) \
     SELECT * FROM unnest($1::bytea[], $2::bigint[]) \
     ON CONFLICT (proof_hash) DO NOTHING RETURNING proof_hash";

/// Most requests one statement takes.
const MOST_USES: usize = 256;

/// A code to redeem for a client: the code if this request took it.
pub(super) struct Redeem {
    pub(super) code_hash: Vec<u8>,
    pub(super) client_id: String,
    pub(super) now: i64,
}

/// A proof to consume: `true` if this request was the first to present it.
pub(super) struct Consume {
    pub(super) proof_hash: Vec<u8>,
    pub(super) expires_at: i64,
}

pub(super) type Redemptions = Grouper<Redeem>;
pub(super) type Consumptions = Grouper<Consume>;

impl Job for Redeem {
    type Answer = Option<CodeRecord>;
    const MOST: usize = MOST_USES;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let key = |r: &Redeem| (r.code_hash.clone(), text(&r.client_id).into_owned());
        run_keyed(&pool, group, key, Repeats::FindItUsed, redeem).await
    }
}

impl Job for Consume {
    type Answer = bool;
    const MOST: usize = MOST_USES;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let key = |c: &Consume| c.proof_hash.clone();
        run_keyed(&pool, group, key, Repeats::FindItUsed, consume).await
    }
}

/// Redeems each (code, client) of `uses` once: the codes taken, by (code, client).
async fn redeem(
    pool: &PgPool,
    uses: &BTreeMap<(Vec<u8>, String), &Redeem>,
) -> StoreResult<BTreeMap<(Vec<u8>, String), Option<CodeRecord>>> {
    let hashes: Vec<&[u8]> = uses.keys().map(|(h, _)| &h[..]).collect();
    let clients: Vec<&str> = uses.keys().map(|(_, c)| c.as_str()).collect();
    let nows: Vec<i64> = uses.values().map(|r| r.now).collect();
    let taken = sqlx::query(REDEEM_CODES)
        .bind(&hashes)
        .bind(&clients)
        .bind(&nows)
        .fetch_all(pool)
        .await?;
    let mut answers: BTreeMap<_, _> = uses.keys().map(|k| (k.clone(), None)).collect();
    for row in &taken {
        let code = rows::code(row)?;
        let client: String = row.try_get("client")?;
        answers.insert((code.code_hash.clone(), client), Some(code));
    }
    Ok(answers)
}

/// Consumes each proof of `uses` once: whether each was new.
async fn consume(
    pool: &PgPool,
    uses: &BTreeMap<Vec<u8>, &Consume>,
) -> StoreResult<BTreeMap<Vec<u8>, bool>> {
    let hashes: Vec<&[u8]> = uses.keys().map(|h| &h[..]).collect();
    let ends: Vec<i64> = uses.values().map(|c| c.expires_at).collect();
    let new: Vec<Vec<u8>> = sqlx::query_scalar(CONSUME_PROOFS)
        .bind(&hashes)
        .bind(&ends)
        .fetch_all(pool)
        .await?;
    let mut answers: BTreeMap<_, _> = uses.keys().map(|k| (k.clone(), false)).collect();
    for hash in new {
        answers.insert(hash, true);
    }
    Ok(answers)
}

//! [`AdminKeyStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, named_params};

use super::SqliteStore;
use crate::store::StoreResult;
use crate::store::admin_keys::*;

type Row = (
    String,
    String,
    String,
    Vec<u8>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn to_record(r: Row) -> StoreResult<AdminKeyRecord> {
    record(r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8)
}

#[async_trait]
impl AdminKeyStore for SqliteStore {
    async fn create_admin_key(&self, key: &AdminKeyRecord) -> StoreResult<()> {
        let k = key.clone();
        let allow = allow_ips_json(&k.allow_ips);
        self.db
            .write(move |c| {
                c.prepare_cached(INSERT_ADMIN_KEY)?.execute(named_params! {
                    "$1": k.id, "$2": k.name, "$3": k.scope.as_str(), "$4": k.key_hash,
                    "$5": allow, "$6": k.created_at, "$7": k.expires_at,
                })?;
                Ok(())
            })
            .await
    }

    async fn admin_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<AdminKeyRecord>> {
        let found = self.db.read(|c| {
            Ok(c.prepare_cached(&admin_key_by_hash_sql())?
                .query_row(named_params! {"$1": key_hash}, row)
                .optional()?)
        })?;
        found.map(to_record).transpose()
    }

    async fn list_admin_keys(&self) -> StoreResult<Vec<AdminKeyRecord>> {
        let found = self.db.read(|c| {
            Ok(c.prepare_cached(&list_admin_keys_sql())?
                .query_map([], row)?
                .collect::<Result<Vec<_>, _>>()?)
        })?;
        found.into_iter().map(to_record).collect()
    }

    async fn revoke_admin_key(&self, id: &str, now: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(REVOKE_ADMIN_KEY)?
                    .execute(named_params! {"$1": id, "$2": now})?
                    == 1)
            })
            .await
    }

    async fn touch_admin_key(&self, id: &str, now: i64) -> StoreResult<()> {
        let id = id.to_owned();
        self.db
            .write(move |c| {
                c.prepare_cached(TOUCH_ADMIN_KEY)?
                    .execute(named_params! {"$1": id, "$2": now})?;
                Ok(())
            })
            .await
    }

    async fn create_admin_session(&self, s: &AdminSessionRecord) -> StoreResult<()> {
        let s = s.clone();
        self.db
            .write(move |c| {
                c.prepare_cached(INSERT_ADMIN_SESSION)?
                    .execute(named_params! {
                        "$1": s.id_hash, "$2": s.telegram_id, "$3": s.created_at,
                        "$4": s.last_seen_at, "$5": s.expires_at,
                    })?;
                Ok(())
            })
            .await
    }

    async fn touch_admin_session(
        &self,
        id_hash: &[u8],
        now: i64,
        idle_secs: i64,
    ) -> StoreResult<Option<AdminSessionRecord>> {
        let id_hash = id_hash.to_vec();
        self.db
            .write(move |c| {
                let touched = c
                    .prepare_cached(TOUCH_ADMIN_SESSION)?
                    .execute(named_params! {"$1": id_hash, "$2": now, "$3": idle_secs})?;
                if touched != 1 {
                    return Ok(None);
                }
                Ok(c.prepare_cached(ADMIN_SESSION_BY_HASH)?
                    .query_row(named_params! {"$1": id_hash}, |r| {
                        Ok(AdminSessionRecord {
                            id_hash: id_hash.clone(),
                            telegram_id: r.get(0)?,
                            created_at: r.get(1)?,
                            last_seen_at: r.get(2)?,
                            expires_at: r.get(3)?,
                        })
                    })
                    .optional()?)
            })
            .await
    }

    async fn delete_admin_session(&self, id_hash: &[u8]) -> StoreResult<()> {
        let id_hash = id_hash.to_vec();
        self.db
            .write(move |c| {
                c.prepare_cached(DELETE_ADMIN_SESSION)?
                    .execute(named_params! {"$1": id_hash})?;
                Ok(())
            })
            .await
    }
}

mod users {
    use async_trait::async_trait;
    use rusqlite::{OptionalExtension, named_params};

    use super::SqliteStore;
    use crate::store::StoreResult;
    use crate::store::admin_users::*;

    fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserSummary> {
        Ok(UserSummary {
            telegram_id: r.get(0)?,
            first_name: r.get(1)?,
            last_name: r.get(2)?,
            username: r.get(3)?,
            created_at: r.get(4)?,
            updated_at: r.get(5)?,
            blocked_at: r.get(6)?,
        })
    }

    fn revoke_all(c: &rusqlite::Connection, id: i64, now: i64) -> rusqlite::Result<u64> {
        let mut n = 0;
        for statement in REVOKE_ALL_TIMED {
            n += c
                .prepare_cached(statement)?
                .execute(named_params! {"$1": id, "$2": now})? as u64;
        }
        for statement in REVOKE_ALL_UNTIMED {
            n += c
                .prepare_cached(statement)?
                .execute(named_params! {"$1": id})? as u64;
        }
        Ok(n)
    }

    #[async_trait]
    impl AdminUserStore for SqliteStore {
        async fn list_users(&self, q: &UserQuery) -> StoreResult<Vec<UserSummary>> {
            self.db.read(|c| {
                Ok(c.prepare_cached(&list_users_sql())?
                    .query_map(
                        named_params! {
                            "$1": q.telegram_id, "$2": q.username,
                            "$3": q.after.unwrap_or(i64::MIN), "$4": q.limit,
                        },
                        summary,
                    )?
                    .collect::<Result<Vec<_>, _>>()?)
            })
        }

        async fn user_summary(&self, id: i64) -> StoreResult<Option<UserSummary>> {
            self.db.read(|c| {
                Ok(c.prepare_cached(&user_summary_sql())?
                    .query_row(named_params! {"$1": id}, summary)
                    .optional()?)
            })
        }

        async fn block_user(&self, id: i64, now: i64) -> StoreResult<bool> {
            self.db
                .write(move |c| {
                    let n = c
                        .prepare_cached(BLOCK_USER)?
                        .execute(named_params! {"$1": id, "$2": now})?;
                    if n == 1 {
                        revoke_all(c, id, now)?;
                    }
                    Ok(n == 1)
                })
                .await
        }

        async fn unblock_user(&self, id: i64) -> StoreResult<bool> {
            self.db
                .write(move |c| {
                    Ok(c.prepare_cached(UNBLOCK_USER)?
                        .execute(named_params! {"$1": id})?
                        == 1)
                })
                .await
        }

        async fn revoke_user_everything(&self, id: i64, now: i64) -> StoreResult<u64> {
            self.db.write(move |c| Ok(revoke_all(c, id, now)?)).await
        }
    }
}

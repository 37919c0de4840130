//! [`AdminKeyStore`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;

use super::{PostgresStore, text};
use crate::store::StoreResult;
use crate::store::admin_keys::*;

fn to_record(r: &sqlx::postgres::PgRow) -> StoreResult<AdminKeyRecord> {
    record(
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get(7)?,
        r.try_get(8)?,
    )
}

#[async_trait]
impl AdminKeyStore for PostgresStore {
    async fn create_admin_key(&self, k: &AdminKeyRecord) -> StoreResult<()> {
        sqlx::query(INSERT_ADMIN_KEY)
            .bind(text(&k.id))
            .bind(text(&k.name))
            .bind(k.scope.as_str())
            .bind(&k.key_hash)
            .bind(allow_ips_json(&k.allow_ips))
            .bind(k.created_at)
            .bind(k.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn admin_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<AdminKeyRecord>> {
        let found = sqlx::query(&admin_key_by_hash_sql())
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        found.as_ref().map(to_record).transpose()
    }

    async fn list_admin_keys(&self) -> StoreResult<Vec<AdminKeyRecord>> {
        let found = sqlx::query(&list_admin_keys_sql())
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(to_record).collect()
    }

    async fn revoke_admin_key(&self, id: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(REVOKE_ADMIN_KEY)
            .bind(text(id))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_admin_key(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query(TOUCH_ADMIN_KEY)
            .bind(text(id))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_admin_session(&self, s: &AdminSessionRecord) -> StoreResult<()> {
        sqlx::query(INSERT_ADMIN_SESSION)
            .bind(&s.id_hash)
            .bind(s.telegram_id)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn touch_admin_session(
        &self,
        id_hash: &[u8],
        now: i64,
        idle_secs: i64,
    ) -> StoreResult<Option<AdminSessionRecord>> {
        // One round trip: the update says what it kept.
        let found = sqlx::query(&format!(
            "{TOUCH_ADMIN_SESSION} RETURNING telegram_id, created_at, last_seen_at, expires_at"
        ))
        .bind(id_hash)
        .bind(now)
        .bind(idle_secs)
        .fetch_optional(&self.pool)
        .await?;
        found
            .map(|r| {
                Ok(AdminSessionRecord {
                    id_hash: id_hash.to_vec(),
                    telegram_id: r.try_get(0)?,
                    created_at: r.try_get(1)?,
                    last_seen_at: r.try_get(2)?,
                    expires_at: r.try_get(3)?,
                })
            })
            .transpose()
    }

    async fn delete_admin_session(&self, id_hash: &[u8]) -> StoreResult<()> {
        sqlx::query(DELETE_ADMIN_SESSION)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

mod users {
    use async_trait::async_trait;
    use sqlx::Row;

    use super::super::{PostgresStore, opt_text};
    use crate::store::StoreResult;
    use crate::store::admin_users::*;

    fn summary(r: &sqlx::postgres::PgRow) -> Result<UserSummary, sqlx::Error> {
        Ok(UserSummary {
            telegram_id: r.try_get(0)?,
            first_name: r.try_get(1)?,
            last_name: r.try_get(2)?,
            username: r.try_get(3)?,
            created_at: r.try_get(4)?,
            updated_at: r.try_get(5)?,
            blocked_at: r.try_get(6)?,
        })
    }

    async fn revoke_all(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        id: i64,
        now: i64,
    ) -> Result<u64, sqlx::Error> {
        let mut n = 0;
        for statement in REVOKE_ALL_TIMED {
            n += sqlx::query(statement)
                .bind(id)
                .bind(now)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        }
        for statement in REVOKE_ALL_UNTIMED {
            n += sqlx::query(statement)
                .bind(id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    #[async_trait]
    impl AdminUserStore for PostgresStore {
        async fn list_users(&self, q: &UserQuery) -> StoreResult<Vec<UserSummary>> {
            let found = sqlx::query(&list_users_sql())
                .bind(q.telegram_id)
                .bind(opt_text(&q.username))
                .bind(q.after.unwrap_or(i64::MIN))
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await?;
            Ok(found.iter().map(summary).collect::<Result<Vec<_>, _>>()?)
        }

        async fn user_summary(&self, id: i64) -> StoreResult<Option<UserSummary>> {
            let found = sqlx::query(&user_summary_sql())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            Ok(found.as_ref().map(summary).transpose()?)
        }

        async fn block_user(&self, id: i64, now: i64) -> StoreResult<bool> {
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query(BLOCK_USER)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                revoke_all(&mut tx, id, now).await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        }

        async fn unblock_user(&self, id: i64) -> StoreResult<bool> {
            let n = sqlx::query(UNBLOCK_USER)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
            Ok(n == 1)
        }

        async fn revoke_user_everything(&self, id: i64, now: i64) -> StoreResult<u64> {
            let mut tx = self.pool.begin().await?;
            let n = revoke_all(&mut tx, id, now).await?;
            tx.commit().await?;
            Ok(n)
        }
    }
}

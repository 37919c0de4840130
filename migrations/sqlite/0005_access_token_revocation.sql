-- RFC 7009: one access token can be revoked without its grant.
ALTER TABLE access_tokens ADD COLUMN revoked_at INTEGER;

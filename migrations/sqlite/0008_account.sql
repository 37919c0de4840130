-- What users see of what they gave (`/apps`, `/sessions`, the `/account` page) and their login
-- alerts.
-- A signed-in browser: its user agent summary, an approximate place when a GeoIP database is
-- configured, and when it was last used.
ALTER TABLE sessions ADD COLUMN device TEXT;
ALTER TABLE sessions ADD COLUMN place TEXT;
ALTER TABLE sessions ADD COLUMN last_used_at INTEGER;
CREATE INDEX sessions_user ON sessions (user_id);
-- The browser session a grant was issued in, so that "This wasn't me" ends both.
ALTER TABLE grants ADD COLUMN session_hash BLOB;
CREATE INDEX grants_user ON grants (user_id, client_id);
CREATE INDEX grants_session ON grants (session_hash);
CREATE INDEX access_tokens_user ON access_tokens (user_id, client_id);
-- Login alerts: the user's own choice (NULL: the configured default), and when they first
-- logged in through the bot chat (the default may depend on it).
ALTER TABLE users ADD COLUMN login_alerts INTEGER;
ALTER TABLE users ADD COLUMN bot_chat_since INTEGER;

-- The configured groups a user was last found in (a JSON array of names), released in the
-- `groups` claim; NULL until computed at a login to an app that may ask for them.
ALTER TABLE users ADD COLUMN group_names TEXT;

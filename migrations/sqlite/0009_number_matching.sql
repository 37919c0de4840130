-- Approvals in the bot chat that a phisher cannot use: the two-digit number the waiting page
-- shows and the user must press in the chat; what asked for the login (a summary of the
-- browser, or the device's user code, and the app's domain), as JSON, for the approval message;
-- and how the login was answered: approve, deny, wrong_number or not_me.
ALTER TABLE bot_logins ADD COLUMN match_code INTEGER;
ALTER TABLE bot_logins ADD COLUMN requester TEXT;
ALTER TABLE bot_logins ADD COLUMN answer TEXT;

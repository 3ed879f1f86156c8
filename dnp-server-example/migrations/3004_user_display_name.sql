-- dnp-server: the name an identity provider gave when the account was made or linked
-- (Apple sends it only on the first authorization, in its form post's `user` field).
ALTER TABLE users ADD COLUMN display_name TEXT;

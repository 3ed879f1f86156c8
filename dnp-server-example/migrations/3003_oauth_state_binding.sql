-- dnp-server: sign-in states are bound to the browser that started them. The browser keeps
-- a random value in an HttpOnly cookie; the state row keeps only its SHA-256 (hex).
-- Rows made before this migration have none and no longer complete (they expire within
-- 10 minutes anyway).
ALTER TABLE oauth_states ADD COLUMN binding_hash TEXT;

-- Bearer sign-in (the HTTP server): `Authorization: Bearer TOKEN` carries no
-- user id, so each user row also keeps a lookup key, the SHA-256 of the token
-- (hex). Tokens are 256 random bits, so the key reveals nothing an attacker
-- could brute-force; the argon2id hash stays the check. Rows made before this
-- migration have no key until the user next signs in with --as (or rotates).

ALTER TABLE users ADD COLUMN token_lookup TEXT;
CREATE UNIQUE INDEX users_token_lookup ON users (token_lookup) WHERE token_lookup IS NOT NULL;

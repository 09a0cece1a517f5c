-- The web portal (plugin.web): passwords, sessions, one-time sign-in links and the settings employees
-- chose for themselves. Secrets are never stored as given: passwords as Argon2id hashes, session ids and
-- link tokens as SHA-256 digests (a copy of the database signs nobody in).

CREATE TABLE web_passwords (
    extension   TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,              -- Argon2id, PHC string ($argon2id$v=19$...)
    changed_at  TEXT NOT NULL
);

CREATE TABLE web_sessions (
    id_hash     TEXT PRIMARY KEY,           -- SHA-256 hex of the session id in the cookie
    extension   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX web_sessions_extension ON web_sessions (extension);

CREATE TABLE web_signin_links (
    token_hash  TEXT PRIMARY KEY,           -- SHA-256 hex of the token in the link
    extension   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT                        -- set when followed: a link works once
);

CREATE TABLE web_user_settings (
    extension   TEXT NOT NULL,
    name        TEXT NOT NULL,              -- one of sync.config.WEB_USER_SETTINGS
    value       TEXT NOT NULL,              -- JSON
    changed_at  TEXT NOT NULL,
    PRIMARY KEY (extension, name)
);

-- Per-phone phonebook tokens (plugin.phonebook.tokens): only the SHA-256 of each token is kept.
CREATE TABLE phonebook_tokens (
    token_sha256  TEXT PRIMARY KEY,
    extension     TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX phonebook_tokens_extension ON phonebook_tokens (extension);

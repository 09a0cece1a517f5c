-- Per-phone phonebook tokens (plugin.phonebook.tokens): only the SHA-256 of each token is kept.
CREATE TABLE phonebook_tokens (
    token_sha256  TEXT PRIMARY KEY,
    extension     TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX phonebook_tokens_extension ON phonebook_tokens (extension);

-- A counter of changes to what phonebooks show (contacts, tokens), so a server answering from memory
-- (plugin.phonebook) can tell a contacts change from a calendar pass with one read. Phones are written
-- together with their contact's row (sync.store.contacts upserts it), so the contacts triggers see them.
CREATE TABLE phonebook_changes (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    changes  INTEGER NOT NULL
);
INSERT INTO phonebook_changes (id, changes) VALUES (1, 0);
CREATE TRIGGER phonebook_contact_inserted AFTER INSERT ON contacts
BEGIN UPDATE phonebook_changes SET changes = changes + 1; END;
CREATE TRIGGER phonebook_contact_updated AFTER UPDATE ON contacts
BEGIN UPDATE phonebook_changes SET changes = changes + 1; END;
CREATE TRIGGER phonebook_contact_deleted AFTER DELETE ON contacts
BEGIN UPDATE phonebook_changes SET changes = changes + 1; END;
CREATE TRIGGER phonebook_token_inserted AFTER INSERT ON phonebook_tokens
BEGIN UPDATE phonebook_changes SET changes = changes + 1; END;
CREATE TRIGGER phonebook_token_deleted AFTER DELETE ON phonebook_tokens
BEGIN UPDATE phonebook_changes SET changes = changes + 1; END;

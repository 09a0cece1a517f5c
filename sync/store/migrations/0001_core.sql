-- Synced Exchange data. Instants are ISO 8601 UTC text (sync.model.utc_text), so they sort as text.

CREATE TABLE folder_sync (
    mailbox       TEXT NOT NULL,            -- lower-case primary SMTP address
    folder        TEXT NOT NULL,            -- 'contacts' | 'calendar'
    sync_state    TEXT NOT NULL DEFAULT '', -- the source's opaque incremental state
    window_start  TEXT,                     -- calendar: the window the stored occurrences cover
    window_end    TEXT,
    last_attempt  TEXT,
    last_success  TEXT,
    last_error    TEXT,                     -- one line, never a secret
    error_kind    TEXT,                     -- auth | access | busy | data | network | store
    PRIMARY KEY (mailbox, folder)
);

CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY,
    mailbox       TEXT NOT NULL,
    item_id       TEXT NOT NULL,
    change_key    TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    given_name    TEXT NOT NULL DEFAULT '',
    surname       TEXT NOT NULL DEFAULT '',
    company       TEXT NOT NULL DEFAULT '',
    title         TEXT NOT NULL DEFAULT '',
    emails        TEXT NOT NULL DEFAULT '[]',   -- JSON list
    updated_at    TEXT NOT NULL,
    UNIQUE (mailbox, item_id)
);
CREATE INDEX contacts_display_name ON contacts (display_name COLLATE NOCASE);

CREATE TABLE contact_phones (
    contact_id    INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    raw           TEXT NOT NULL,
    e164          TEXT,
    digits        TEXT NOT NULL
);
CREATE INDEX contact_phones_contact ON contact_phones (contact_id);
CREATE INDEX contact_phones_e164 ON contact_phones (e164);
CREATE INDEX contact_phones_digits ON contact_phones (digits);

CREATE TABLE occurrences (
    id              INTEGER PRIMARY KEY,
    mailbox         TEXT NOT NULL,
    item_id         TEXT NOT NULL,
    change_key      TEXT NOT NULL,
    uid             TEXT NOT NULL,
    occurrence_key  TEXT NOT NULL,
    recurrence_id   TEXT,
    series_item_id  TEXT NOT NULL DEFAULT '',
    start_utc       TEXT NOT NULL,
    end_utc         TEXT NOT NULL,
    timezone        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    location        TEXT NOT NULL,
    organizer_email TEXT NOT NULL,
    organizer_name  TEXT NOT NULL,
    attendees       TEXT NOT NULL,               -- JSON list of {email, name, kind, response}
    is_cancelled    INTEGER NOT NULL,
    is_all_day      INTEGER NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (mailbox, item_id)
);
CREATE INDEX occurrences_meeting ON occurrences (uid, occurrence_key);
CREATE INDEX occurrences_start ON occurrences (start_utc);
CREATE INDEX occurrences_series ON occurrences (mailbox, series_item_id);

-- Internal Exchange addresses (X.500 / legacyExchangeDN) resolved to SMTP once, through ResolveNames.
CREATE TABLE address_cache (
    address      TEXT PRIMARY KEY,   -- lower-case
    smtp         TEXT,               -- NULL: Exchange could not resolve it
    resolved_at  TEXT NOT NULL
);

-- Issue 16: the "Join by phone" block pbxsync writes into the organizer's meeting ([meetings] write_back).

-- One row per booking whose organizer copy pbxsync has looked at. `tag` names the block the last settled
-- outcome was for ('' = no block wanted) and `change_key` the organizer copy's change key after it (the
-- one our own write produced): the same two seen again mean nothing changed, so our own change coming
-- back through sync never causes another write.
CREATE TABLE write_backs (
    booking_id       INTEGER PRIMARY KEY REFERENCES bookings (id),
    mailbox          TEXT NOT NULL,
    item_id          TEXT NOT NULL,
    tag              TEXT NOT NULL DEFAULT '',
    change_key       TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL CHECK (state IN ('written', 'removed', 'failed', 'read_only', 'too_large',
                                                     'gone')),
    attempts         INTEGER NOT NULL DEFAULT 0,   -- failed tries since the last settled outcome
    next_attempt_at  TEXT,                         -- a failed write is not tried again before this (UTC)
    last_error       TEXT NOT NULL DEFAULT '',
    updated_at       TEXT NOT NULL
);
CREATE INDEX write_backs_mailbox ON write_backs (mailbox);

-- Mailboxes Exchange refused a write for (EWS ErrorAccessDenied, Graph 403): read-only for write-back
-- until `recheck_at`, when one write is tried again.
CREATE TABLE write_back_read_only (
    mailbox     TEXT PRIMARY KEY,              -- lower-case SMTP
    since       TEXT NOT NULL,
    recheck_at  TEXT NOT NULL,
    reason      TEXT NOT NULL
);

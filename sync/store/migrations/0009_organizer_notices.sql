-- Issue 16: rejection notices to organizers (plugin/notices). Uses only `bookings`.

-- One row per (booking, reason): the notice about it is sent at most once, across restarts. A reason is
-- "rejected:<code>" (never booked) or "cancelled:<code>" (booked, then cancelled by pbxsync itself).
CREATE TABLE organizer_notices (
    id               INTEGER PRIMARY KEY,
    booking_id       INTEGER NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    reason           TEXT NOT NULL,
    recipient        TEXT NOT NULL,       -- the organizer's address (a configured PBX user)
    language         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'obsolete', 'abandoned')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,       -- UTC text; a failed send waits until then (back-off)
    last_error       TEXT,                -- one line, no secrets
    created_at       TEXT NOT NULL,
    sent_at          TEXT,
    UNIQUE (booking_id, reason)
);
CREATE INDEX organizer_notices_due ON organizer_notices (state, next_attempt_at);

-- Bookings pbxsync has seen scheduled: a later rejection of one of them is a cancellation by pbxsync.
CREATE TABLE organizer_notice_booked (
    booking_id  INTEGER PRIMARY KEY REFERENCES bookings (id) ON DELETE CASCADE
);

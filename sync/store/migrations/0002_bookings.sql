-- Conference bookings made from synced meetings (plugin/booking). Instants are ISO 8601 UTC text.
-- Ids are stable: a booking keeps its id when the meeting moves, is cancelled or booked again, and a
-- participant keeps its id while the booking lives (call attempts reference both).

CREATE TABLE bookings (
    id                   INTEGER PRIMARY KEY,
    uid                  TEXT NOT NULL,            -- iCalendar UID of the meeting
    recurrence_key       TEXT NOT NULL,            -- '' for a single meeting, else RecurrenceId (UTC text)
    subject              TEXT NOT NULL,
    location             TEXT NOT NULL,
    start_utc            TEXT NOT NULL,
    end_utc              TEXT NOT NULL,
    timezone             TEXT NOT NULL,
    autocall             INTEGER NOT NULL CHECK (autocall IN (0, 1)),
    -- 'active' and 'done' are not stored: they are 'scheduled' seen at a given time.
    state                TEXT NOT NULL CHECK (state IN ('scheduled', 'cancelled', 'rejected')),
    reason               TEXT,                     -- why rejected or cancelled, else NULL
    room                 TEXT,                     -- NULL while rejected
    organizer_email      TEXT NOT NULL,
    organizer_extension  TEXT,                     -- NULL: the organizer is not a PBX user
    organizer_copy_seen  INTEGER NOT NULL DEFAULT 0 CHECK (organizer_copy_seen IN (0, 1)),
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (uid, recurrence_key),
    CHECK (state <> 'scheduled' OR (room IS NOT NULL AND organizer_extension IS NOT NULL))
);
CREATE INDEX bookings_end ON bookings (end_utc);
CREATE INDEX bookings_room ON bookings (room, start_utc);

CREATE TABLE booking_participants (
    id             INTEGER PRIMARY KEY,
    booking_id     INTEGER NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    extension      TEXT NOT NULL,
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('host', 'required', 'optional')),
    response       TEXT NOT NULL,              -- Exchange ResponseType value ('organizer' for the host)
    invited        INTEGER NOT NULL CHECK (invited IN (0, 1)),  -- 0: the organizer removed them
    copy_state     TEXT NOT NULL CHECK (copy_state IN ('unknown', 'present', 'deleted')),
    call           INTEGER NOT NULL CHECK (call IN (0, 1)),     -- derived from the above; for SQL readers
    position       INTEGER NOT NULL,
    UNIQUE (booking_id, extension)
);
CREATE INDEX booking_participants_extension ON booking_participants (extension);

CREATE TABLE booking_unmatched (
    booking_id     INTEGER NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    address        TEXT NOT NULL,
    PRIMARY KEY (booking_id, position)
);

-- The audit trail: why each booking changed (kept short per booking by the writer).
CREATE TABLE booking_events (
    id             INTEGER PRIMARY KEY,
    booking_id     INTEGER NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    at             TEXT NOT NULL,
    kind           TEXT NOT NULL,              -- create | update | cancel | reject
    detail         TEXT NOT NULL
);
CREATE INDEX booking_events_booking ON booking_events (booking_id, id);

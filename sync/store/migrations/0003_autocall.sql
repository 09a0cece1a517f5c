-- AUTOCALL call attempts (plugin/autocall). One row per Originate, written BEFORE the Originate is sent,
-- so a restarted agent knows every call that may have been dialled and never repeats one. `channel_id`
-- is sent as the Originate ChannelId (the channel's Uniqueid): derived from booking, participant and
-- attempt number, unique for ever. Instants are ISO 8601 UTC text.

CREATE TABLE autocall_attempts (
    id              INTEGER PRIMARY KEY,
    booking_id      INTEGER NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    participant_id  INTEGER NOT NULL REFERENCES booking_participants (id) ON DELETE CASCADE,
    extension       TEXT NOT NULL,
    attempt         INTEGER NOT NULL CHECK (attempt >= 1),
    channel_id      TEXT NOT NULL UNIQUE,
    outcome         TEXT NOT NULL CHECK (outcome IN ('pending', 'answered', 'busy', 'no_answer', 'congestion',
                                                     'failed', 'unknown', 'not_sent')),
    reason          TEXT,               -- OriginateResponse Reason code ('4', '5', ...), NULL if none came
    detail          TEXT,               -- error text for failed/unknown/not_sent
    created_at      TEXT NOT NULL,      -- stored, just before the Originate was written
    finished_at     TEXT,               -- outcome known
    joined_at       TEXT,               -- a ConfbridgeJoin with this channel_id as Uniqueid was seen
    UNIQUE (booking_id, participant_id, attempt)
);
CREATE INDEX autocall_attempts_booking ON autocall_attempts (booking_id, participant_id, attempt);

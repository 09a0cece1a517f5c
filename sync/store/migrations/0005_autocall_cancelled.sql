-- A call hung up by pbxsync because its meeting was cancelled while the phone rang gets its own outcome,
-- 'cancelled' (final, never retried). SQLite cannot alter a CHECK constraint: the table is rebuilt.

CREATE TABLE autocall_attempts_new (
    id              INTEGER PRIMARY KEY,
    booking_id      INTEGER NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    participant_id  INTEGER NOT NULL REFERENCES booking_participants (id) ON DELETE CASCADE,
    extension       TEXT NOT NULL,
    attempt         INTEGER NOT NULL CHECK (attempt >= 1),
    channel_id      TEXT NOT NULL UNIQUE,
    outcome         TEXT NOT NULL CHECK (outcome IN ('pending', 'answered', 'busy', 'no_answer', 'congestion',
                                                     'failed', 'unknown', 'not_sent', 'cancelled')),
    reason          TEXT,               -- OriginateResponse Reason code ('4', '5', ...), NULL if none came
    detail          TEXT,               -- error text for failed/unknown/not_sent/cancelled
    created_at      TEXT NOT NULL,      -- stored, just before the Originate was written
    finished_at     TEXT,               -- outcome known
    joined_at       TEXT,               -- a ConfbridgeJoin with this channel_id as Uniqueid was seen
    UNIQUE (booking_id, participant_id, attempt)
);
INSERT INTO autocall_attempts_new (id, booking_id, participant_id, extension, attempt, channel_id, outcome, reason,
                                   detail, created_at, finished_at, joined_at)
    SELECT id, booking_id, participant_id, extension, attempt, channel_id, outcome, reason, detail, created_at,
           finished_at, joined_at
      FROM autocall_attempts;
DROP TABLE autocall_attempts;
ALTER TABLE autocall_attempts_new RENAME TO autocall_attempts;
CREATE INDEX autocall_attempts_booking ON autocall_attempts (booking_id, participant_id, attempt);

-- Issue 12, calendar side: invitations to groups, private meetings, forwarded copies.

-- A meeting copy's sensitivity (normal | personal | private | confidential) and the mailbox owner's own
-- answer to it (an Exchange ResponseType value: a forwarded copy counts unless its holder declined).
ALTER TABLE occurrences ADD COLUMN sensitivity TEXT NOT NULL DEFAULT 'normal';
ALTER TABLE occurrences ADD COLUMN my_response TEXT NOT NULL DEFAULT 'unknown';
-- Rows stored before this version do not know either: the next pass fetches every calendar window again
-- (a NULL window counts as moved) and rewrites every row (an empty change key always differs).
UPDATE occurrences SET change_key = '';
UPDATE folder_sync SET window_start = NULL, window_end = NULL WHERE folder = 'calendar';

-- A booking of a private or confidential meeting: its `subject` holds the placeholder, never the subject.
ALTER TABLE bookings ADD COLUMN private INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1));
-- How a participant came in other than by name in the organizer's list: through a group invited to the
-- meeting (its address), or by holding a forwarded copy of it.
ALTER TABLE booking_participants ADD COLUMN via_group TEXT NOT NULL DEFAULT '';
ALTER TABLE booking_participants ADD COLUMN forwarded INTEGER NOT NULL DEFAULT 0 CHECK (forwarded IN (0, 1));
-- Why an invitee address is unmatched when it is more than "not a PBX user" (a group too large to expand).
ALTER TABLE booking_unmatched ADD COLUMN reason TEXT NOT NULL DEFAULT '';

-- What an invited address stands for, looked up in Exchange (ExpandDL, Graph /groups) and kept for
-- `[meetings] group_cache_minutes`. is_group = 0 remembers "not a group", so it is not asked again.
CREATE TABLE group_expansions (
    address     TEXT PRIMARY KEY,            -- lower-case SMTP
    is_group    INTEGER NOT NULL CHECK (is_group IN (0, 1)),
    name        TEXT NOT NULL DEFAULT '',
    members     TEXT NOT NULL DEFAULT '[]',  -- JSON list of lower-case SMTP addresses, nested groups flattened
    complete    INTEGER NOT NULL DEFAULT 1 CHECK (complete IN (0, 1)),  -- 0: more members than were read
    checked_at  TEXT NOT NULL
);

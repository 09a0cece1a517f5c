-- Issue 17: free/busy from the calendar. Each stored occurrence keeps how its owner's time shows during it
-- (sync.model.ShowAs: free | tentative | busy | oof | workingelsewhere | unknown), for every calendar item,
-- PBX meeting or not. plugin/presence turns it into device and presence state; a private item's status
-- and times are all it reads.
ALTER TABLE occurrences ADD COLUMN show_as TEXT NOT NULL DEFAULT 'busy';
CREATE INDEX occurrences_presence ON occurrences (mailbox, end_utc);
-- Rows stored before this version do not know it: the next pass fetches every calendar window again (a
-- NULL window counts as moved) and rewrites every row (an empty change key always differs).
UPDATE occurrences SET change_key = '';
UPDATE folder_sync SET window_start = NULL, window_end = NULL WHERE folder = 'calendar';

-- Items a source read but could not map (not a contact, malformed fields, a library error reading it) are
-- skipped, never the reason a folder fails. One row per such item while it stays unreadable, so `pbxsync
-- users` can show per folder how many there are and the latest reasons. A row goes when its item is synced
-- or deleted later, or when a complete fetch of the folder no longer reports it.

CREATE TABLE skipped_items (
    mailbox   TEXT NOT NULL,
    folder    TEXT NOT NULL,              -- 'contacts' | 'calendar', as folder_sync.folder
    item_id   TEXT NOT NULL,              -- the Exchange item id; '' when Exchange sent none
    location  TEXT NOT NULL DEFAULT '',   -- the Exchange folder's path in the mailbox ('' = the default folder)
    reason    TEXT NOT NULL,              -- one line pbxsync wrote, never the item's content
    seen_at   TEXT NOT NULL,
    PRIMARY KEY (mailbox, folder, item_id)
);

-- Contacts from sub-folders of the Contacts folder keep their folder's path ('' = the Contacts folder).
ALTER TABLE contacts ADD COLUMN folder TEXT NOT NULL DEFAULT '';

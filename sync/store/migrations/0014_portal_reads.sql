-- Issue 18: what the portal's busiest reads need, so a page costs what it shows, not what is stored.
--
-- Each synced number's display forms for My contacts, stored beside it. Formatting with phonenumbers
-- costs ~50 us a number, ~6 ms for a search answer of 50 contacts on every keystroke. The sync writes
-- numbers without them (NULL: not formatted yet), so its own speed does not change; the portal fills
-- them in after each pass (plugin/web/number_display.py) and formats a number still NULL when shown.
ALTER TABLE contact_phones ADD COLUMN national TEXT;
ALTER TABLE contact_phones ADD COLUMN international TEXT;

-- The admin's AUTOCALL outcomes per day (plugin/web/admin_outcomes.py) read a span of days: a covering
-- index instead of reading every attempt ever made.
CREATE INDEX autocall_attempts_created ON autocall_attempts (created_at, outcome);

"""Writing the "Join by phone" block back into the organizer's meeting, safely (ChangeKey / If-Match)."""

"""The SQLite store: the source of truth for synced data, bookings and call attempts."""

-- Per-booking conference PINs (plugin/booking/pins.py, `[conference] pins = true`): asked for at dial-in by
-- the FastAGI room service, shown by `pbxsync conferences`. A booking keeps its PIN while it lives.

CREATE TABLE booking_pins (
    booking_id  INTEGER PRIMARY KEY REFERENCES bookings (id) ON DELETE CASCADE,
    pin         TEXT NOT NULL CHECK (length(pin) BETWEEN 4 AND 12 AND pin NOT GLOB '*[^0-9]*'),
    created_at  TEXT NOT NULL
);

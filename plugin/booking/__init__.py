"""Exchange meetings -> PBX conference bookings: location grammar, planner, rooms, store."""

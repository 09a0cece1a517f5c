"""AUTOCALL: at a booking's start, originate every participant into its conference room (see docs/autocall.md)."""

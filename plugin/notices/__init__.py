"""Notices to organizers: one e-mail per rejected or cancelled booking, never twice for one reason."""

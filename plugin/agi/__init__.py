"""FastAGI services for the dialplan: caller-ID names and booked-room admission."""

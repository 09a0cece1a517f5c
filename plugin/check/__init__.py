"""`pbxsync check`: a preflight that tells the admin, one line per check, what works and how to fix what does not."""

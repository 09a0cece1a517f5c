"""Exchange side of pbxsync: sources, the SQLite store and the sync engine. Knows nothing about the PBX."""

"""PBX side of pbxsync: directory, bookings, AMI, AUTOCALL, FastAGI, LDAP, the daemon and the CLI."""

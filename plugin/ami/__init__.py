"""The AMI side of pbxsync: wire format (`wire`), the supervised client (`client`) and a simulator."""

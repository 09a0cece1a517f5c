"""Change feeds: Exchange tells pbxsync which folders changed (EWS streaming, Graph notifications/delta).

A feed only says *which* folder changed; the daemon then runs the normal incremental sync of that folder.
See `sync.notify.base` for the contract every backend's feed fulfils.
"""

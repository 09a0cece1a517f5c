"""The pbxsync daemon: one asyncio process supervising every part as a named service."""

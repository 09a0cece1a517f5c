"""Vendor XML phonebooks over HTTP for desk phones (Yealink, Snom, Grandstream, Cisco, Fanvil, Gigaset)."""

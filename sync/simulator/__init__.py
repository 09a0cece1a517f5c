"""Simulated Exchange peers (EWS SOAP, later Graph REST) for tests, the demo and benchmarks.

`mailboxes` holds the protocol-neutral data model every simulated server serves from.
"""

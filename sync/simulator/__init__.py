"""Simulated Exchange peers (EWS SOAP and Graph REST) for tests, the demo and benchmarks.

`mailboxes` is the protocol-neutral data model every simulated server serves from (one import for callers;
its docstring maps the modules it is made of); `ews_server` and `graph_server` are the protocol views.
"""

"""Helpers the tests (and the benchmarks) share; not part of the installed product.

Shared fixtures live in a conftest.py: tests/conftest.py for those several folders use, a folder's own
conftest.py for those only its modules use (tests/integration/conftest.py; the unit and property modules
share none of their own yet). Plain helpers several modules import live here. Test modules never import
each other.
"""

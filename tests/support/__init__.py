"""Helpers the tests (and the benchmarks) share; not part of the installed product.

Fixtures live in the conftest.py of the folder that uses them (tests/, tests/unit/, tests/integration/,
tests/property/); what several folders import lives here. Test modules never import each other.
"""

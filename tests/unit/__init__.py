"""The unit layer: use cases against in-memory fakes of the ports (no AWS, no sockets).

A package on purpose: its modules import as `unit.<name>`, so this folder's conftest.py never
takes the place of tests/conftest.py in sys.modules (tests there import `conftest` lazily).
"""

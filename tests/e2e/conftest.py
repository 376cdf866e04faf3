"""The whole-system fixtures (``make_embedded``, ``process_cluster``) live in ``tests/conftest.py``."""

"""The ``fairgate`` command: the one place that composes the deployables.

``fairgate/`` (the core), ``training/``, ``service/``, ``monitoring/`` and ``loadtests/`` never
import this package (tests/test_import_rules.py enforces it); it imports them.
"""

"""Helpers the tests (and bench/) share: sample data, models that recompute the numbers, harnesses.

Imported as `tests.support.<module>` (pyproject's pytest `pythonpath` puts the project root on sys.path).
"""

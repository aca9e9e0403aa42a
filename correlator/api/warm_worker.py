"""Imported by the fork server before any analysis process forks from it: the built-in formats
and rules are then loaded once, not once per analysis (see worker.py)."""

from correlator.api.worker import warm

warm()

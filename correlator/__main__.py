"""Lets `python -m correlator` behave exactly like the console script."""

from correlator.cli import main

raise SystemExit(main())

"""Aligning many sources into one story: zones, clock skew, merge by time, connection stitching.

Layering: this package imports `correlator.model`, `correlator.errors`, and (in `pipeline` only)
`correlator.sources` and `correlator.formats`; it never imports a surface.
"""

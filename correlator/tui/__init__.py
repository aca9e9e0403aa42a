"""The Textual screens of `correlator watch` and `correlator tui`.

Only `app.py` and `widgets.py`/`screens.py` import textual; `event_store.py`, `sources.py` and `screen_text.py`
do not, so the data side is tested and benchmarked without a terminal.
"""

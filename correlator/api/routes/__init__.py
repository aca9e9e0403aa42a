"""One router per area; `app.py` mounts them under /api/v1."""

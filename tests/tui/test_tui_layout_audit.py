"""Every screen at 80x24 and 200x50 (issue 18): the findings, the detail, the timeline, a search,
the help and the time histogram (stacked, and zoomed out per source), each as an SVG snapshot
(pytest-textual-snapshot) and audited from Textual's own layout, so a change that clips or
overlaps text fails even when nobody looks at the picture:

- every row of the screen is exactly as wide as the terminal (no wide character spills over);
- no two widgets that draw text cover the same cells;
- a widget cut by its container can be scrolled into view (its container scrolls): text cut with
  no way to reach it is clipped;
- the footer shows whole keys only (a key cut mid-word, `x` at 80 columns, reads as nothing);
- what each screen is for is on it, whole.

After a deliberate change to a screen, review and accept its pictures with
`pytest tests/tui --snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets._footer import FooterKey
from tui_helpers import SIZES, screen_lines

from correlator.tui.app import CorrelatorApp

Make = Callable[..., CorrelatorApp]
Snap = Callable[..., bool]

#: Each screen: the keys that open it on the `mixed` incident, and what must be on it, whole.
SCREENS: dict[str, tuple[list[str], list[str]]] = {
    "findings": ([], ["acl.publish_denied", "tls.client_cert_expired", "auth.bad_credentials"]),
    "detail": (["down", "d", "tab"], ["tls.client_cert_expired", "valid until", "expired 2 days ago"]),
    "timeline": (["down", "enter"], ["OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify"]),
    "search": (["t", "slash", *"not authorised"], ["1/4 'not authorised'"]),
    "help": (["question_mark"], ["correlator: keys", "search as you type", "time histogram"]),
    "histogram": (["i"], ["messages per 1 s", "stacked", "✗ errors", "◆ evidence"]),
    "histogram-zoomed-out": (["i", "minus", "s"], ["messages per 2 s", "per source"]),
}


def _scrolls(widget: Widget) -> bool:
    """Whether a container of `widget` scrolls, so what it cuts off can be brought into view."""
    return any(isinstance(a, Widget) and (a.allow_vertical_scroll or a.allow_horizontal_scroll)
               for a in widget.ancestors_with_self[1:])


def layout_faults(app: App[None]) -> list[str]:
    """What the audit finds wrong with the screen as laid out now (empty: nothing)."""
    width = app.size.width
    faults = [f"row {n} is {len(row)} cells wide" for n, row in enumerate(screen_lines(app)) if len(row) != width]
    shown = {widget: (region, clip) for widget, (region, clip) in app.screen._compositor.visible_widgets.items()
             if region.area}
    for widget, (region, clip) in shown.items():
        if region.intersection(clip) != region and not _scrolls(widget):
            faults.append(f"{widget!r} at {region} is cut to {clip} and nothing scrolls it into view")
    leaves = [(widget, region.intersection(clip)) for widget, (region, clip) in shown.items()
              if not any(child in shown for child in widget.children)]
    for index, (one, at) in enumerate(leaves):
        for other, there in leaves[index + 1:]:
            # a widget's own scrollbar sits in its gutter, beside its text
            related = one in other.ancestors or other in one.ancestors
            if at.overlaps(there) and not related and one.screen is other.screen:
                faults.append(f"{one!r} at {at} overlaps {other!r} at {there}")
    for key in app.screen.query(FooterKey):
        if key in shown and shown[key][0].right > width:
            faults.append(f"the footer cuts key {key.key!r} at column {width}")
    return faults


async def _open(pilot: Pilot[None], keys: list[str]) -> None:
    await pilot.pause()
    for key in keys:  # each key's work done (a search's worker too) before the next, as a person types
        await pilot.press(key)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    pilot.app.clear_notifications()  # a toast ("Search wrapped to the top") goes by its own clock
    await pilot.pause()


@pytest.mark.anyio
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", list(SCREENS))
async def test_no_text_is_clipped_or_overlapping(make_app: Make, screen: str, size: tuple[int, int]) -> None:
    keys, wanted = SCREENS[screen]
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await _open(pilot, keys)
        assert layout_faults(app) == []
        text = "\n".join(screen_lines(app))
        for words in wanted:
            assert words in text or words in text.replace("\n", " "), f"{words!r} not on screen:\n{text}"


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_snapshot(snap_compare: Snap, make_app: Make, screen: str, size: tuple[int, int]) -> None:
    keys, _ = SCREENS[screen]

    async def opened(pilot: Pilot[None]) -> None:
        await _open(pilot, keys)

    assert snap_compare(make_app("mixed"), run_before=opened, terminal_size=size)

"""Progress bars: drawn on a terminal, silent when piped or scripted."""

from __future__ import annotations

import io

from rich.console import Console

from service.progress import progress_bar, quiet


def test_without_a_terminal_nothing_is_drawn() -> None:
    out = io.StringIO()
    with progress_bar("replaying", Console(file=out)) as report:
        assert report is quiet
        report(1, 2)
    assert out.getvalue() == ""


def test_on_a_terminal_the_bar_shows_the_label_and_the_count() -> None:
    out = io.StringIO()
    with progress_bar("replaying", Console(file=out, force_terminal=True, width=100)) as report:
        assert report is not quiet
        for done in range(1, 4):
            report(done, 3)
    assert "replaying" in out.getvalue()
    assert "3/3" in out.getvalue()

"""A smoke run of `bench.roundtrip` on its own dev server: it measures, and says what."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import roundtrip


@pytest.mark.parametrize(("journal", "mode"), [("rollback", "delete"), ("wal", "wal")])
def test_roundtrip_measures_the_servers_hand_off_and_the_workers_share(
    journal: str, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "roundtrip.json"
    roundtrip.main(["--journal", journal, "--runs", "8", "--json", str(out)])
    results = json.loads(out.read_text())
    assert (results["journal"], results["runs"]) == (journal, 3)  # the first 5 warm up
    # The option reached the server: its database runs in that journal mode.
    assert results["journal_mode"] == mode
    # Both shares are real intervals: the server's between two of its own events, the
    # worker's from the workflow task's start to the local activity's own clock.
    assert results["server_median_ms"] > 0 and results["worker_median_ms"] > 0
    assert results["total_median_ms"] <= results["total_p90_ms"]
    assert f"journal {journal} ({mode}):" in capsys.readouterr().out

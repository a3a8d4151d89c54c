"""An activity called off by a rollback is said in one line; real failures keep their
traceback."""

from __future__ import annotations

import asyncio
import logging
import sys

from temporalio.exceptions import CancelledError as TemporalCancelledError

from shiprail.worker import ExpectedCancellation


def _record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        return logging.LogRecord(
            "temporalio.activity",
            logging.WARNING,
            __file__,
            1,
            "Completing activity as failed (%s)",
            ({"activity_type": "bake"},),
            sys.exc_info(),
        )


def test_a_called_off_activity_is_one_line_without_a_traceback() -> None:
    for error in (TemporalCancelledError("Activity cancelled"), asyncio.CancelledError()):
        record = _record(error)
        assert ExpectedCancellation().filter(record)
        text = logging.Formatter().format(record)
        assert "\n" not in text and "Traceback" not in text
        assert text.startswith("Activity called off ({'activity_type': 'bake'})")
        assert text.endswith("(a rollback or an abort stopped it)")


def test_a_real_failure_keeps_its_traceback() -> None:
    record = _record(RuntimeError("actuator exploded"))
    assert ExpectedCancellation().filter(record)
    text = logging.Formatter().format(record)
    assert "Traceback" in text and "RuntimeError: actuator exploded" in text

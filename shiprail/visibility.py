"""Search attributes shiprail keeps on its workflows, for the web UI and `list`."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

PLAN = SearchAttributeKey.for_keyword("ShiprailPlan")
PHASE = SearchAttributeKey.for_keyword("ShiprailPhase")
SERVICES = SearchAttributeKey.for_keyword_list("ShiprailServices")
TRAIN = SearchAttributeKey.for_keyword("ShiprailTrain")

ALL: tuple[SearchAttributeKey[Any], ...] = (PLAN, PHASE, SERVICES, TRAIN)

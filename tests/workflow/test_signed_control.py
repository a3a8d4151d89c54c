"""Signed control on the real dev server: with `spec.access`, approvals and operations from
anyone without the role, with a forged signature or a replayed request are refused by the
update validators, and the refusals are in the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from shiprail.authz import sign
from shiprail.cli.rollout import _control
from shiprail.demo.actuator import ActuatorServer
from shiprail.devstack.temporal import TemporalDevServer
from shiprail.errors import BadInput
from shiprail.status import Phase
from shiprail.workflows.inputs import ControlRequest
from shiprail.workflows.rollout import RolloutWorkflow
from tests.helpers import signing_identity
from tests.workflow.helpers import make_plan, start, wait_status

pytestmark = pytest.mark.usefixtures("worker")


async def test_only_signed_approvers_approve_and_refusals_are_audited(
    client: Client,
    temporal_server: TemporalDevServer,
    actuator: ActuatorServer,
    rollout_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice_pem, alice, alice_public = signing_identity(tmp_path, "alice")
    bob_pem, _bob, bob_public = signing_identity(tmp_path, "bob")
    plan = make_plan(
        actuator.url,
        [{"name": "signed-a"}],
        defaults={"steps": [10, 100], "bake": "1s", "interval": "1s", "approval": "before_first_step"},
        # The roles as DESIGN §2 writes them, the keys under `access`.
        approvers=["alice"],
        operators=["bob"],
        access={"keys": {"alice": alice_public, "bob": bob_public}},
    )
    actuator.store.add("signed-a", "1.0")
    handle = await start(client, plan, rollout_id)
    await wait_status(handle, lambda s: s.phase is Phase.AWAITING_APPROVAL, what="approval")
    address = temporal_server.address

    # Unsigned, as anyone may send it straight to Temporal.
    with pytest.raises(WorkflowUpdateFailedError) as unsigned:
        await handle.execute_update(RolloutWorkflow.approve, ControlRequest(actor="alice"))
    assert "must be signed" in str(unsigned.value.cause)

    # Bob claims to be Alice: signed with his own key.
    monkeypatch.setenv("SHIPRAIL_SIGNING_KEY", str(bob_pem))
    monkeypatch.setenv("SHIPRAIL_ACTOR", "alice")
    with pytest.raises(BadInput, match="the signature was not made with alice's key"):
        await _control(rollout_id, address, RolloutWorkflow.approve, ControlRequest(actor="alice"))
    # Bob as himself: an operator, not an approver.
    with pytest.raises(BadInput, match="'bob' is not one of this rollout's approvers"):
        await _control(rollout_id, address, RolloutWorkflow.approve, ControlRequest(actor="bob"))

    # Alice, properly signed; the very same request sent again is a replay.
    good = sign(alice, rollout_id, "approve", ControlRequest(actor="alice", reason="looks fine"), _now())
    assert "approved" in await handle.execute_update(RolloutWorkflow.approve, good)
    with pytest.raises(WorkflowUpdateFailedError) as replayed:
        await handle.execute_update(RolloutWorkflow.pause, good)
    assert "not authorized" in str(replayed.value.cause)

    # Alice may not abort; Bob may, through the CLI path.
    monkeypatch.setenv("SHIPRAIL_SIGNING_KEY", str(alice_pem))
    with pytest.raises(BadInput, match="'alice' is not one of this rollout's operators"):
        await _control(rollout_id, address, RolloutWorkflow.abort, ControlRequest(actor="alice", reason="no"))
    monkeypatch.setenv("SHIPRAIL_SIGNING_KEY", str(bob_pem))
    assert "aborting" in await _control(
        rollout_id, address, RolloutWorkflow.abort, ControlRequest(actor="bob", reason="test")
    )
    result = await handle.result()
    assert result.phase is Phase.ROLLED_BACK

    audit = await handle.query(RolloutWorkflow.audit)
    refusals = [e.message for e in audit if e.kind == "refusal"]
    assert refusals == [
        "refused approve by alice: the signature was not made with alice's key for this approve of this rollout",
        "refused approve by bob: 'bob' is not one of this rollout's approvers",
        "refused abort by alice: 'alice' is not one of this rollout's operators",
    ]
    humans = [(e.actor, e.message) for e in audit if e.kind == "human"]
    assert humans == [("alice", "approved signed-a step 1: looks fine"), ("bob", "abort: test")]


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)

"""A departure claims its cars from the train workflow (an update, which workflow code
cannot send itself)."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from shiprail.workflows.inputs import Claim, ClaimRequest
from shiprail.workflows.train import TrainWorkflow, train_workflow_id


def claim_update_id(departure_id: str) -> str:
    return f"claim-{departure_id}"


@activity.defn
async def claim_cars(request: ClaimRequest) -> Claim:
    """Claim once per departure, however often this is retried: the claim takes the cars
    off the train, so an attempt whose answer was lost (its worker killed after the train
    applied it) must get the same cars back, which the server does for an update sent again
    under the same id."""
    handle = activity.client().get_workflow_handle(train_workflow_id(request.train))
    try:
        return await handle.execute_update(
            TrainWorkflow.claim, request, id=claim_update_id(request.departure_id)
        )
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        raise ApplicationError(
            f"train {request.train} is not running (deleted?)", type="ClaimRefused", non_retryable=True
        ) from None
    except WorkflowUpdateFailedError as exc:
        message = getattr(exc.cause, "message", None) or str(exc.cause or exc)
        # The train refused (deleted, or claimed before): asking again gets the same answer.
        raise ApplicationError(message, type="ClaimRefused", non_retryable=True) from None

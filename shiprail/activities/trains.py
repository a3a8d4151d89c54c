"""A departure claims its cars from the train workflow (an update, which workflow code
cannot send itself)."""

from __future__ import annotations

from temporalio import activity

from shiprail.workflows.inputs import Claim, ClaimRequest
from shiprail.workflows.train import TrainWorkflow, train_workflow_id


@activity.defn
async def claim_cars(request: ClaimRequest) -> Claim:
    handle = activity.client().get_workflow_handle(train_workflow_id(request.train))
    return await handle.execute_update(TrainWorkflow.claim, request)

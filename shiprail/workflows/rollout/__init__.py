"""The rollout workflow, assembled from its concerns (see `workflow`)."""

from shiprail.workflows.rollout.workflow import RolloutWorkflow, start_search_attributes

__all__ = ["RolloutWorkflow", "start_search_attributes"]

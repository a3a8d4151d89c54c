"""The demo's release train: the demo plan split into two dependent cars (the providers'
waves, then the consumers'), on a train that departs every 30 seconds."""

from __future__ import annotations

from datetime import timedelta

from shiprail.plan.models import RolloutPlan
from shiprail.plan.resolve import plan_waves
from shiprail.plan.train import ReleaseTrain, TrainSchedule, TrainSpec

TRAIN_NAME = "demo-train"


def demo_train() -> ReleaseTrain:
    return ReleaseTrain.model_validate(
        {
            "apiVersion": "shiprail/v1",
            "kind": "ReleaseTrain",
            "metadata": {"name": TRAIN_NAME, "owner": "demo"},
            "spec": TrainSpec(
                schedule=TrainSchedule(every=timedelta(seconds=30)), cutoff=timedelta(seconds=5)
            ).model_dump(by_alias=True),
        }
    )


def demo_cars(plan: RolloutPlan) -> list[tuple[RolloutPlan, list[str]]]:
    """(car plan, the cars it depends on): the first half of the waves, then the rest."""
    waves = plan_waves(plan)
    split = max(1, len(waves) // 2)
    groups = [sorted(n for w in waves[:split] for n in w), sorted(n for w in waves[split:] for n in w)]
    cars: list[tuple[RolloutPlan, list[str]]] = []
    for suffix, names in zip(("providers", "consumers"), groups, strict=True):
        if not names:
            continue
        services = [
            s.model_copy(update={"depends_on": [d for d in s.depends_on if d in names]})
            for s in plan.spec.services
            if s.name in names
        ]
        name = f"{plan.metadata.name}-{suffix}"[:63]
        car = plan.model_copy(
            update={
                "metadata": plan.metadata.model_copy(update={"name": name}),
                "spec": plan.spec.model_copy(update={"services": services}),
            }
        )
        cars.append((car, [cars[-1][0].metadata.name] if cars else []))
    return cars

"""A generic webhook: the notification as JSON, with the target's headers."""

from __future__ import annotations

from shiprail.actuators.secrets import resolve
from shiprail.notifiers._post import post_json
from shiprail.notifiers.base import Notification
from shiprail.plan.notify import WebhookTarget


class WebhookNotifier:
    def __init__(self, target: WebhookTarget) -> None:
        self.target = target

    async def send(self, notification: Notification) -> None:
        headers = {k: resolve(v, what=f"notify header {k}") for k, v in self.target.headers.items()}
        url = resolve(self.target.url, what="notify url")
        await post_json(
            url,
            notification.model_dump(mode="json"),
            headers,
            self.target.timeout.total_seconds(),
            shown=f"webhook {self.target.name or 'target'}",
        )

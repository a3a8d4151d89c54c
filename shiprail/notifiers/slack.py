"""A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): one line of text."""

from __future__ import annotations

from shiprail.actuators.secrets import resolve
from shiprail.notifiers._post import post_json
from shiprail.notifiers.base import Notification
from shiprail.plan.notify import SlackTarget

_ICONS = {"succeeded": ":white_check_mark:", "rolled_back": ":rewind:", "rollback_failed": ":rotating_light:"}


def text_of(notification: Notification) -> str:
    icon = _ICONS.get(notification.phase or "", ":warning:" if notification.event != "phase" else ":ship:")
    where = f" [{notification.service}]" if notification.service else ""
    return f"{icon} *{notification.subject}*{where} {notification.event}: {notification.message}"


class SlackNotifier:
    def __init__(self, target: SlackTarget) -> None:
        self.target = target

    async def send(self, notification: Notification) -> None:
        body = {"text": text_of(notification)}
        if self.target.channel:
            body["channel"] = self.target.channel
        await post_json(
            resolve(self.target.url, what="slack webhook url"),
            body,
            {},
            self.target.timeout.total_seconds(),
            shown=f"slack {self.target.name or 'webhook'}",
        )

"""Notifiers: one interface, one module per target type (webhook, Slack-compatible)."""

from __future__ import annotations

from shiprail.notifiers.base import Notification, Notifier, NotifyError
from shiprail.notifiers.slack import SlackNotifier
from shiprail.notifiers.webhook import WebhookNotifier
from shiprail.plan.notify import NotifyTarget, SlackTarget, WebhookTarget


def for_target(target: NotifyTarget) -> Notifier:
    if isinstance(target, WebhookTarget):
        return WebhookNotifier(target)
    if isinstance(target, SlackTarget):
        return SlackNotifier(target)
    raise NotifyError(f"unknown notification target type {target.type!r}")


__all__ = ["Notification", "Notifier", "NotifyError", "for_target"]

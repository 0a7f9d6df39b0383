"""Which role may do what in an account: the one table every page and service asks."""

from __future__ import annotations

from enum import StrEnum

from .models import Role


class Action(StrEnum):
    VIEW_USAGE = "view_usage"
    USE_PLAYGROUND = "use_playground"
    MANAGE_KEYS = "manage_keys"
    MANAGE_WEBHOOKS = "manage_webhooks"
    MANAGE_BILLING = "manage_billing"
    MANAGE_MEMBERS = "manage_members"


ALLOWED: dict[str, frozenset[Action]] = {
    Role.READER: frozenset({Action.VIEW_USAGE}),
    Role.DEVELOPER: frozenset(
        {Action.VIEW_USAGE, Action.USE_PLAYGROUND, Action.MANAGE_KEYS, Action.MANAGE_WEBHOOKS}
    ),
    Role.OWNER: frozenset(Action),
}


# What each action is, in the words of a refusal ("A reader may not manage API keys").
DESCRIBED: dict[Action, str] = {
    Action.VIEW_USAGE: "see usage",
    Action.USE_PLAYGROUND: "use the playground and gallery",
    Action.MANAGE_KEYS: "manage API keys",
    Action.MANAGE_WEBHOOKS: "manage webhooks",
    Action.MANAGE_BILLING: "manage billing and alerts",
    Action.MANAGE_MEMBERS: "manage members",
}


def role_may(role: str | None, action: Action) -> bool:
    """Whether a member with ``role`` (None: not a member) may do ``action``."""
    return role is not None and action in ALLOWED.get(role, frozenset())

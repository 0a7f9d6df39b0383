"""What billing refuses, and why: each error carries the figures a caller explains it with."""

from __future__ import annotations


class BillingError(Exception):
    pass


class InsufficientCredits(BillingError):
    def __init__(self, *, needed_credits: int, balance_credits: int) -> None:
        super().__init__(f"needs {needed_credits} credits, balance is {balance_credits}")
        self.needed_credits = needed_credits
        self.balance_credits = balance_credits


class CreditsOwed(InsufficientCredits):
    """The account owes credits after a refund or dispute: no new work until they are paid."""

    def __init__(self, *, needed_credits: int, balance_credits: int, owed_credits: int) -> None:
        super().__init__(needed_credits=needed_credits, balance_credits=balance_credits)
        self.args = (f"owes {owed_credits} credits after a refund or dispute",)
        self.owed_credits = owed_credits


class PromoCodeRefused(BillingError):
    """A code that cannot be redeemed. The customer is told the same words whatever the reason,
    so that a real code cannot be told from a made-up one; ``reason`` (unknown, expired,
    used_up, already_redeemed) is for the logs and the tests."""

    MESSAGE = "That code can't be redeemed. Check it and try again."

    def __init__(self, reason: str) -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason


class UnknownPrice(BillingError):
    """No price for a model and size: it is not for sale."""

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
    """A code that cannot be redeemed; the message is meant for the customer."""


class UnknownPrice(BillingError):
    """No price for a model and size: it is not for sale."""

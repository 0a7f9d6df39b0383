"""Signals other apps answer without accounts importing them (accounts is the bottom layer)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by accounts.services.close_account inside its transaction, with ``user`` and ``accounts``:
# the accounts that close with them (their personal account, and each organisation they were the
# only member of). Each app that holds a customer's data removes or anonymises it here, for each
# of ``accounts``; a receiver that raises rolls the whole closure back, so an account is never
# half closed.
account_closing = Signal()

# Sent, inside its transaction, when ``user`` stops being a member of the organisation
# ``account`` (they leave, are removed, or close their own account). billing forgets a card of
# theirs saved for the organisation's automatic top-up: it is never charged once they are gone.
membership_ending = Signal()

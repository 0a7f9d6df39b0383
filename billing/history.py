"""The billing history as a customer reads it: one line per piece of work, not per ledger row.

A generation writes two or three ledger lines (its hold, then at its end the hold's release and
the charge for what was delivered). The history shows one line for them, with their net amount,
and folds the lines themselves under it. This is presentation only: the ledger stays
append-only and untouched, and the lines are grouped by their ``reference`` as they are read.

Other lines (a grant, a top-up, a promotion code, a reversal...) are one line each.

``billing`` knows nothing about images, so it cannot say where a reference's page is: the app
that does registers a linker (``link_references``), which maps the references of a page to URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import CharField, F, Max, Q, QuerySet, Value
from django.db.models.functions import Cast, Concat

from .models import LedgerEntry, LedgerKind

# The kinds a piece of work writes under its reference (HOLD and SETTLE in moves.py).
WORK_KINDS = (LedgerKind.RESERVE, LedgerKind.RELEASE, LedgerKind.CHARGE)
_ORDER_IN_WORK: dict[str, int] = {
    LedgerKind.RESERVE: 0,
    LedgerKind.RELEASE: 1,
    LedgerKind.CHARGE: 2,
}

# (owner account, references) -> {reference: URL of its page}, for the references it knows.
Linker = Callable[[Any, Sequence[str]], Mapping[str, str]]
_linkers: list[Linker] = []


def link_references(linker: Linker) -> None:
    """Register ``linker`` (once, from an app's ``ready``)."""
    if linker not in _linkers:
        _linkers.append(linker)


@dataclass
class StatementLine:
    """One line of the history: one ledger row, or a piece of work's rows together."""

    created_at: datetime
    kind: str
    label: str
    amount_credits: int
    balance_after_credits: int
    description: str
    reference: str = ""
    url: str = ""
    # The ledger rows folded under a piece of work's line, oldest first (empty for a row alone).
    parts: list[LedgerEntry] = field(default_factory=list)

    @property
    def held(self) -> bool:
        """A piece of work still running: its hold taken, not yet settled."""
        return bool(self.parts) and all(p.kind == LedgerKind.RESERVE for p in self.parts)


def _grouped(entries: QuerySet[LedgerEntry]) -> QuerySet[Any]:
    """One row per line of the history: its group (the reference of a piece of work's rows, a
    row's own id otherwise) and its newest row's id, newest first."""
    group = Concat(Value("entry:"), Cast("id", CharField()))
    work = Q(kind__in=WORK_KINDS) & ~Q(reference="")
    return (
        entries.filter(work)
        .annotate(group=F("reference"))
        .values("group")
        .annotate(last_id=Max("id"))
        # No ordering in the parts (SQLite refuses one inside a UNION): the whole is ordered.
        .order_by()
        .union(
            entries.exclude(work)
            .annotate(group=group)
            .values("group")
            .annotate(last_id=Max("id"))
            .order_by(),
            all=True,
        )
        .order_by("-last_id")
    )


def page(owner: Any, number: Any, per_page: int) -> tuple[Page[Any], list[StatementLine]]:
    """Page ``number`` of the history of ``owner`` (an accounts.Account), ``per_page`` lines,
    and its lines."""
    entries = LedgerEntry.objects.filter(account__owner=owner)
    found = Paginator(_grouped(entries), per_page).get_page(number)
    groups = [row["group"] for row in found.object_list]
    references = [g for g in groups if not g.startswith("entry:")]
    ids = [int(g.removeprefix("entry:")) for g in groups if g.startswith("entry:")]
    rows = entries.filter(
        Q(id__in=ids) | Q(reference__in=references, kind__in=WORK_KINDS)
    ).order_by("id")
    by_group: dict[str, list[LedgerEntry]] = {}
    for row in rows:
        key = row.reference if row.reference in references and row.kind in WORK_KINDS else ""
        by_group.setdefault(key or f"entry:{row.pk}", []).append(row)
    urls = _urls(owner, references)
    lines = [_line(by_group[g], urls.get(g, "")) for g in groups if g in by_group]
    return found, lines


def _urls(owner: Any, references: Sequence[str]) -> dict[str, str]:
    urls: dict[str, str] = {}
    for linker in _linkers:
        if references:
            urls.update(linker(owner, references))
    return urls


def _line(rows: list[LedgerEntry], url: str) -> StatementLine:
    newest = rows[-1]
    if newest.kind not in WORK_KINDS or not newest.reference:
        return StatementLine(
            created_at=newest.created_at,
            kind=newest.kind,
            label=newest.get_kind_display(),
            amount_credits=newest.amount_credits,
            balance_after_credits=newest.balance_after_credits,
            description=newest.description,
            reference=newest.reference,
        )
    parts = sorted(rows, key=lambda r: (r.created_at, _ORDER_IN_WORK.get(r.kind, 3), r.pk))
    charge = next((r for r in parts if r.kind == LedgerKind.CHARGE), None)
    hold = next((r for r in parts if r.kind == LedgerKind.RESERVE), None)
    settled = any(r.kind == LedgerKind.RELEASE for r in parts)
    # The charge says what was delivered and how it was priced; before it, the hold says what
    # was asked for.
    described = charge or hold or newest
    description = described.description
    if settled and charge is None:
        description = f"Not charged: {hold.description if hold else newest.description}"
    return StatementLine(
        created_at=parts[-1].created_at,
        kind="charge" if settled else "reserve",
        label="Generation" if settled else "Held",
        amount_credits=sum(r.amount_credits for r in parts),
        balance_after_credits=parts[-1].balance_after_credits,
        description=description,
        reference=newest.reference,
        url=url,
        parts=parts,
    )

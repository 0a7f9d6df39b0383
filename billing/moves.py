"""Every money move, defined once, as data.

A move changes one account's balance and appends the ledger lines that explain the change, in
one transaction. What it writes is said here and nowhere else: each line's kind (whose sign says
whether it adds or takes), which of the move's named quantities it carries, its idempotency key
and its description. The balance moves by the sum of the lines, and each line's
``balance_after_credits`` is the running balance after it, in the order the lines are listed.

Two implementations are built from these definitions: the ORM's (``billing.services``, on every
database) and PostgreSQL's single-statement form (``billing.statements``), which the generation
hot path composes with its own writes. A new kind of line is a new ``Line`` here (and, if its
figure is new, a new quantity in ``billing.pricing``); neither implementation changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from .models import LedgerEntry, LedgerKind

Kind = LedgerEntry.Kind

# Ledger columns are bounded: a description longer than this is cut, in both implementations.
DESCRIPTION_MAX_CHARS = LedgerEntry._meta.get_field("description").max_length or 255


@dataclass(frozen=True)
class Line:
    """One ledger line a move writes.

    ``quantity`` names the figure it carries (its size: the kind gives the sign; a kind that goes
    either way carries the figure as it is). ``key`` and ``description`` are templates over the
    move's texts (``{reference}``, ``{description}``, ``{key}``, ``{charged_as}``).
    """

    kind: LedgerKind
    quantity: str
    key: str
    description: str = "{description}"
    # Written only when its quantity is not zero (a charge for nothing delivered is no line).
    optional: bool = False

    @property
    def sign(self) -> int:
        """The sign of the line's amount (a kind that goes either way: the quantity's own)."""
        return Kind.sign_of(self.kind) or 1

    def amount(self, quantities: Mapping[str, int]) -> int:
        return self.sign * quantities[self.quantity]

    def written(self, quantities: Mapping[str, int]) -> bool:
        return not self.optional or quantities[self.quantity] != 0


@dataclass(frozen=True)
class Move:
    """A change of one balance and the lines that explain it.

    ``unless_owing``: refused while the account owes credits after a refund or dispute.
    ``settles``: the move closes an earlier one on the same reference, which must have been
    written with the same quantities, and it happens at most once.
    Every move is refused, with nothing written, if it would take the balance below zero.
    """

    name: str
    lines: tuple[Line, ...]
    unless_owing: bool = False
    settles: Move | None = None

    @cached_property
    def quantities(self) -> tuple[str, ...]:
        names = [line.quantity for line in self.lines]
        if self.settles is not None:
            names += self.settles.quantities
        return tuple(dict.fromkeys(names))

    def delta(self, quantities: Mapping[str, int]) -> int:
        """What the move adds to the balance (negative: takes)."""
        return sum(line.amount(quantities) for line in self.lines)

    def check(self, quantities: Mapping[str, int]) -> None:
        missing = set(self.quantities) - set(quantities)
        if missing:
            raise ValueError(f"{self.name} needs {', '.join(sorted(missing))}")
        for line in self.lines:
            # A signed kind carries a size; only a kind that goes either way takes a sign.
            if Kind.sign_of(line.kind) and quantities[line.quantity] < 0:
                raise ValueError(f"{self.name}: {line.quantity} must not be negative")


@dataclass(frozen=True)
class Entry:
    """A line as written: what the ORM inserts and the statement's SELECT yields."""

    kind: str
    amount_credits: int
    balance_after_credits: int
    idempotency_key: str
    description: str


def render(template: str, texts: Mapping[str, str]) -> str:
    """A key or description template with the move's texts in place. Texts are inserted as they
    are: a ``{`` in a customer's text is never read as a placeholder."""
    out: list[str] = []
    rest = template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        name, _, rest = tail.partition("}")
        out += [head, texts[name]]
    out.append(rest)
    return "".join(out)


def entries(
    move: Move, quantities: Mapping[str, int], texts: Mapping[str, str], balance_after: int
) -> list[Entry]:
    """The lines ``move`` writes, given the balance once the whole move is made: each line's
    balance is that balance less what the lines after it moved."""
    written = [line for line in move.lines if line.written(quantities)]
    result: list[Entry] = []
    later = sum(line.amount(quantities) for line in written)
    for line in written:
        later -= line.amount(quantities)
        result.append(
            Entry(
                kind=str(line.kind),
                amount_credits=line.amount(quantities),
                balance_after_credits=balance_after - later,
                idempotency_key=render(line.key, texts),
                description=render(line.description, texts)[:DESCRIPTION_MAX_CHARS],
            )
        )
    return result


# - The moves ------------------------------------------------------------------------------------

# A generation's credits are held when it starts, with everything it asked for priced ...
HOLD = Move(
    "hold",
    lines=(Line(Kind.RESERVE, "held_credits", key="{reference}:reserve"),),
    unless_owing=True,
)

# ... and at its end the hold is released and what was delivered charged, in one transaction:
# the release first (so its balance is the one before the charge), then the charge.
SETTLE = Move(
    "settle",
    lines=(
        Line(
            Kind.RELEASE,
            "held_credits",
            key="{reference}:release",
            description="Released hold: {description}",
        ),
        # ``charged_as``: how the charge was priced (``Quote.charged_as``), or nothing.
        Line(
            Kind.CHARGE,
            "charged_credits",
            key="{reference}:charge",
            description="{description}{charged_as}",
            optional=True,
        ),
    ),
    settles=HOLD,
)

# Credits coming in: a grant, a card top-up, a promotion code, a reversal undone (the refund
# failed, the dispute was won). Once per idempotency key.
CREDIT = {
    kind: Move(kind, lines=(Line(kind, "credits", key="{key}"),))
    for kind in (Kind.GRANT, Kind.TOP_UP, Kind.PROMO, Kind.REFUND, Kind.REINSTATED)
}

# Credits arriving while the account owes some pay what it owes first.
DEBT_PAYMENT = Move(
    "debt_payment", lines=(Line(Kind.DEBT_PAYMENT, "paid_credits", key="{key}:debt"),)
)

# A refunded or disputed card payment: its credits taken back, as far as the balance goes.
REVERSAL = Move("reversal", lines=(Line(Kind.REVERSAL, "taken_credits", key="{key}"),))

# An operator's correction, either way.
ADJUSTMENT = Move("adjustment", lines=(Line(Kind.ADJUSTMENT, "credits", key="{key}"),))

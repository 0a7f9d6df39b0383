"""The billing history: one line per generation (its net, the hold and release folded under
it), one per other move, paged by lines; the ledger itself untouched."""

from __future__ import annotations

from billing import history, services
from billing.models import LedgerEntry


def run(user, number: int, *, held: int = 80, charged: int = 40) -> None:
    """A generation's money: its hold, then its settlement."""
    hold(user, number, held=held)
    services.settle(
        user.personal_account.pk,
        {"held_credits": held, "charged_credits": charged},
        reference=f"gen:{number}",
        description=f"{charged // 40} of 2 images (gen_{number})",
    )


def hold(user, number: int, *, held: int = 80) -> None:
    services.hold(user.personal_account.pk, {"held_credits": held}, reference=f"gen:{number}",
        description=f"2 x seedream-4-0 (gen_{number})",
    )  # fmt: skip


def test_a_generation_is_one_line_with_its_net_and_its_steps_under_it(owner):
    run(owner, 1)

    _, lines = history.page(owner.personal_account, 1, 50)

    generation, grant = lines
    assert (generation.label, generation.amount_credits) == ("Generation", -40)
    assert generation.balance_after_credits == 960
    assert generation.description == "1 of 2 images (gen_1)"
    assert [(p.kind, p.amount_credits) for p in generation.parts] == [
        ("reserve", -80), ("release", 80), ("charge", -40),
    ]  # fmt: skip
    assert (grant.label, grant.amount_credits, grant.parts) == ("Grant", 1000, [])
    assert LedgerEntry.objects.count() == 4  # the ledger keeps every line


def test_a_running_generation_is_a_held_line_and_one_that_delivered_nothing_says_so(owner):
    hold(owner, 1)
    run(owner, 2, charged=0)

    _, lines = history.page(owner.personal_account, 1, 50)

    nothing, running, _ = lines
    assert (running.label, running.amount_credits, running.held) == ("Held", -80, True)
    assert (nothing.label, nothing.amount_credits) == ("Generation", 0)
    assert nothing.description == "Not charged: 2 x seedream-4-0 (gen_2)"


def test_interleaved_generations_each_keep_their_own_lines(owner):
    hold(owner, 1)
    hold(owner, 2)
    run(owner, 3)
    services.settle(owner.personal_account.pk,
                    {"held_credits": 80, "charged_credits": 80}, reference="gen:1",
                    description="2 of 2 (gen_1)")  # fmt: skip

    _, lines = history.page(owner.personal_account, 1, 50)

    assert [(line.reference, line.amount_credits) for line in lines] == [
        ("gen:1", -80), ("gen:3", -40), ("gen:2", -80), ("", 1000),
    ]  # fmt: skip
    assert lines[0].balance_after_credits == services.balance_credits(owner.personal_account)


def test_pages_count_lines_not_ledger_rows(owner):
    for number in range(1, 61):
        run(owner, number, held=2, charged=1)

    first, first_lines = history.page(owner.personal_account, 1, 50)
    _, second_lines = history.page(owner.personal_account, 2, 50)

    assert first.paginator.num_pages == 2
    assert len(first_lines) == 50 and len(second_lines) == 11  # 60 generations and the grant
    assert first_lines[0].reference == "gen:60"
    assert all(len(line.parts) == 3 for line in first_lines)
    assert second_lines[-1].label == "Grant"


def test_only_the_owners_lines(owner, outsider):
    run(outsider, 1)

    _, lines = history.page(owner.personal_account, 1, 50)

    assert [line.label for line in lines] == ["Grant"]

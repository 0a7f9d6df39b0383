"""Every user has one personal account, which they own: made with the user, and by the
migration for users made before accounts existed. Roles say who may do what."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection
from django.db.migrations.executor import MigrationExecutor

from accounts import services
from accounts.models import Account, Membership, Role
from accounts.permissions import Action, role_may

pytestmark = pytest.mark.smoke


def test_a_new_user_owns_a_personal_account(user_factory):
    user = user_factory("ann@example.com")

    account = Account.objects.get(personal_owner=user)

    assert account.kind == "personal"
    assert services.role_in(user, account) == Role.OWNER
    assert services.personal_account(user) == account  # one, however often asked
    assert str(account) == "ann@example.com (personal)"


def test_a_user_has_one_personal_account_and_a_personal_account_has_an_owner(user_factory):
    user = user_factory()
    with pytest.raises(IntegrityError):
        Account.objects.create(kind="personal", personal_owner=user)


def test_an_organisation_has_a_name_and_no_personal_owner(db):
    with pytest.raises(IntegrityError):
        Account.objects.create(kind="organisation", name="")


def test_a_non_member_or_inactive_user_has_no_role(user_factory):
    ann, bob = user_factory(), user_factory()
    account = services.personal_account(ann)
    assert services.role_in(bob, account) is None
    ann.is_active = False
    assert services.role_in(ann, account) is None


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.OWNER, set(Action)),
        (Role.DEVELOPER, {"view_usage", "use_playground", "manage_keys", "manage_webhooks"}),
        (Role.READER, {"view_usage"}),
        (None, set()),
    ],
)
def test_what_each_role_may_do(role, allowed):
    assert {action for action in Action if role_may(role, action)} == set(allowed)


@pytest.fixture
def executor(transactional_db):
    executor = MigrationExecutor(connection)
    try:
        yield executor
    finally:
        # Left fully migrated for the flush and the tests after this one.
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_migration_gives_earlier_users_their_personal_accounts(executor, user_factory):
    later = user_factory("later@example.com")  # made with its account: left as it is
    executor.migrate([("accounts", "0003_accounts_and_memberships")])
    old = executor.loader.project_state(("accounts", "0003_accounts_and_memberships")).apps
    earlier = old.get_model("accounts", "User").objects.create(email="early@example.com")

    executor.loader.build_graph()
    executor.migrate([("accounts", "0004_personal_accounts")])

    account = Account.objects.get(personal_owner_id=earlier.pk)
    assert account.kind == "personal"
    assert list(Membership.objects.filter(account=account).values_list("user_id", "role")) == [
        (earlier.pk, "owner")
    ]
    assert Account.objects.filter(personal_owner=later).count() == 1

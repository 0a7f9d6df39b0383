"""The account a browser request acts for (accounts.current): the personal account unless the
session chose an organisation the user is still a member of, checked on every request."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from accounts import current
from accounts import organisations as orgs
from accounts.models import Membership, Role
from accounts.permissions import Action
from accounts.services import personal_account

pytestmark = pytest.mark.smoke


def request_for(user, session=None):
    """A request of ``user``'s, in ``session`` (a browser's session outlives its requests)."""
    request = RequestFactory().get("/dashboard/")
    request.user = user
    request.session = session if session is not None else SessionStore()
    return request


@pytest.fixture
def ann(user_factory):
    return user_factory("ann@example.com")


@pytest.fixture
def acme(ann):
    return orgs.create_organisation(ann, "Acme")


def test_without_a_choice_it_is_the_personal_account_and_its_owner(ann):
    request = request_for(ann)

    assert current.current_account(request) == personal_account(ann)
    assert current.current_role(request) == Role.OWNER


def test_switching_makes_the_organisation_current_for_the_rest_of_the_session(ann, acme):
    session = SessionStore()
    assert current.switch_to(request_for(ann, session), acme.pk) == acme

    later = request_for(ann, session)
    assert current.current_account(later) == acme
    assert current.current_membership(later).role == Role.OWNER


def test_it_asks_the_database_once_per_request(ann, acme):
    session = SessionStore()
    current.switch_to(request_for(ann, session), acme.pk)
    request = request_for(ann, session)

    with CaptureQueriesContext(connection) as queries:
        current.current_account(request)
        current.current_role(request)
        current.require(request, Action.MANAGE_KEYS)

    assert len(queries) == 1


def test_a_removed_member_is_back_in_their_personal_account_at_their_next_request(
    ann, acme, user_factory
):
    bob = user_factory("bob@example.com")
    member = Membership.objects.create(account=acme, user=bob, role=Role.DEVELOPER)
    session = SessionStore()
    current.switch_to(request_for(bob, session), acme.pk)

    orgs.remove_member(member)
    request = request_for(bob, session)

    assert current.current_account(request) == personal_account(bob)
    assert current.SESSION_KEY not in session  # the stale choice is forgotten


def test_a_choice_of_an_account_that_is_not_theirs_is_forgotten(ann, acme, user_factory):
    bob = user_factory("bob@example.com")
    session = SessionStore()
    session[current.SESSION_KEY] = acme.pk  # as if tampered with, or left from someone else

    assert current.current_account(request_for(bob, session)) == personal_account(bob)
    assert current.SESSION_KEY not in session


@pytest.mark.parametrize("account_id", ["nonsense", "", "99999999999999999999999", None])
def test_a_garbled_choice_falls_back_to_the_personal_account(ann, account_id):
    session = SessionStore()
    session[current.SESSION_KEY] = account_id

    assert current.current_account(request_for(ann, session)) == personal_account(ann)


def test_switching_to_an_account_one_is_not_a_member_of_is_404(ann, acme, user_factory):
    bob = user_factory("bob@example.com")
    session = SessionStore()

    for account_id in (acme.pk, personal_account(ann).pk, 10**9, "x", ""):
        with pytest.raises(Http404):
            current.switch_to(request_for(bob, session), account_id)
    assert current.SESSION_KEY not in session


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        (Role.READER, Action.VIEW_USAGE, True),
        (Role.READER, Action.MANAGE_KEYS, False),
        (Role.DEVELOPER, Action.MANAGE_KEYS, True),
        (Role.DEVELOPER, Action.MANAGE_MEMBERS, False),
        (Role.OWNER, Action.MANAGE_BILLING, True),
    ],
)
def test_require_lets_a_role_do_what_it_may_and_refuses_the_rest(
    acme, user_factory, role, action, allowed
):
    member = user_factory()
    Membership.objects.create(account=acme, user=member, role=role)
    request = request_for(member)
    current.switch_to(request, acme.pk)

    if allowed:
        assert current.require(request, action) == acme
    else:
        with pytest.raises(PermissionDenied):
            current.require(request, action)

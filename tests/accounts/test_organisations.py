"""Organisation pages over HTTP: making one, switching account, the members page, roles,
removing and leaving. An owner, a developer, a reader and an outsider each try their hand."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts import current
from accounts import organisations as orgs
from accounts.models import Account, Membership, Role
from tests.support.accounts import working_in

pytestmark = pytest.mark.smoke

LIST = "/dashboard/organisations/"
SWITCH = "/dashboard/organisations/switch/"
MEMBERS = "/dashboard/organisations/members/"
LEAVE = "/dashboard/organisations/members/leave/"


def role_url(membership: Membership) -> str:
    return f"/dashboard/organisations/members/{membership.pk}/role/"


def remove_url(membership: Membership) -> str:
    return f"/dashboard/organisations/members/{membership.pk}/remove/"


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def signed_in(user, account=None) -> Client:
    return working_in(Client(), user, account)


@pytest.fixture
def ann(user_factory):
    return user_factory("ann@example.com")


@pytest.fixture
def acme(ann):
    return orgs.create_organisation(ann, "Acme")


@pytest.fixture
def team(acme, user_factory):
    """Acme's developer and reader, besides Ann its owner."""
    return {
        role: Membership.objects.create(
            account=acme, user=user_factory(f"{role}@example.com"), role=role
        )
        for role in (Role.DEVELOPER, Role.READER)
    }


# Making an organisation.


def test_a_customer_makes_an_organisation_owns_it_and_works_in_it(ann):
    client = signed_in(ann)

    response = client.post(LIST, {"name": "  Acme Studio  "})

    assert response.status_code == 302 and response["Location"] == MEMBERS
    acme = Account.objects.get(kind="organisation")
    assert acme.name == "Acme Studio"  # stripped
    assert list(acme.memberships.values_list("user__email", "role")) == [
        ("ann@example.com", "owner")
    ]
    page = client.get(MEMBERS).content.decode()
    assert "Members of Acme Studio" in page
    assert "Send invitation" in page


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "This field is required."),
        ("     ", "This field is required."),
        ("x" * 101, "Ensure this value has at most 100 characters (it has 101)."),
    ],
)
def test_a_bad_name_makes_nothing_and_says_why(ann, name, error):
    client = signed_in(ann)

    response = client.post(LIST, {"name": name})

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Account.objects.filter(kind="organisation").exists()


def test_a_name_of_100_characters_is_fine(ann):
    signed_in(ann).post(LIST, {"name": "y" * 100})

    assert Account.objects.get(kind="organisation").name == "y" * 100


def test_the_list_shows_the_personal_account_and_each_organisation_with_the_role(
    ann, acme, user_factory
):
    other = orgs.create_organisation(user_factory(), "Globex")
    Membership.objects.create(account=other, user=ann, role=Role.READER)
    orgs.create_organisation(user_factory(), "Initech")  # not Ann's

    page = signed_in(ann).get(LIST).content.decode()

    assert "Personal" in page and "Acme" in page and "Globex" in page
    assert "Reader" in page
    assert "Initech" not in page


def test_the_pages_ask_a_visitor_to_sign_in(client):
    for url in (LIST, MEMBERS):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


# Switching.


def test_switching_goes_back_to_the_page_it_was_asked_from(ann, acme):
    client = signed_in(ann)

    response = client.post(SWITCH, {"account": acme.pk, "next": "/dashboard/usage/?status=ok"})

    assert response["Location"] == "/dashboard/usage/?status=ok"
    assert said(response) == ["You are now working in Acme."]
    assert client.session[current.SESSION_KEY] == acme.pk


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "javascript:alert(1)", "dashboard", ""]
)
def test_switching_never_sends_anyone_off_the_site(ann, acme, target):
    response = signed_in(ann).post(SWITCH, {"account": acme.pk, "next": target})

    assert response["Location"] == "/dashboard/"


def test_switching_to_an_organisation_one_is_not_in_is_404_and_changes_nothing(acme, user_factory):
    client = signed_in(user_factory("outsider@example.com"))

    for account in (acme.pk, "nonsense", "", "-1", str(2**64)):
        assert client.post(SWITCH, {"account": account}).status_code == 404
    assert current.SESSION_KEY not in client.session
    assert "Acme" not in client.get(MEMBERS).content.decode()


def test_switching_is_a_post_with_a_csrf_token(ann, acme):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ann)

    assert client.get(SWITCH, {"account": acme.pk}).status_code == 405
    assert client.post(SWITCH, {"account": acme.pk}).status_code == 403
    assert current.SESSION_KEY not in client.session


# The members page.


def test_a_personal_account_has_no_members_page_but_says_so(ann):
    response = signed_in(ann).get(MEMBERS)

    assert response.status_code == 200
    assert "Your personal account has no members" in response.content.decode()


def test_developers_and_readers_see_who_is_in_it_but_cannot_change_it(acme, team):
    for membership in team.values():
        page = signed_in(membership.user, acme).get(MEMBERS).content.decode()
        assert "ann@example.com" in page and "reader@example.com" in page
        assert "Send invitation" not in page
        assert "/role/" not in page and "/remove/" not in page
        assert "Leave Acme" in page


def test_the_navigation_shows_the_current_account_and_offers_the_others(ann, acme):
    client = signed_in(ann, acme)

    page = client.get("/dashboard/").content.decode()

    assert '<span class="switcher-name">Acme</span>' in page
    assert '<span class="switcher-name">Personal</span>' in page
    assert f'href="{MEMBERS}"' in page and f'href="{LIST}"' in page


# Roles.


def test_an_owner_changes_a_role(ann, acme, team):
    reader = team[Role.READER]

    response = signed_in(ann, acme).post(role_url(reader), {"role": "developer"})

    assert said(response)[-1] == "reader@example.com is now developer."
    reader.refresh_from_db()
    assert reader.role == Role.DEVELOPER


def test_a_developer_or_reader_cannot_change_roles_invite_or_remove(acme, team):
    owner = Membership.objects.get(account=acme, role=Role.OWNER)
    for membership in team.values():
        client = signed_in(membership.user, acme)
        assert client.post(role_url(membership), {"role": "owner"}).status_code == 403
        assert client.post(remove_url(owner)).status_code == 403
    assert set(acme.memberships.values_list("role", flat=True)) == {
        "owner",
        "developer",
        "reader",
    }


def test_the_only_owner_cannot_be_demoted_and_is_told_why(ann, acme):
    me = Membership.objects.get(account=acme, user=ann)

    response = signed_in(ann, acme).post(role_url(me), {"role": "reader"})

    assert said(response)[-1] == (
        "ann@example.com is the only owner: make someone else an owner first."
    )
    me.refresh_from_db()
    assert me.role == Role.OWNER


def test_with_a_second_owner_the_first_may_step_down(ann, acme, team):
    client = signed_in(ann, acme)
    client.post(role_url(team[Role.DEVELOPER]), {"role": "owner"})

    client.post(role_url(Membership.objects.get(account=acme, user=ann)), {"role": "reader"})

    assert Membership.objects.get(account=acme, user=ann).role == Role.READER


def test_a_bad_role_changes_nothing(ann, acme, team):
    response = signed_in(ann, acme).post(role_url(team[Role.READER]), {"role": "admin"})

    assert said(response)[-1] == "Choose owner, developer or reader."
    assert Membership.objects.get(pk=team[Role.READER].pk).role == Role.READER


def test_members_of_another_organisation_are_not_found(ann, acme, user_factory):
    globex = orgs.create_organisation(user_factory("gus@example.com"), "Globex")
    theirs = Membership.objects.get(account=globex)

    client = signed_in(ann, acme)

    assert client.post(role_url(theirs), {"role": "reader"}).status_code == 404
    assert client.post(remove_url(theirs)).status_code == 404
    assert Membership.objects.get(pk=theirs.pk).role == Role.OWNER


# Removing and leaving.


def test_a_removed_member_loses_the_organisation_at_their_next_request(ann, acme, team):
    developer = team[Role.DEVELOPER]
    theirs = signed_in(developer.user, acme)

    response = signed_in(ann, acme).post(remove_url(developer))

    assert said(response)[-1] == (
        "developer@example.com is no longer a member. The keys they made keep working."
    )
    page = theirs.get(MEMBERS).content.decode()
    assert "Your personal account has no members" in page
    assert "Acme" not in theirs.get("/dashboard/").content.decode()
    assert theirs.post(SWITCH, {"account": acme.pk}).status_code == 404


def test_anyone_may_leave(acme, team):
    reader = team[Role.READER]
    client = signed_in(reader.user, acme)

    response = client.post(LEAVE)

    assert response["Location"] == LIST
    assert said(response)[-1] == "You have left Acme."
    assert not Membership.objects.filter(pk=reader.pk).exists()
    assert "Your personal account" in client.get(MEMBERS).content.decode()


def test_the_only_owner_cannot_leave_or_remove_themselves(ann, acme, team):
    client = signed_in(ann, acme)
    me = Membership.objects.get(account=acme, user=ann)

    for url in (LEAVE, remove_url(me)):
        response = client.post(url)
        assert said(response)[-1] == (
            "You are the only owner: make someone else an owner before you leave."
        )
    assert Membership.objects.filter(pk=me.pk).exists()


def test_nobody_leaves_their_personal_account(ann):
    assert signed_in(ann).post(LEAVE).status_code == 404
    assert Membership.objects.filter(user=ann).count() == 1


def test_member_changes_are_posts(ann, acme, team):
    client = signed_in(ann, acme)

    assert client.get(LEAVE).status_code == 405
    assert client.get(remove_url(team[Role.READER])).status_code == 405
    assert client.get(role_url(team[Role.READER])).status_code == 405

"""Invitations by email: an owner invites an address with a role; whoever holds the link signs
in (or up) as that address, verified, and joins. The token is only ever in the email."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts import current
from accounts import organisations as orgs
from accounts.models import Invitation, Membership, Role
from tests.support.accounts import working_in

pytestmark = pytest.mark.smoke

SWITCH = "/dashboard/organisations/switch/"
MEMBERS = "/dashboard/organisations/members/"
INVITE = "/dashboard/organisations/members/invite/"
LINK = re.compile(r"http://\S+/dashboard/organisations/invitations/([A-Za-z0-9_-]+)/")


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def signed_in(user, account=None) -> Client:
    return working_in(Client(), user, account)


def verified(user_factory, email: str, *, is_verified: bool = True):
    user = user_factory(email)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=is_verified)
    return user


@pytest.fixture
def ann(user_factory):
    return verified(user_factory, "ann@example.com")


@pytest.fixture
def acme(ann):
    return orgs.create_organisation(ann, "Acme")


@pytest.fixture
def owner_client(ann, acme):
    return signed_in(ann, acme)


def invite(client: Client, email: str = "bob@example.com", role: str = "developer"):
    return client.post(INVITE, {"email": email, "role": role})


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


# Inviting.


def test_an_owner_invites_an_address_and_it_gets_an_email_with_the_link(owner_client, acme):
    response = invite(owner_client, "Bob@Example.com", "reader")

    assert said(response)[-1] == (
        "An invitation to join as reader is on its way to Bob@Example.com. It works for 7 days."
    )
    invitation = Invitation.objects.get()
    assert (invitation.account, invitation.email, invitation.role) == (
        acme,
        "Bob@Example.com",
        "reader",
    )
    assert invitation.invited_by.email == "ann@example.com"
    assert timedelta(days=6, hours=23) < invitation.expires_at - timezone.now() <= timedelta(7)
    [message] = mail.outbox
    assert message.to == ["Bob@Example.com"]
    assert message.subject == "[Seedream API] Join Acme on Seedream API"
    assert "ann@example.com invites you to join the organisation Acme" in message.body
    assert LINK.search(message.body)
    html = message.alternatives[0][0]
    assert LINK.search(html) and "Join Acme" in html
    page = owner_client.get(MEMBERS).content.decode()
    assert "Pending invitations" in page and "Bob@Example.com" in page


def test_the_token_is_kept_only_as_its_hash(owner_client):
    invite(owner_client)
    token = LINK.search(mail.outbox[0].body).group(1)

    invitation = Invitation.objects.get()
    assert len(token) >= 43  # 32 random bytes
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_invitation")
        row = cursor.fetchone()
    assert all(token not in str(value) for value in row)
    assert token not in owner_client.get(MEMBERS).content.decode()


@pytest.mark.parametrize(
    ("email", "role", "error"),
    [
        ("not an address", "developer", "Enter a valid email address."),
        ("", "developer", "This field is required."),
        ("bob@example.com", "admin", "Select a valid choice. admin is not one of"),
    ],
)
def test_a_bad_invitation_sends_nothing_and_says_why(owner_client, email, role, error):
    response = invite(owner_client, email, role)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_a_member_is_not_invited_again(owner_client, acme, user_factory):
    bob = verified(user_factory, "bob@example.com")
    Membership.objects.create(account=acme, user=bob, role=Role.READER)

    for email in ("bob@example.com", "BOB@example.com", "ann@example.com"):
        response = invite(owner_client, email)
        assert said(response)[-1] == f"{email} is already a member of Acme."
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_a_member_is_known_by_any_verified_address_of_theirs(owner_client, acme, user_factory):
    bob = verified(user_factory, "bob@example.com")
    EmailAddress.objects.create(user=bob, email="robert@example.com", verified=True)
    Membership.objects.create(account=acme, user=bob, role=Role.READER)

    assert said(invite(owner_client, "robert@example.com"))[-1] == (
        "robert@example.com is already a member of Acme."
    )


def test_an_address_with_a_pending_invitation_is_not_sent_a_second(owner_client):
    invite(owner_client, "bob@example.com")

    response = invite(owner_client, "Bob@example.com", "owner")

    assert said(response)[-1] == (
        "Bob@example.com has been invited already. Revoke that invitation to send a new one."
    )
    assert Invitation.objects.count() == 1
    assert len(mail.outbox) == 1


def test_after_a_revoke_or_an_expiry_the_address_may_be_invited_again(owner_client):
    invite(owner_client)
    first = Invitation.objects.get()
    owner_client.post(f"/dashboard/organisations/invitations/{first.pk}/revoke/")
    invite(owner_client)
    Invitation.objects.filter(revoked_at__isnull=True).update(expires_at=timezone.now())

    invite(owner_client)

    assert Invitation.objects.count() == 3
    assert len(mail.outbox) == 3


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.READER])
def test_only_owners_invite(acme, user_factory, role):
    member = verified(user_factory, f"{role}@example.com")
    Membership.objects.create(account=acme, user=member, role=role)

    response = invite(signed_in(member, acme))

    assert response.status_code == 403
    assert not Invitation.objects.exists() and mail.outbox == []


def test_nobody_is_invited_to_a_personal_account(ann):
    assert invite(signed_in(ann)).status_code == 404
    assert not Invitation.objects.exists()


def test_when_the_email_cannot_be_sent_no_invitation_is_left(owner_client, settings):
    settings.EMAIL_BACKEND = "tests.accounts.test_invitations.FailingBackend"

    response = invite(owner_client)

    assert said(response)[-1] == (
        "The invitation could not be emailed to bob@example.com, so none was made. Try again."
    )
    assert not Invitation.objects.exists()


class FailingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("no mail server")


def test_an_owner_revokes_an_invitation_and_its_link_stops_working(owner_client, user_factory):
    invite(owner_client)
    link = path_of(LINK.search(mail.outbox[0].body).group(0))
    invitation = Invitation.objects.get()

    response = owner_client.post(f"/dashboard/organisations/invitations/{invitation.pk}/revoke/")

    assert said(response)[-1] == "The invitation to bob@example.com is withdrawn."
    assert "Pending invitations" in owner_client.get(MEMBERS).content.decode()
    assert "bob@example.com" not in owner_client.get(MEMBERS).content.decode()
    bob = signed_in(verified(user_factory, "bob@example.com"))
    page = bob.get(link)
    assert page.status_code == 403
    assert "This invitation was withdrawn." in page.content.decode()


def test_another_organisations_invitation_cannot_be_revoked(acme, user_factory):
    gus = verified(user_factory, "gus@example.com")
    globex = orgs.create_organisation(gus, "Globex")
    theirs = orgs.invite(globex, gus, "someone@example.com", Role.READER)
    outsider_owner = signed_in(Membership.objects.get(account=acme).user, acme)

    response = outsider_owner.post(f"/dashboard/organisations/invitations/{theirs.pk}/revoke/")

    assert response.status_code == 404
    assert Invitation.objects.get(pk=theirs.pk).revoked_at is None


# Accepting.


@pytest.fixture
def link(owner_client) -> str:
    invite(owner_client, "bob@example.com", "developer")
    found = LINK.search(str(mail.outbox[-1].body))
    assert found is not None
    return path_of(found.group(0))


def test_a_visitor_is_sent_through_sign_in_and_back(client, link):
    response = client.get(link)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={link}"


def test_the_invited_person_joins_with_the_role_and_works_in_the_organisation(
    link, acme, user_factory
):
    bob = verified(user_factory, "BOB@example.com")
    client = signed_in(bob)

    page = client.get(link)
    assert page.status_code == 200
    assert "Join Acme as developer" in page.content.decode()

    response = client.post(link)

    assert response["Location"] == "/dashboard/"
    assert Membership.objects.get(account=acme, user=bob).role == Role.DEVELOPER
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == bob and invitation.accepted_at is not None
    assert client.session[current.SESSION_KEY] == acme.pk
    assert '<span class="switcher-name">Acme</span>' in client.get("/dashboard/").content.decode()
    # Used: the page now says they are in; nobody else can use it.
    assert "You are a member of Acme already." in client.get(link).content.decode()
    carol = signed_in(verified(user_factory, "carol@example.com"))
    assert carol.post(link).status_code == 403


def test_someone_signed_in_as_another_address_is_told_to_sign_in_as_the_invited_one(
    link, acme, user_factory
):
    carol = signed_in(verified(user_factory, "carol@example.com"))

    for response in (carol.get(link), carol.post(link)):
        assert response.status_code == 403
        page = response.content.decode()
        assert "This invitation is for bob@example.com, and you are signed in as " in page
        assert "Sign out, then come back to this invitation" in page
    assert not Membership.objects.filter(account=acme, user__email="carol@example.com").exists()
    assert Invitation.objects.get().accepted_at is None


def test_an_unverified_address_must_be_confirmed_first(link, acme, user_factory):
    bob = signed_in(verified(user_factory, "bob@example.com", is_verified=False))

    response = bob.post(link)

    assert response.status_code == 403
    assert "Confirm your address bob@example.com first" in response.content.decode()
    assert not Membership.objects.filter(account=acme, user__email="bob@example.com").exists()


def test_a_user_whose_login_email_matches_but_has_no_verified_address_cannot_join(
    link, acme, user_factory
):
    # No allauth EmailAddress at all: the address was never shown to be theirs.
    bob = signed_in(user_factory("bob@example.com"))

    assert bob.post(link).status_code == 403
    assert not Membership.objects.filter(account=acme, user__email="bob@example.com").exists()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "This invitation has expired."),
        ({"revoked_at": timezone.now()}, "This invitation was withdrawn."),
    ],
)
def test_an_expired_or_revoked_invitation_is_refused(link, acme, user_factory, change, reason):
    Invitation.objects.update(**change)
    bob = signed_in(verified(user_factory, "bob@example.com"))

    response = bob.post(link)

    assert response.status_code == 403
    assert reason in response.content.decode()
    assert not Membership.objects.filter(account=acme, user__email="bob@example.com").exists()


@pytest.mark.parametrize("token", ["nonsense", "a" * 43, "%00", "x" * 500])
def test_an_unknown_token_is_404(ann, link, token):
    assert signed_in(ann).get(f"/dashboard/organisations/invitations/{token}/").status_code == 404


def test_a_member_who_accepts_keeps_the_role_they_have(link, acme, user_factory):
    bob = verified(user_factory, "bob@example.com")
    Membership.objects.create(account=acme, user=bob, role=Role.OWNER)

    signed_in(bob).post(link)

    assert Membership.objects.get(account=acme, user=bob).role == Role.OWNER
    assert Invitation.objects.get().accepted_by == bob


def test_accepting_is_a_post_with_a_csrf_token(link, acme, user_factory):
    client = Client(enforce_csrf_checks=True)
    client.force_login(verified(user_factory, "bob@example.com"))

    assert client.post(link).status_code == 403

    assert not Membership.objects.filter(account=acme, user__email="bob@example.com").exists()


def test_signing_out_from_the_refusal_comes_back_to_the_invitation(link, user_factory):
    carol = signed_in(verified(user_factory, "carol@example.com"))

    response = carol.post("/accounts/logout/", {"next": link})

    assert response["Location"] == link
    assert carol.get(link)["Location"] == f"/accounts/login/?next={link}"


def test_the_admin_shows_invitations_without_their_token_or_its_hash(link, client, user_factory):
    invitation = Invitation.objects.get()
    client.force_login(user_factory(is_staff=True, is_superuser=True))

    listing = client.get("/admin/accounts/invitation/").content.decode()
    detail = client.get(f"/admin/accounts/invitation/{invitation.pk}/change/").content.decode()

    assert "bob@example.com" in listing and "pending" in listing
    token = link.rstrip("/").rsplit("/", 1)[-1]
    for page in (listing, detail):
        assert token not in page and invitation.token_hash not in page
    assert client.get("/admin/accounts/invitation/add/").status_code == 403
    client.post(
        "/admin/accounts/invitation/",
        {"action": "revoke", "_selected_action": [invitation.pk]},
    )
    assert Invitation.objects.get().status == "revoked"


def test_an_owner_sends_at_most_so_many_invitations_an_hour(owner_client, settings):
    from accounts.views_organisations import INVITATIONS_PER_HOUR

    for number in range(INVITATIONS_PER_HOUR):
        invite(owner_client, f"person{number}@example.com")
        Invitation.objects.update(revoked_at=timezone.now())  # revoked, so the next may go
    refused = invite(owner_client, "one.more@example.com")

    assert said(refused)[-1] == "You have sent many invitations this hour: try again later."
    assert len(mail.outbox) == INVITATIONS_PER_HOUR
    assert not Invitation.objects.filter(email="one.more@example.com").exists()


def test_an_organisation_has_at_most_so_many_invitations_waiting(acme, ann, monkeypatch):
    monkeypatch.setattr(orgs, "MAX_PENDING_INVITATIONS", 2)
    orgs.invite(acme, ann, "one@example.com", Role.READER)
    orgs.invite(acme, ann, "two@example.com", Role.READER)

    with pytest.raises(orgs.Refused, match="has 2 invitations waiting"):
        orgs.invite(acme, ann, "three@example.com", Role.READER)
    assert len(mail.outbox) == 2


def test_no_one_joins_an_organisation_that_closed_with_its_only_member(acme, ann, user_factory):
    from accounts.services import close_account

    orgs.invite(acme, ann, "bob@example.com", Role.OWNER)
    bob = verified(user_factory, "bob@example.com")

    close_account(ann)

    invitation = Invitation.objects.get()
    assert invitation.revoked_at is not None
    assert orgs.why_not(invitation, bob)
    assert not Membership.objects.filter(account=acme).exists()


def test_one_person_belongs_to_at_most_so_many_organisations(ann, acme, monkeypatch):
    monkeypatch.setattr(orgs, "MAX_ORGANISATIONS_PER_PERSON", 2)  # Acme, and one more
    orgs.create_organisation(ann, "Beta")

    response = signed_in(ann).post("/dashboard/organisations/", {"name": "Gamma"})

    assert response.status_code == 400
    assert "the most one person may" in response.content.decode()
    assert Membership.objects.filter(user=ann).count() == 3  # personal, Acme, Beta

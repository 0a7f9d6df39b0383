"""The dashboard acts for the account chosen in the switcher: a member sees and changes that
account's keys, usage, billing and gallery as far as their role allows (a reader cannot make a
key: 403, nothing made); a non-member gets 404 for anything of it; a removed member is back in
their personal account at their next request."""

from __future__ import annotations

import pytest

from accounts.models import Account, Membership, Role
from billing import services as billing
from generation.models import Generation
from keys import services as keys
from keys.models import ApiKey
from tests.support.accounts import working_in

pytestmark = pytest.mark.smoke


@pytest.fixture
def acme(user_factory):
    """Acme, with 2,000 credits: Olga owns it, Dev develops, Rita reads."""
    people = {
        role: user_factory(f"{name}@example.com")
        for role, name in ((Role.OWNER, "olga"), (Role.DEVELOPER, "dev"), (Role.READER, "rita"))
    }
    org = Account.objects.create(kind=Account.Kind.ORGANISATION, name="Acme")
    for role, person in people.items():
        Membership.objects.create(account=org, user=person, role=role)
    billing.grant(org, 2000, description="top-up", idempotency_key="acme")
    return org, people


def test_a_developer_makes_a_key_of_the_organisation_from_the_keys_page(client, acme):
    org, people = acme
    dev = people[Role.DEVELOPER]
    keys.create_key(dev.personal_account, "my own")
    working_in(client, dev, org)

    client.post("/dashboard/keys/", {"name": "ci server", "token": "", "expires": ""})

    made = ApiKey.objects.get(name="ci server")
    assert (made.account, made.user) == (org, dev)
    page = client.get("/dashboard/keys/").content.decode()
    assert "ci server" in page and "my own" not in page


def test_a_reader_cannot_make_a_key_or_open_billing_and_sees_no_link_to_them(client, acme):
    org, people = acme
    working_in(client, people[Role.READER], org)

    listing = client.get("/dashboard/keys/")
    made = client.post("/dashboard/keys/", {"name": "sneaky", "token": "", "expires": ""})
    billing_page = client.get("/dashboard/billing/")
    overview = client.get("/dashboard/")

    assert listing.status_code == made.status_code == billing_page.status_code == 403
    assert "A reader may not manage API keys." in listing.content.decode()
    assert not ApiKey.objects.exists()
    assert overview.status_code == 200 and client.get("/dashboard/usage/").status_code == 200
    nav = overview.content.decode()
    for hidden in ('href="/dashboard/keys/"', 'href="/dashboard/billing/"', "/playground/"):
        assert hidden not in nav
    assert 'href="/dashboard/usage/"' in nav


def test_only_an_owner_opens_the_organisations_billing_page(client, acme):
    org, people = acme
    assert (
        working_in(client, people[Role.DEVELOPER], org).get("/dashboard/billing/").status_code
        == 403
    )
    page = working_in(client, people[Role.OWNER], org).get("/dashboard/billing/")
    assert page.status_code == 200
    assert "2,000" in page.content.decode()


def test_an_outsider_gets_404_for_everything_of_the_organisation(client, acme, owner):
    org, people = acme
    key = keys.create_key(org, "ci", made_by=people[Role.DEVELOPER]).api_key
    generation = Generation.objects.create(
        account=org, user=people[Role.DEVELOPER], model="seedream-4-0", upstream_model="u",
        prompt="p", size="1K", n=1, status="succeeded", deadline_at="2026-12-06T00:00:00Z",
    )  # fmt: skip
    client.force_login(owner)

    assert client.post("/dashboard/organisations/switch/", {"account": org.pk}).status_code == 404
    for path in (
        f"/dashboard/keys/{key.pk}/spend/",
        f"/dashboard/keys/{key.pk}/revoke/",
        f"/dashboard/keys/{key.pk}/limits/",
        f"/dashboard/requests/{generation.public_id}/",
    ):
        assert client.get(path).status_code == 404, path
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_a_removed_member_is_back_in_their_own_account_at_the_next_request(client, acme):
    org, people = acme
    dev = people[Role.DEVELOPER]
    keys.create_key(org, "acme-build-key", made_by=dev)
    working_in(client, dev, org)
    assert "acme-build-key" in client.get("/dashboard/keys/").content.decode()

    Membership.objects.filter(account=org, user=dev).delete()

    page = client.get("/dashboard/keys/").content.decode()
    assert "acme-build-key" not in page
    assert client.get("/dashboard/billing/").status_code == 200  # their own, as its owner


def test_the_overview_shows_the_organisations_balance_to_each_member(client, acme):
    org, people = acme
    for person in people.values():
        page = working_in(client, person, org).get("/dashboard/").content.decode()
        assert "2,000" in page, person


def test_a_reader_sees_a_requests_reference_images_but_not_the_gallery(client, acme):
    import io

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    from generation.models import InputImage

    org, people = acme
    generation = Generation.objects.create(
        account=org, user=people[Role.DEVELOPER], model="seedream-4-0", upstream_model="u",
        prompt="p", size="1K", n=1, status="succeeded", deadline_at="2026-12-06T00:00:00Z",
        params={"references": 1},
    )  # fmt: skip
    picture = io.BytesIO()
    PILImage.new("RGB", (64, 48), "teal").save(picture, "PNG")
    name = default_storage.save("inputs/x/reader.png", ContentFile(picture.getvalue()))
    reference = InputImage.objects.create(
        generation=generation, account=org, index=0, file=name, content_type="image/png",
        width=64, height=48, bytes=len(picture.getvalue()),
    )  # fmt: skip
    working_in(client, people[Role.READER], org)

    page = client.get(f"/dashboard/requests/{generation.public_id}/").content.decode()

    assert f"/dashboard/inputs/{reference.token}/thumbnail/" in page
    assert client.get(f"/dashboard/inputs/{reference.token}/").status_code == 200
    assert client.get(f"/dashboard/inputs/{reference.token}/thumbnail/").status_code == 200
    assert client.get("/dashboard/gallery/").status_code == 403


@pytest.mark.usefixtures("commits_at_once")
def test_a_developers_playground_run_holds_the_organisations_credits(client, acme, sent):
    from tests.support.money import assert_ledger_balanced, ledger_rows

    org, people = acme
    dev = people[Role.DEVELOPER]
    working_in(client, dev, org)
    form = {"prompt": "a paper boat", "model": "seedream-4-0", "size": "2048x2048", "n": "2"}

    response = client.post("/dashboard/playground/", form)

    assert response.status_code == 302
    generation = Generation.objects.get()
    assert (generation.account, generation.user, generation.source) == (org, dev, "playground")
    assert sent == [generation.pk]
    assert assert_ledger_balanced(org) == 2000 - 80  # held until the worker settles it
    assert ledger_rows(dev) == []
    # A reader may not run one.
    working_in(client, people[Role.READER], org)
    assert client.post("/dashboard/playground/", form).status_code == 403
    assert Generation.objects.count() == 1

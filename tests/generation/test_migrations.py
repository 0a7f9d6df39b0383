"""The generation models' move out of the api app keeps an existing install's data and names.

generation 0001 takes the models over in Django's state only, with a RunPython moving their
content types; api 0005 lets them go. A database of the old layout, with rows in it, is migrated
to the latest state here, and everything an install had must come through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, models, transaction
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ProjectState
from django.utils import timezone

from accounts.models import Account, User
from accounts.services import personal_account
from generation.models import AccountRateLimit, ConcurrencySlot, Generation, Image, RateCounter
from keys import services as keys

pytestmark = pytest.mark.smoke

# Before the move: the api app at its last migration with the models, and no generation app.
OLD_NODES = [("api", "0004_fewer_indexes"), ("generation", None)]
MOVED = (Generation, Image, AccountRateLimit, RateCounter, ConcurrencySlot)
ACTIONS = ("add", "change", "delete", "view")


@pytest.fixture
def executor(transactional_db: None) -> Iterator[MigrationExecutor]:
    executor = MigrationExecutor(connection)
    try:
        yield executor
    finally:
        # Whatever the test did, the database is left fully migrated for the flush and the tests
        # after this one, and no content type is remembered from the old layout.
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()


def rows(model: type[models.Model]) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in model._default_manager.values()}


@pytest.mark.django_db(transaction=True)
def test_it_moves_an_installs_generations_to_the_generation_app_with_every_row_and_name(
    executor: MigrationExecutor,
    user_factory: Callable[..., User],
    api_key_factory: Callable[..., keys.IssuedKey],
) -> None:
    owner = user_factory("owner@example.com")
    other = user_factory("other@example.com")
    api_key = api_key_factory(owner).api_key

    # Only the move itself goes back: nothing in another app depends on it.
    going_back = executor.migration_plan(OLD_NODES)
    assert going_back and all(backwards for _, backwards in going_back)
    assert {migration.app_label for migration, _ in going_back} <= {"api", "generation"}
    executor.migrate(OLD_NODES)
    executor.loader.build_graph()
    old = executor.loader.project_state(tuple(executor.loader.applied_migrations)).apps
    assert not [m for m in old.get_models() if m._meta.app_label == "generation"]

    # An install of the old layout, as it would be: content types and permissions under "api",
    # an admin history entry, a user holding one of the permissions.
    OldContentType = old.get_model("contenttypes", "ContentType")
    OldPermission = old.get_model("auth", "Permission")
    OldContentType.objects.filter(app_label="generation").delete()
    content_type_ids, permission_ids = {}, {}
    for model in MOVED:
        name = model._meta.model_name
        content_type, _ = OldContentType.objects.get_or_create(app_label="api", model=name)
        content_type_ids[name] = content_type.pk
        for action in ACTIONS:
            permission, _ = OldPermission.objects.get_or_create(
                content_type=content_type,
                codename=f"{action}_{name}",
                defaults={"name": f"Can {action} {model._meta.verbose_name}"},
            )
            permission_ids[permission.codename] = permission.pk
    old.get_model("accounts", "User").objects.get(pk=owner.pk).user_permissions.add(
        permission_ids["view_generation"]
    )

    now = timezone.now()
    OldGeneration = old.get_model("api", "Generation")
    OldImage = old.get_model("api", "Image")
    delivered = OldGeneration.objects.create(
        user_id=owner.pk, api_key_id=api_key.pk, source="api", status="succeeded",
        model="seedream-4-0", upstream_model="seedream-4-0-250828", prompt="a lighthouse at dusk",
        size="2048x2048", size_tier="2K", n=2, response_format="b64_json",
        params={"seed": 42, "watermark": False, "user": "customer-7"},
        price_per_image_credits=40, reserved_credits=80, charged_credits=80, images_delivered=2,
        http_status=200, idempotency_key="retry-1", request_hash="ab" * 32,
        created_at=now - timedelta(hours=1), started_at=now - timedelta(minutes=59),
        finished_at=now - timedelta(minutes=58), deadline_at=now - timedelta(minutes=55),
        latency_ms=61_250,
    )  # fmt: skip
    OldGeneration.objects.create(
        user_id=owner.pk, source="playground", status="failed", model="seedream-4-0",
        upstream_model="seedream-4-0-250828", prompt="a storm", size="1024x1024", n=1,
        reserved_credits=40, http_status=502, error_code="upstream_error",
        error_message="The upstream did not answer.", attempts=2,
        dispatched_at=now - timedelta(minutes=30), deadline_at=now - timedelta(minutes=20),
    )  # fmt: skip
    OldGeneration.objects.create(
        user_id=other.pk, status="running", model="seedream-4-0",
        upstream_model="seedream-4-0-250828", prompt="still running", size="1024x1024", n=4,
        price_per_image_credits=40, reserved_credits=160, deadline_at=now + timedelta(minutes=5),
    )  # fmt: skip
    for index in range(2):
        OldImage.objects.create(
            generation=delivered, user_id=owner.pk, index=index, file=f"images/g{index}.jpeg",
            width=2048, height=2048, bytes=812_345 + index, created_at=now - timedelta(minutes=58),
        )  # fmt: skip
    old.get_model("api", "AccountRateLimit").objects.create(
        user_id=owner.pk, requests_per_minute=120, concurrent_generations=3, note="ticket 41"
    )
    old.get_model("api", "RateCounter").objects.create(
        bucket=f"rpm:user:{owner.pk}", window_number=29_500_000, count=7
    )
    old.get_model("api", "ConcurrencySlot").objects.create(
        scope=f"user:{other.pk}", holder="req-1", expires_at=now + timedelta(minutes=1)
    )
    history = old.get_model("admin", "LogEntry").objects.create(
        user_id=owner.pk, content_type_id=content_type_ids["generation"],
        object_id=str(delivered.pk), object_repr="gen", action_flag=2, change_message="[]",
    )  # fmt: skip
    before = {model: rows(old.get_model("api", model.__name__)) for model in MOVED}
    assert all(before.values())

    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    executor.loader.build_graph()
    assert not executor.migration_plan(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()

    # Every row, with every value, read through today's models; the columns added since the
    # move hold their defaults.
    # Since then, each row belongs to its user's personal account (accounts 0004, generation
    # 0009): a generation keeps its user as its maker; an image and a custom limit keep only the
    # account.
    after = {model: rows(model) for model in MOVED}
    personal = dict(Account.objects.values_list("personal_owner_id", "pk"))
    for row in after[Generation].values():
        assert row.pop("price_quote") == {}
        assert row.pop("cancel_requested_at") is None
        assert row.pop("spend_window") == ""
        assert row.pop("account_id") == personal[row["user_id"]]
    for model in (Image, AccountRateLimit):
        for pk, row in after[model].items():
            assert row.pop("account_id") == personal[before[model][pk].pop("user_id")]
    for row in after[Image].values():
        assert row.pop("layer") is None
        assert row.pop("showcase") is False
    assert after == before
    assert Generation.objects.get(pk=delivered.pk).images.count() == 2
    assert personal_account(owner).rate_limit_override.note == "ticket 41"

    # The content types moved (the same rows), their permissions and history with them.
    moved = ContentType.objects.filter(pk__in=content_type_ids.values())
    assert sorted(moved.values_list("app_label", "model")) == sorted(
        ("generation", name) for name in content_type_ids
    )
    assert ContentType.objects.get_for_model(Generation).pk == content_type_ids["generation"]
    assert not ContentType.objects.filter(app_label="api", model__in=content_type_ids).exists()
    permissions = Permission.objects.filter(content_type__app_label="generation")
    assert set(permissions.values_list("codename", "pk")) == set(permission_ids.items())
    assert User.objects.get(pk=owner.pk).has_perm("generation.view_generation")
    assert LogEntry.objects.get(pk=history.pk).get_edited_object() == Generation.objects.get(
        pk=delivered.pk
    )

    # New rows still get fresh ids, and the constraints still hold.
    fresh = Generation.objects.create(account=owner.personal_account, user=owner,
        model="seedream-4-0", upstream_model="seedream-4-0-250828",
        prompt="after the move", size="1024x1024", n=1, deadline_at=now + timedelta(minutes=5),
    )  # fmt: skip
    assert fresh.pk > max(before[Generation])
    image = Image.objects.create(
        generation=fresh,
        account=owner.personal_account,
        index=0,
        file="images/new.jpeg",
        width=1,
        height=1,
        bytes=1,
    )
    assert image.pk > max(before[Image])
    with pytest.raises(IntegrityError), transaction.atomic():
        Generation.objects.create(account=owner.personal_account, user=owner,
            idempotency_key="retry-1", model="seedream-4-0",
            upstream_model="seedream-4-0-250828", prompt="again", size="1024x1024", n=1,
            deadline_at=now,
        )  # fmt: skip

    # The database has every constraint and index the models name, and their foreign keys.
    with connection.cursor() as cursor:
        for model in MOVED:
            found = connection.introspection.get_constraints(cursor, model._meta.db_table)
            named = {c.name for c in [*model._meta.constraints, *model._meta.indexes]}
            assert named - found.keys() == set(), model.__name__
            for field in model._meta.concrete_fields:
                if not isinstance(field, models.ForeignKey):
                    continue
                target = (field.target_field.model._meta.db_table, field.target_field.column)
                assert any(
                    c["foreign_key"] == target and c["columns"] == [field.column]
                    for c in found.values()
                ), f"{model.__name__}.{field.name}"

    # Django's state after the move is today's models: nothing left for makemigrations.
    changes = MigrationAutodetector(
        executor.loader.project_state(), ProjectState.from_apps(apps)
    ).changes(graph=executor.loader.graph)
    assert not {label: changes[label] for label in ("api", "generation") if label in changes}


@pytest.mark.django_db(transaction=True)
def test_going_back_before_accounts_is_refused_while_an_organisation_exists(
    executor: MigrationExecutor, user_factory: Callable[..., User]
) -> None:
    maker = user_factory("maker@example.com")
    acme = Account.objects.create(kind=Account.Kind.ORGANISATION, name="Acme")
    key = keys.create_key(acme, "ci", made_by=maker).api_key

    with pytest.raises(RuntimeError, match="Organisations own rows here"):
        executor.migrate([("keys", "0004_spend_controls")])

    # Nothing was undone: the key is still the organisation's.
    assert type(key).objects.get(pk=key.pk).account == acme


@pytest.mark.django_db(transaction=True)
def test_without_organisations_billing_goes_back_to_users_with_every_purchase(
    executor: MigrationExecutor, user_factory: Callable[..., User]
) -> None:
    from billing import services as billing
    from billing.models import Purchase

    owner = user_factory("owner@example.com")
    billing.grant(owner.personal_account, 500, description="gift", idempotency_key="gift")
    # An automatic top-up: no member paid it, so it has no user until going back gives it one.
    auto = Purchase.objects.create(
        owner=owner.personal_account, kind="auto", amount_cents=2000, currency="usd",
        credits=20_000,
    )  # fmt: skip

    executor.migrate([("billing", "0015_invoices_billing_profiles_auto_top_up")])
    executor.loader.build_graph()
    old = executor.loader.project_state(tuple(executor.loader.applied_migrations)).apps

    assert old.get_model("billing", "Purchase").objects.get(pk=auto.pk).user_id == owner.pk
    assert old.get_model("billing", "CreditAccount").objects.get().user_id == owner.pk

"""Every existing user gets their personal account, and is its owner."""

from django.db import migrations


def personal_accounts(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    Account = apps.get_model("accounts", "Account")
    Membership = apps.get_model("accounts", "Membership")
    have = set(Account.objects.filter(kind="personal").values_list("personal_owner_id", flat=True))
    for user in User.objects.exclude(pk__in=have).only("pk", "date_joined").iterator():
        account = Account.objects.create(
            kind="personal", personal_owner_id=user.pk, created_at=user.date_joined
        )
        Membership.objects.create(
            account=account, user_id=user.pk, role="owner", created_at=user.date_joined
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_accounts_and_memberships")]

    operations = [migrations.RunPython(personal_accounts, migrations.RunPython.noop)]

"""Default prices, and the ledger made append-only in the database itself.

The trigger is PostgreSQL's (the production database). Test flushes use TRUNCATE there, which a
row trigger does not see; on SQLite, where flushes use DELETE, the model's own guard is what holds.
"""

from django.db import migrations

# Upstream lists Seedream 4.0 at $0.03 an image; one credit is $0.001 by default.
DEFAULT_PRICES = [
    ("seedream-4-0", "", 40),
    ("seedream-4-0", "4k", 60),
    ("seedream-3-0", "", 35),
]


def seed_prices(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    for model, tier, credits in DEFAULT_PRICES:
        Price.objects.get_or_create(
            model=model, size_tier=tier, defaults={"credits_per_image": credits}
        )


def ledger_guard(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            """
            CREATE OR REPLACE FUNCTION billing_ledger_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'billing_ledgerentry is append-only';
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER billing_ledger_append_only
                BEFORE UPDATE OR DELETE ON billing_ledgerentry
                FOR EACH ROW EXECUTE FUNCTION billing_ledger_append_only();
            """
        )


def drop_ledger_guard(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            "DROP TRIGGER IF EXISTS billing_ledger_append_only ON billing_ledgerentry;"
            "DROP FUNCTION IF EXISTS billing_ledger_append_only();"
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [
        migrations.RunPython(seed_prices, migrations.RunPython.noop),
        migrations.RunPython(ledger_guard, drop_ledger_guard),
    ]

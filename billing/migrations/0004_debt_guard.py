"""The debt trail made append-only in the database itself, like the ledger (see 0002)."""

from django.db import migrations


def debt_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            """
            CREATE OR REPLACE FUNCTION billing_debt_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'billing_debtentry is append-only';
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER billing_debt_append_only
                BEFORE UPDATE OR DELETE ON billing_debtentry
                FOR EACH ROW EXECUTE FUNCTION billing_debt_append_only();
            """
        )


def drop_debt_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP TRIGGER IF EXISTS billing_debt_append_only ON billing_debtentry;"
            "DROP FUNCTION IF EXISTS billing_debt_append_only();"
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_stripe_purchases_promo_codes_debts")]

    operations = [migrations.RunPython(debt_guard, drop_debt_guard)]

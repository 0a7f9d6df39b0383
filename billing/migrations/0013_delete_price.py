"""The price table, replaced by the price rules (0012 moved its prices there)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0012_price_rules_from_prices")]

    operations = [migrations.DeleteModel(name="Price")]

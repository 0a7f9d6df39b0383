from django.db import migrations
from django.db.models import F


def backfill_charge_refunded(apps, schema_editor):
    # Until now refunded_cents was the most charge.refunded had reported.
    Purchase = apps.get_model("billing", "Purchase")
    Purchase.objects.update(charge_refunded_cents=F("refunded_cents"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_refunds_disputes_reinstated")]

    operations = [migrations.RunPython(backfill_charge_refunded, migrations.RunPython.noop)]

from django.db import migrations


def redact_events_of_closed_accounts(apps, schema_editor):
    # Accounts closed before closure redacted their Stripe events (billing.webhooks.
    # redact_events_of does it for each account that closes from now on).
    from billing.redaction import events_about, redact

    Purchase = apps.get_model("billing", "Purchase")
    StripeEvent = apps.get_model("billing", "StripeEvent")
    about = events_about(
        Purchase.objects.filter(user__closed_at__isnull=False).values_list(
            "checkout_session_id", "payment_intent_id", "charge_id", "public_id"
        )
    )
    if about is None:
        return
    for event in StripeEvent.objects.filter(about).only("id", "payload"):
        clean = redact(event.payload)
        if clean != event.payload:
            StripeEvent.objects.filter(pk=event.pk).update(payload=clean)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_user_closed_at"),
        ("billing", "0009_backfill_charge_refunded"),
    ]

    operations = [
        migrations.RunPython(redact_events_of_closed_accounts, migrations.RunPython.noop),
    ]

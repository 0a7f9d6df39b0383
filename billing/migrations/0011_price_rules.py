"""Price rules: per model, credits per delivered image by pixel tier, and credits per reference
image beyond a number of free ones (filled from the price table by the next migration)."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0010_redact_events_of_closed_accounts'),
    ]

    operations = [
        migrations.CreateModel(
            name='PriceRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('model', models.CharField(help_text='The public model id (generation/catalog.toml).', max_length=64, unique=True)),
                ('reference_credits', models.PositiveIntegerField(default=0, help_text='Credits per reference image sent, per upstream call.')),
                ('free_references', models.PositiveSmallIntegerField(default=0, help_text='Reference images per call that cost nothing.')),
                ('note', models.CharField(blank=True, help_text='Where the figures come from, for the next operator.', max_length=255)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'price rule',
                'ordering': ['model'],
            },
        ),
        migrations.CreateModel(
            name='PriceTier',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text="What the customer sees, e.g. 'up to 2K' or '4K'.", max_length=16)),
                ('max_pixels', models.PositiveBigIntegerField(blank=True, help_text='The largest width x height this tier prices; empty for the last tier.', null=True)),
                ('credits_per_image', models.PositiveIntegerField(validators=[django.core.validators.MinValueValidator(1)])),
                ('rule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tiers', to='billing.pricerule')),
            ],
            options={
                'ordering': ['rule', models.OrderBy(models.F('max_pixels'), nulls_last=True)],
            },
        ),
        migrations.AddConstraint(
            model_name='pricetier',
            constraint=models.UniqueConstraint(fields=('rule', 'max_pixels'), name='billing_pricetier_bound_unique'),
        ),
        migrations.AddConstraint(
            model_name='pricetier',
            constraint=models.UniqueConstraint(condition=models.Q(('max_pixels__isnull', True)), fields=('rule',), name='billing_pricetier_one_unbounded'),
        ),
        migrations.AddConstraint(
            model_name='pricetier',
            constraint=models.CheckConstraint(condition=models.Q(('credits_per_image__gt', 0)), name='billing_pricetier_positive'),
        ),
    ]

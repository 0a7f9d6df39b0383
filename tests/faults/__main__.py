"""``python -m tests.faults``: the books helpers in a child process, on the database that
DATABASE_URL names (a PostgreSQL cluster of a test's own, which the test process is not
connected to). Prints JSON.

- ``customers COUNT CREDITS``: open COUNT customers with CREDITS each; prints their ids and keys.
- ``check [REDIS_URL]``: prints what is wrong with the books (an empty list when they balance).
- ``balance USER_ID``: prints that customer's balance in credits, as billing tells it.
"""

from __future__ import annotations

import json
import os
import sys

import django


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from .books import open_customer, problems

    command, *args = argv
    if command == "customers":
        count, credits = (int(arg) for arg in args)
        print(json.dumps([open_customer(credits).as_dict() for _ in range(count)]))
    elif command == "check":
        print(json.dumps(problems(*args)))
    elif command == "balance":
        from accounts.models import User
        from billing import services as billing

        print(
            json.dumps(billing.balance_credits(User.objects.get(pk=int(args[0])).personal_account))
        )
    else:
        raise SystemExit(
            f"unknown command {command!r}: customers COUNT CREDITS, check, or balance USER_ID"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

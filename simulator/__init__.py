"""A simulator of the Seedream upstream: BytePlus ModelArk / Volcengine Ark image generation.

It speaks the real upstream's protocol over HTTP, so the product's real upstream client runs
against it in the local demo (``make run``), the tests and the benchmarks:

- ``protocol``: what each upstream model accepts and answers (ids, sizes, fields, error bodies);
- ``faults``: the ``[sim:...]`` prompt markers tests use to ask for failures;
- ``images``: the pictures it renders (JPEG or PNG) and the description its signed links carry;
- ``server``: the aiohttp app, ``serve`` and ``run``;
- ``cli``: ``python -m simulator``, whose options ``manage.py run_simulator`` shares;
- ``process``: starting one in a child process and waiting until it listens (tests, bench).

Plain Python, not a Django app: it imports nothing of Django or of the project, so it starts fast
in a process of its own (an import-linter contract keeps it so).
"""

DEFAULT_PORT = 8799
DEFAULT_API_KEY = "sim-local-key"
# The one line a simulator prints once it listens, followed by its ``http://host:port``.
READY_PREFIX = "Seedream simulator listening on "

"""A simulator of the Seedream upstream: BytePlus ModelArk / Volcengine Ark image generation.

It speaks the real upstream's protocol over HTTP, so the product's real upstream client runs
against it in the local demo (``make run``), the tests and the benchmarks:

- ``protocol``: what each upstream model accepts and answers (ids, sizes, fields, error bodies);
- ``faults``: the ``[sim:...]`` prompt markers tests use to ask for failures;
- ``images``: the pictures it renders (JPEG or PNG) and the description its signed links carry;
- ``server``: the aiohttp app, ``serve`` and ``run``;
- ``cli``: ``python -m simulator``, whose options ``manage.py run_simulator`` shares;
- ``process``: starting one in a child process and waiting until it listens (tests, bench).

Reference images (the ``image`` field) show on every picture of the call that sent them, so a
test can tell from the delivered pixels that they arrived, and in order: the top band of the
picture (rows ``0`` to ``max(8, height // 10) - 1``) is split into as many equal columns as there
were references; column ``i`` (x from ``i * width // k`` to ``(i + 1) * width // k - 1``) is the
mean RGB colour of reference ``i``, or mid grey (128, 128, 128) for a URL, which is never fetched.
``images.reference_colours`` reads the band back; a picture without references has no band.
``GET /_sim/calls?prompt=...`` also lists each call's references (sha256 of a data URI's bytes,
or the URL).

Plain Python, not a Django app: it imports nothing of Django or of the project, so it starts fast
in a process of its own (an import-linter contract keeps it so).
"""

DEFAULT_PORT = 8799
DEFAULT_API_KEY = "sim-local-key"
# The one line a simulator prints once it listens, followed by its ``http://host:port``.
READY_PREFIX = "Seedream simulator listening on "

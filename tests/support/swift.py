"""A real S3-compatible server for the tests: Debian's OpenStack Swift with s3api and tempauth.

Not a fake: Swift checks every signature (headers and presigned query strings), expires presigned
URLs and answers S3's errors, so what passes here works against any S3-compatible service.

``running_swift()`` builds one-device rings (replicas 1) in a temporary folder, writes the four
server configs bound to 127.0.0.1 on free ports (``swift_dir`` points every server at that folder,
so /etc/swift is never read), starts the account, container, object and proxy servers in the
foreground (``workers = 0``: one process each, no forking), waits until an authenticated S3 call
succeeds, creates a bucket and stops everything on exit. It takes about 4 s on an idle
two-CPU machine (the rings ~0.7 s, the proxy's start ~2 s), up to 7 s beside other suites.

``swift_s3`` is the session fixture. Without the Swift binaries it skips and says how to install
them, except under CI (``CI`` set), where ``make test`` has installed them (the Makefile's
``swift`` target) and their absence is a failure.
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from .server import free_port
from .simulator import stop

SERVERS = ("account", "container", "object")
ACCESS_KEY = "test:tester"  # tempauth user "tester" of account "test"
SECRET_KEY = "testing"
REGION = "us-east-1"  # s3api's ``location``: SigV4 signatures name it
START_TIMEOUT_SECONDS = 30.0
INSTALL_HINT = (
    "apt-get install -y --no-install-recommends swift swift-proxy swift-account "
    "swift-container swift-object (or make swift)"
)


@dataclass(frozen=True)
class Swift:
    endpoint_url: str
    bucket: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self) -> Any:
        """A boto3 S3 client of our own, to look inside the bucket from the test (one per
        server: building one costs about half a second)."""
        return _client(self.endpoint_url, self.access_key, self.secret_key, self.region)

    def object_keys(self, prefix: str = "") -> set[str]:
        listing = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return {item["Key"] for item in listing.get("Contents", [])}

    def another_bucket(self, name: str) -> Swift:
        """The same server with bucket ``name``, created if need be."""
        other = dataclasses.replace(self, bucket=name)
        if name not in {b["Name"] for b in self.client().list_buckets()["Buckets"]}:
            self.client().create_bucket(Bucket=name)
        return other

    def make_public(self) -> str:
        """Let anyone read the bucket and return its public base URL, as a public bucket (or a
        CDN in front of one) has. s3api turns the canned ACL into a ``.r:*`` read ACL on the
        container, which Swift's own API (``/v1/AUTH_<account>/...``) serves without a
        signature."""
        self.client().put_bucket_acl(Bucket=self.bucket, ACL="public-read")
        account = self.access_key.split(":")[0]
        return f"{self.endpoint_url}/v1/AUTH_{account}/{self.bucket}"

    def env(self, **extra: str) -> dict[str, str]:
        """The product's environment for this bucket (config/settings.py, "Storage")."""
        return {
            "S3_BUCKET": self.bucket,
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_REGION": self.region,
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
            **extra,
        }

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        """STORAGES["default"] for this bucket, as the settings build it from env()."""
        return {
            "BACKEND": "generation.storage.ObjectStorage",
            "OPTIONS": {
                "bucket_name": self.bucket,
                "endpoint_url": self.endpoint_url,
                "region_name": self.region,
                "access_key": self.access_key,
                "secret_key": self.secret_key,
                "addressing_style": "path",
                **extra,
            },
        }


@functools.cache
def _client(endpoint_url: str, access_key: str, secret_key: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def binaries_present() -> bool:
    names = [f"swift-{name}-server" for name in (*SERVERS, "proxy")] + ["swift-ring-builder"]
    return all(shutil.which(name) for name in names)


def _swift_python() -> str:
    """The interpreter Debian's Swift runs on (not ours: Swift lives in the system's Python)."""
    builder = shutil.which("swift-ring-builder")
    assert builder is not None
    shebang = Path(builder).read_text().splitlines()[0]
    return shebang.removeprefix("#!").strip().split()[0]


def _build_rings(swift_dir: Path, ports: dict[str, int]) -> None:
    """swift-ring-builder create/add/rebalance for each ring, all in one interpreter: the same
    commands as the CLI (its own ``main``), about 1 s instead of 1 s per command."""
    commands = []
    for name in SERVERS:
        builder = str(swift_dir / f"{name}.builder")
        commands += [
            [builder, "create", "2", "1", "0"],  # 4 partitions, 1 replica
            [builder, "add", f"r1z1-127.0.0.1:{ports[name]}/d1", "1"],
            [builder, "rebalance"],
        ]
    script = (
        "import sys\n"
        "from swift.cli.ringbuilder import main\n"
        f"for args in {commands!r}:\n"
        "    try:\n"
        "        main(['swift-ring-builder', *args])\n"
        "    except SystemExit as done:\n"
        "        if done.code not in (None, 0, 1):  # 1: finished with warnings\n"
        "            sys.exit(f'swift-ring-builder {args}: exit {done.code}')\n"
    )
    subprocess.run(
        [_swift_python(), "-c", script], check=True, capture_output=True, text=True, timeout=60
    )


def _write_configs(swift_dir: Path, ports: dict[str, int], proxy_port: int) -> None:
    (swift_dir / "swift.conf").write_text(
        "[swift-hash]\n"
        "swift_hash_path_suffix = seedream-tests\n"
        "swift_hash_path_prefix = seedream-tests\n"
        "[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
    )
    common = (
        "[DEFAULT]\n"
        "bind_ip = 127.0.0.1\n"
        "workers = 0\n"
        f"user = {getpass.getuser()}\n"
        f"swift_dir = {swift_dir}\n"
        f"devices = {swift_dir / 'srv'}\n"
        "mount_check = false\n"
        "log_level = WARNING\n"
    )
    for name in SERVERS:
        (swift_dir / f"{name}-server.conf").write_text(
            f"{common}bind_port = {ports[name]}\n\n"
            f"[pipeline:main]\npipeline = {name}-server\n\n"
            f"[app:{name}-server]\nuse = egg:swift#{name}\n"
        )
    (swift_dir / "proxy-server.conf").write_text(
        f"{common}bind_port = {proxy_port}\n\n"
        "[pipeline:main]\n"
        "pipeline = catch_errors gatekeeper proxy-logging cache listing_formats s3api tempauth "
        "copy slo dlo proxy-logging proxy-server\n\n"
        "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
        f"[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = {SECRET_KEY} .admin\n\n"
        f"[filter:s3api]\nuse = egg:swift#s3api\nlocation = {REGION}\n\n"
        # tempauth insists on a memcache client, not on a memcached: nothing listens on this
        # port, so every lookup misses and S3 requests are checked against the users above.
        f"[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:{free_port()}\n\n"
        "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
        "[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n\n"
        "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n\n"
        "[filter:listing_formats]\nuse = egg:swift#listing_formats\n\n"
        "[filter:copy]\nuse = egg:swift#copy\n\n"
        "[filter:slo]\nuse = egg:swift#slo\n\n"
        "[filter:dlo]\nuse = egg:swift#dlo\n"
    )


@contextmanager
def running_swift(bucket: str = "seedream-test") -> Iterator[Swift]:
    """Swift with s3api on a free loopback port, with ``bucket`` created; stopped on exit."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="swift-") as folder, ExitStack() as stack:
        swift_dir = Path(folder)
        (swift_dir / "srv" / "d1").mkdir(parents=True)
        ports = {name: free_port() for name in SERVERS}
        proxy_port = free_port()
        _write_configs(swift_dir, ports, proxy_port)
        processes: list[tuple[str, subprocess.Popen[str], IO[str]]] = []

        def start(name: str) -> None:
            log = stack.enter_context(open(swift_dir / f"{name}.log", "w+"))
            process = subprocess.Popen(
                [f"swift-{name}-server", str(swift_dir / f"{name}-server.conf"), "--verbose"],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            stack.callback(stop, process)
            processes.append((name, process, log))

        # The storage servers need no ring to start: they boot while the rings are built; the
        # proxy reads the rings, so it starts last.
        for name in SERVERS:
            start(name)
        _build_rings(swift_dir, ports)
        start("proxy")
        swift = Swift(endpoint_url=f"http://127.0.0.1:{proxy_port}", bucket=bucket)
        _create_bucket_when_ready(swift, processes)
        startup_seconds.append(time.monotonic() - started)
        yield swift


# How long each start took (the S3 test module prints it in its report header).
startup_seconds: list[float] = []


def _create_bucket_when_ready(
    swift: Swift, processes: list[tuple[str, subprocess.Popen[str], IO[str]]]
) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    client = swift.client()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    problem: Exception | None = None
    while time.monotonic() < deadline:
        for name, process, log in processes:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"swift-{name}-server exited:\n{log.read()}")
        try:
            client.create_bucket(Bucket=swift.bucket)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] == "BucketAlreadyOwnedByYou":
                return
            problem = error  # the account or container server is not up yet
        except BotoCoreError as error:  # the proxy is not listening yet
            problem = error
        time.sleep(0.1)
    logs = []
    for name, _, log in processes:
        log.seek(0)
        logs.append(f"--- swift-{name}-server\n{log.read()}")
    raise RuntimeError(f"Swift did not answer in {START_TIMEOUT_SECONDS:g} s: {problem}\n{logs}")


@pytest.fixture(scope="session")
def swift_s3() -> Iterator[Swift]:
    """A real S3-compatible server (Swift) with an empty bucket, shared by the session."""
    if not binaries_present():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Swift is not installed: {INSTALL_HINT}")
        pytest.skip(f"Swift is not installed: {INSTALL_HINT}; in CI this fails instead")
    with running_swift() as swift:
        yield swift

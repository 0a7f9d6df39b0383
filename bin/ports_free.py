"""Exit 0 if every port in argv[2:] is free on the host argv[1]; else print one plain line
saying which is taken and how to choose others, and exit 1 (used by `make run`)."""

import socket
import sys

host, ports = sys.argv[1], [int(port) for port in sys.argv[2:]]
for port in ports:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            print(
                f"Port {port} on {host} is taken (another `make run`, perhaps): start with "
                f"another, for example `PORT={ports[0] + 1000} make run` (the simulator then "
                f"takes {ports[0] + 1000 + 799}).",
                file=sys.stderr,
            )
            sys.exit(1)

"""The Python traefiker's activity read, as one process, for `cargo xtask bench-activity`.

Written from the behaviour of kbase/narrative-traefiker's `get_active_traefik_svcs`: the
page body as text, split on line feeds, one regular expression matched against every line,
a debug log call per websocket line (its message formatted eagerly, as there), and a dict
of open websockets per service. The Rancher lookup that follows in the service is left out:
this measures the read only. It prints one line per service so its output is the size of
`traefiker activity`'s.

usage: python3 activity_python.py PAGE
"""

import logging
import re
import sys

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger("bench_activity")


def main(path):
    with open(path, "rb") as f:
        # `requests`' `r.text`: the body decoded to str.
        text = f.read().decode("utf-8")
    body = text.split("\n")
    websock_re = re.compile(
        r'traefik_service_open_connections\{\S+protocol="websocket",service="(\S+)@.+ (\d+)'
    )
    containers = dict()
    for line in body:
        match = websock_re.match(line)
        if match:
            logger.debug({"message": "websocket line: {}".format(line)})
            containers[match.group(1)] = int(match.group(2))
    out = []
    for name in sorted(containers):
        out.append("{} websockets={}\n".format(name, containers[name]))
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main(sys.argv[1])

"""mitmproxy addon for bench/egress.ts: the same job as airlock's policy.

Allows one host, maps it to the local upstream (as airlock's connectTo does,
so the name never reaches DNS and nothing leaves loopback) and sets one
header from a secret on every request. Settings come from the environment
bench/egress.ts gives mitmdump.
"""

import os

from mitmproxy import http

HOST = os.environ["AIRLOCK_BENCH_HOST"]
UPSTREAM_HOST = os.environ["AIRLOCK_BENCH_UPSTREAM_HOST"]
UPSTREAM_PORT = int(os.environ["AIRLOCK_BENCH_UPSTREAM_PORT"])
HEADER = os.environ["AIRLOCK_BENCH_HEADER"]
SECRET = os.environ["AIRLOCK_BENCH_SECRET"]


class Bench:
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.request.host != HOST or flow.request.port != 443:
            flow.response = http.Response.make(403, b"not allowed\n")
            return
        # The server address is taken from the CONNECT request after this
        # hook; TLS to the upstream still uses (and verifies) the client's
        # SNI, the allowed host.
        flow.request.host = UPSTREAM_HOST
        flow.request.port = UPSTREAM_PORT

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.request.headers[HEADER] = SECRET


addons = [Bench()]

"""Start a local EC2-compatible server (moto, PyPI `moto[server]`) on 127.0.0.1, on a free port.

Prints the port on its first line, then serves until its standard input closes, so the server
never outlives the test process that started it.
"""
import sys

from moto.core import responses
from moto.moto_server.threaded_moto_server import ThreadedMotoServer


def own_transformers(base):
    """Make what a request leaves out of its answer that request's own.

    moto keeps the fields an answer leaves out (EC2's `IncludePublicKey`, for one) in one
    dictionary of the response class, shared by every request: when two `DescribeKeyPairs`
    run at once, one asking for public keys and one not, the first can lose its public keys.
    EC2 answers each request as it asked; so does this server, once each request keeps its
    own copy.
    """
    shared = "RESPONSE_KEY_PATH_TO_TRANSFORMER"
    if not hasattr(base, shared):
        return
    for name in ("_include_in_response", "_exclude_from_response"):
        method = getattr(base, name, None)
        if method is None:
            continue

        def per_request(self, path, _method=method):
            if shared not in vars(self):
                setattr(self, shared, dict(getattr(type(self), shared)))
            return _method(self, path)

        setattr(base, name, per_request)


own_transformers(responses.BaseResponse)

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()

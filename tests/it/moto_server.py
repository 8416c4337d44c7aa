"""Start a local EC2-compatible server (moto, PyPI `moto[server]`) on 127.0.0.1, on a free port.

Prints the port on its first line, then serves until its standard input closes, so the server
never outlives the test process that started it.
"""
import sys

from moto.moto_server.threaded_moto_server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()

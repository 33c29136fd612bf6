"""The rdb-* commands' transport to a remote host over ssh (docs/protocol.md).

- :mod:`rdb_remote.wire`: the tagged encoding of messages (no pickle: decoding builds only
  plain values and registered dataclasses, checked against their type hints);
- :mod:`rdb_remote.framing`: length-prefixed frames on a byte stream;
- :mod:`rdb_remote.handshake`: magic, program, version and protocol range, first;
- :mod:`rdb_remote.connection`: messages both ways at once (a reader and a writer thread),
  bytes counted;
- :mod:`rdb_remote.spawn`: ``[user@]host::/path``, the remote schema, the remote process;
- :mod:`rdb_remote.loopback`: two connections over OS pipes in one process.
"""

from rdb_remote.connection import Connection
from rdb_remote.handshake import MAGIC, Hello
from rdb_remote.loopback import loopback_pair
from rdb_remote.spawn import (
    RemoteLocation,
    RemoteProcess,
    connect,
    default_schema,
    parse_location,
    schema_command,
    serve_stdio,
)
from rdb_remote.wire import Codec

__all__ = [
    "MAGIC",
    "Codec",
    "Connection",
    "Hello",
    "RemoteLocation",
    "RemoteProcess",
    "connect",
    "default_schema",
    "loopback_pair",
    "parse_location",
    "schema_command",
    "serve_stdio",
]

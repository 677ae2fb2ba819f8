# Copyright (c) 2026, the nvflare model fork authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The direct reader's body path on a real loopback socket, byte for byte.

The reader takes the bytes http.client read ahead with the headers from its buffer and
the rest from the socket itself (component_direct_reader._body_readinto). A server that
sends headers and body in one write puts body bytes in that buffer: losing, repeating or
reordering them must show up here as a wrong digest, and a body cut short as the reason
the ranges are told.
"""

import hashlib
import os
import socket
import threading

import pytest

from nvflare.fuel.hci.client.component_direct_reader import DirectUnavailable, read_direct


def _serve_once(payload: bytes, declared: int):
    """A one-response HTTP server: headers and body in one sendall, then close."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run():
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n".encode()
            conn.sendall(head + payload)
        listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return ("127.0.0.1", listener.getsockname()[1], None), thread


@pytest.mark.parametrize("size", [1, 5000, 3 * 1024 * 1024 + 7])
def test_body_arrives_whole_and_in_order(size):
    payload = os.urandom(size)
    endpoint, thread = _serve_once(payload, size)
    got = hashlib.sha256()
    read_direct(endpoint, "/x", "t", size, got.update, timeout=10, block=64 * 1024, buffers=2)
    thread.join(5)
    assert got.hexdigest() == hashlib.sha256(payload).hexdigest()


def test_a_body_cut_short_names_what_arrived():
    payload = os.urandom(100_000)
    endpoint, thread = _serve_once(payload, 200_000)
    received = []
    with pytest.raises(DirectUnavailable) as e:
        read_direct(endpoint, "/x", "t", 200_000, lambda b: received.append(bytes(b)), timeout=10, block=64 * 1024)
    thread.join(5)
    assert str(e.value) == "the response ended after 100000 of 200000 bytes"
    assert b"".join(received) == payload

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
"""A TCP forwarder between an admin kit and the server that breaks one connection on cue.

The traffic is TLS, so the proxy cannot see what a connection carries; it goes by order
instead. An admin session opens its cell's websocket first; a direct download is the
next connection. Connections from ``cut_from`` on (1-based, in accept order) are reset
after ``cut_after`` bytes went from the server to the admin: a real broken download
connection, with the session itself untouched. ``rate`` (bytes/s, optional) slows what
the server sends on every connection to about that pace, like a real link: a download
then takes long enough to be interrupted where a test wants it. ``cut_all()`` resets
every connection at once: the network is gone.
"""

import select
import socket
import struct
import threading
import time


class CuttingProxy:
    def __init__(
        self, target_port: int, cut_after: int, cut_from: int = 2, target_host: str = "127.0.0.1", rate: float = None
    ):
        self.target = (target_host, target_port)
        self.cut_after = cut_after
        self.cut_from = cut_from
        self.rate = rate
        self.cut_now = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.cut = []  # (connection number, bytes passed before the cut)
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            limit = self.cut_after if self.accepted >= self.cut_from else None
            server = socket.create_connection(self.target)
            threading.Thread(target=self._forward, args=(client, server, limit, self.accepted), daemon=True).start()

    def _forward(self, client, server, limit, number):
        """Both directions in one thread (select), so a cut closes sockets no other thread reads."""
        to_client = 0
        peer = {client: server, server: client}
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [], 0.2)
                if self.cut_now.is_set():
                    self.cut.append((number, to_client))
                    for s in (client, server):
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                for src in readable:
                    data = src.recv(64 * 1024 if self.rate else 256 * 1024)
                    if not data:
                        raise EOFError
                    if src is server and limit is not None and to_client + len(data) >= limit:
                        client.sendall(data[: limit - to_client])
                        self.cut.append((number, limit))
                        for s in (client, server):  # reset, not a clean close: a broken connection
                            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return
                    peer[src].sendall(data)
                    if src is server:
                        to_client += len(data)
                        if self.rate:
                            time.sleep(len(data) / self.rate)
        except (OSError, EOFError):
            pass
        finally:
            client.close()
            server.close()

    def cut_all(self):
        """Reset every connection (within 0.2 s) and accept no more: the network is gone."""
        self.closing = True
        self.listener.close()
        self.cut_now.set()

    def close(self):
        self.closing = True
        self.listener.close()

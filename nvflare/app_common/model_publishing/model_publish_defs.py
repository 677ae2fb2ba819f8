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
"""The wire contract between the job's server process and the job model store.

The job process (SJ) and the server parent (SP) are different programs that may even
run on different hosts (container launchers), so what one sends and the other expects is
spelled out here once. The request rides the SJ-to-parent channel on a topic of its
own: a plain cell request, so the parent's authentication filter has checked the
sender's signed identity before the store sees it.
"""

from nvflare.fuel.f3.cellnet.defs import CellChannel, MessageHeaderKey, ReturnCode
from nvflare.fuel.f3.cellnet.fqcn import FQCN
from nvflare.fuel.f3.message import Message

CHANNEL = CellChannel.SERVER_PARENT_LISTENER
TOPIC = "model_fork.publish_job_model"

# What the model is to the job: its final or its best global model.
KIND_GLOBAL = "global"
KIND_BEST = "best"
KINDS = (KIND_GLOBAL, KIND_BEST)

# How the bytes travel.
MODE_LOCAL = "local"  # same filesystem: the store links or copies the file itself
MODE_STREAM = "stream"  # the store pulls the file from the job process


class Key:
    KIND = "kind"
    MODE = "mode"
    FILE_NAME = "file_name"
    FORMAT = "format"
    PATH = "path"
    IDENTITY = "identity"  # file_identity() of the file as the sender sees it
    REF_ID = "ref_id"
    # stream mode: what the sender measured, checked against the received bytes; local
    # mode (optional): the sender's hash of exactly the file IDENTITY names (pre-hashed
    # while the job trained), which the store uses instead of hashing when it links that
    # very inode
    SIZE = "size"
    SHA256 = "sha256"
    BLOCKS = "blocks"  # with a pre-computed SHA256: {block_size, block_sha256} (component_block_hashes)
    # reply
    STATUS = "status"
    MESSAGE = "message"
    COMPONENT = "component"
    DROP_SOURCE = "drop_source"


class Status:
    STORED = "stored"
    NOT_VISIBLE = "not_visible"  # the store cannot see the file: stream it instead
    REFUSED = "refused"
    DISABLED = "disabled"
    ERROR = "error"


def file_identity(path: str) -> list:
    """What proves two processes look at the same, unchanged file, not merely the same path.

    (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns): ctime cannot be set from user
    space, so a rewrite in place that keeps the size and restores mtime still shows.
    Linking the file changes its ctime: compare before linking.
    """
    import os

    return stat_identity(os.stat(path))


def stat_identity(st) -> list:
    """file_identity() from an os.stat_result (e.g. os.fstat of an open file)."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def send_publish_request(cell, payload: dict, timeout: float) -> dict:
    """Send one publish request to the server parent; the reply body, or an ERROR reply."""
    reply = cell.send_request(
        channel=CHANNEL, topic=TOPIC, target=FQCN.ROOT_SERVER, request=Message(payload=payload), timeout=timeout
    )
    if reply is None:
        return {Key.STATUS: Status.ERROR, Key.MESSAGE: "no reply from the server parent process"}
    rc = reply.get_header(MessageHeaderKey.RETURN_CODE, ReturnCode.OK)
    if rc != ReturnCode.OK:
        error = reply.get_header(MessageHeaderKey.ERROR, "")
        return {
            Key.STATUS: Status.ERROR,
            Key.MESSAGE: f"server parent did not answer ({rc}{': ' + error if error else ''})",
        }
    body = reply.payload
    if not isinstance(body, dict):
        return {
            Key.STATUS: Status.ERROR,
            Key.MESSAGE: f"unexpected reply from the server parent: {type(body).__name__}",
        }
    return body

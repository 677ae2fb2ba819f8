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
"""The upstream cellnet and DownloadService shapes that the download threads rely on (issue 21).

No patch is involved: the range server answers with CoreCell.send_reply after its request
callback returned None, and folder_chunk_offload wraps DownloadService's request callback
(found in the cell's request registry) and returns a future, which upstream's stream
Adapter answers when it completes. If an upstream release changes one of these, the
system tests (test_download_range_transfer, test_download_pacing's folder chunks,
test_download_flood) fail with timeouts; this says why at once.
"""

import inspect
from concurrent.futures import Future

from nvflare.fuel.f3.cellnet import cell as cell_module
from nvflare.fuel.f3.cellnet.core_cell import CoreCell
from nvflare.fuel.f3.streaming import download_service
from nvflare.private.fed.server import folder_chunk_offload


def test_core_cell_sends_a_deferred_reply_for_a_request_id():
    params = list(inspect.signature(CoreCell.send_reply).parameters)
    assert params[:4] == ["self", "reply", "to_cell", "for_req_ids"]
    assert "secure" in params
    # a request callback that returns nothing gets no reply from the cell itself
    assert "if not reply:" in inspect.getsource(CoreCell._process_request)


def test_a_stream_request_callback_may_answer_with_a_future():
    source = inspect.getsource(cell_module.Adapter.call)
    assert "isinstance(response, concurrent.futures.Future)" in source
    assert "add_done_callback" in source
    assert issubclass(Future, cell_module.concurrent.futures.Future)


def test_download_service_request_keys_and_registry():
    keys = download_service._PropKey
    assert keys.REF_ID == folder_chunk_offload.REF_ID
    assert (keys.CONFIRM, keys.CANCEL) == folder_chunk_offload.CONTROL_KEYS
    assert "self.req_reg = Registry()" in inspect.getsource(CoreCell.__init__)
    registering = inspect.getsource(download_service.DownloadService._initialize)
    assert "topic=OBJ_DOWNLOADER_TOPIC" in registering and "cb=cls._handle_download" in registering

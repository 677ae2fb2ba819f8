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
"""The interference bench's job: FedAvg over a big numpy model, with time stamps.

Copied into the job's app/custom folder by bench/interference_bench.py (it is job code,
not part of the fork). The server controller broadcasts the model, waits for both
sites, averages what they return and appends one JSON line per round to
``record_file``; the client executor stamps when the task reached it and when it
replied. Server, clients and bench run on one host, so the stamps share one clock.

Training is trivial (add a constant) so a round is the time FLARE needs to move the
model to the sites and back: that is what a download on the same server can slow down.
"""

import json
import os
import time

import numpy as np

from nvflare.apis.controller_spec import ClientTask, Task
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.executor import Executor
from nvflare.apis.impl.controller import Controller
from nvflare.apis.shareable import ReturnCode, Shareable, make_reply

SENT = "bench_sent"


class TimedFedAvg(Controller):
    """FedAvg rounds until ``stop_file`` exists (or ``max_rounds``), one JSON line per round.

    A round's record: start (the controller scheduled the task, stamped in the task as
    ``bench_sent``), end (all results in and averaged), and per site: ``received`` (the
    site's executor got the task), ``replied`` (it returned its result) and ``result_at``
    (the server had the result). A site missing from ``results`` timed out or failed.
    """

    def __init__(
        self, model_mb=64, n_arrays=8, min_clients=2, max_rounds=10000, task_timeout=120, stop_file="", record_file=""
    ):
        super().__init__()
        self.model_mb, self.n_arrays, self.min_clients = model_mb, n_arrays, min_clients
        self.max_rounds, self.task_timeout = max_rounds, task_timeout
        self.stop_file, self.record_file = stop_file, record_file

    def start_controller(self, fl_ctx):
        pass

    def stop_controller(self, fl_ctx):
        pass

    def process_result_of_unknown_task(self, client, task_name, client_task_id, result, fl_ctx):
        self.log_warning(fl_ctx, f"BENCH late result from {client.name} for {task_name}")

    def control_flow(self, abort_signal, fl_ctx):
        per_array = self.model_mb * 1000 * 1000 // self.n_arrays // 4
        rng = np.random.default_rng(0)
        model = {f"layer{i}": rng.standard_normal(per_array, dtype=np.float32) for i in range(self.n_arrays)}
        for rnd in range(self.max_rounds):
            if abort_signal.triggered or (self.stop_file and os.path.exists(self.stop_file)):
                break
            results = {}

            def on_result(client_task: ClientTask, fl_ctx):
                at = time.time()
                result = client_task.result
                rc = result.get_return_code(ReturnCode.OK)
                if rc != ReturnCode.OK:
                    self.log_warning(fl_ctx, f"BENCH round {rnd}: {client_task.client.name} returned {rc}")
                    return
                results[client_task.client.name] = (at, from_shareable(result))
                client_task.result = None  # the controller keeps no second copy of the model

            data = DXO(DataKind.WEIGHTS, data=model).to_shareable()
            start = time.time()
            data.set_header(SENT, start)
            task = Task(name="train", data=data, timeout=int(self.task_timeout), result_received_cb=on_result)
            self.broadcast_and_wait(task, fl_ctx, min_responses=self.min_clients, abort_signal=abort_signal)
            if len(results) == self.min_clients:
                dxos = [d for _, d in results.values()]
                model = {k: (sum(d.data[k] for d in dxos) / len(dxos)).astype(np.float32) for k in model}
            record = {
                "round": rnd,
                "start": start,
                "end": time.time(),
                "completion": str(task.completion_status),
                "results": {
                    name: {"received": d.meta["received"], "replied": d.meta["replied"], "result_at": at}
                    for name, (at, d) in results.items()
                },
            }
            with open(self.record_file, "a") as f:
                f.write(json.dumps(record) + "\n")


class TimedTrainer(Executor):
    """Adds a constant to every weight; stamps when the task arrived and when it replies."""

    def execute(self, task_name, shareable: Shareable, fl_ctx, abort_signal) -> Shareable:
        received = time.time()
        try:
            dxo = from_shareable(shareable)
        except ValueError:
            return make_reply(ReturnCode.BAD_TASK_DATA)
        new = {k: v + np.float32(0.001) for k, v in dxo.data.items()}
        meta = {"received": received, "sent": shareable.get_header(SENT), "replied": time.time()}
        return DXO(DataKind.WEIGHTS, data=new, meta=meta).to_shareable()

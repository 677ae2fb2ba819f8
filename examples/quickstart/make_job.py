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
"""Export the quickstart FedAvg job folder with upstream's recipe API (nothing fork-specific:
publishing the model is the fork's zero-configuration default)."""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def export_job(job_dir: str, rounds: int = 3, name: str = "quickstart"):
    sys.path.insert(0, HERE)
    from net import QuickstartNet

    from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe

    recipe = FedAvgRecipe(
        name=name,
        model=QuickstartNet(),
        min_clients=2,
        num_rounds=rounds,
        train_script=os.path.join(HERE, "train.py"),
        launch_external_process=True,
        key_metric="accuracy",
    )
    recipe.export(job_dir)
    return os.path.join(job_dir, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("job_dir")
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    print(export_job(a.job_dir, a.rounds))

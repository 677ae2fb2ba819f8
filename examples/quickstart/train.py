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
"""Client API training script: a few SGD steps per round on synthetic data.

The data is a fixed random linear labelling of random inputs, different per site, so the
global model really learns and accuracy (the key metric for the best model) moves.
"""

import argparse

import torch
from net import QuickstartNet

import nvflare.client as flare


def make_data(site: str, in_features: int, classes: int, n: int = 512):
    gen = torch.Generator().manual_seed(1234)
    teacher = torch.randn(in_features, classes, generator=gen)
    local = torch.Generator().manual_seed(sum(site.encode()))
    x = torch.randn(n, in_features, generator=local)
    return x, (x @ teacher).argmax(dim=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    flare.init()
    site = flare.get_site_name()
    model = QuickstartNet()
    x, y = make_data(site, 64, 4)
    while flare.is_running():
        input_model = flare.receive()
        model.load_state_dict(input_model.params)
        model.eval()
        with torch.no_grad():
            accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(args.steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        print(f"{site} round {input_model.current_round}: accuracy {accuracy:.3f} loss {loss.item():.3f}", flush=True)
        flare.send(
            flare.FLModel(
                params=model.cpu().state_dict(),
                metrics={"accuracy": accuracy},
                meta={"NUM_STEPS_CURRENT_ROUND": args.steps},
            )
        )


if __name__ == "__main__":
    main()

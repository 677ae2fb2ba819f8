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
"""The quickstart's model: an MLP of about 53 MB (13.3 M float32 parameters), large enough
that downloading just the model instead of the whole job workspace matters.

The size lives in the constructor defaults because upstream's recipe export records the
model's class path but not its constructor arguments: the server persistor builds
``QuickstartNet()`` and the clients must build the same shape."""

import torch.nn as nn


class QuickstartNet(nn.Module):
    def __init__(self, in_features: int = 64, width: int = 2560, depth: int = 3, classes: int = 4):
        super().__init__()
        layers, features = [], in_features
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)

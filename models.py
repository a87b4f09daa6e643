"""The paper's networks (its Appendix A.1): a ResNet-18 classifier and the adversarial discriminator.

The classifier is torchvision's ResNet-18 adapted to small one-channel images:
a 3x3 stride-1 first convolution and no max-pool, so a 28x28 input keeps its
resolution through the first stage. Besides ``forward(x) -> logits`` it has
``features_and_logits(x)``, which also returns the 512-d pooled features (the
input of ``fc``), because the domain-invariance penalties (actdiff,
adversarial) compare features. Any model with that method can be trained by
losses.py (the tests use a tiny linear one). ``resolve_device`` turns the
commands' ``--device`` into the device the networks run on.
"""
import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm
from torchvision.models.resnet import BasicBlock, ResNet

from errors import UsageError

FEATURES = 512


class ResNet18(ResNet):
    """torchvision's resnet18 (no pretrained weights) with conv1 = 3x3/stride 1 and maxpool = identity."""

    def __init__(self, in_channels=1, num_classes=2):
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.maxpool = nn.Identity()

    def features_and_logits(self, x):
        """(B, C, H, W) -> pooled features (B, 512), logits (B, num_classes)."""
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        z = torch.flatten(self.avgpool(h), 1)
        return z, self.fc(z)

    def forward(self, x):
        return self.features_and_logits(x)[1]


class Discriminator(nn.Module):
    """MLP 512 -> 1024 -> 1024 -> 1024 -> 1 on features; spectral norm on the hidden layers.

    Outputs one logit per row: "these features came from a masked input".
    """

    def __init__(self, in_features=FEATURES, hidden=1024):
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Linear(in_features, hidden)), nn.ReLU(),
            spectral_norm(nn.Linear(hidden, hidden)), nn.ReLU(),
            spectral_norm(nn.Linear(hidden, hidden)), nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, z):
        return self.net(z).squeeze(1)  # (B,)


def with_weights(architecture, state):
    """`architecture()` on the CPU holding `state`, built without initialising weights it would overwrite."""
    with torch.device("meta"):
        net = architecture()
    net.to_empty(device="cpu").load_state_dict(state)
    return net


def resolve_device(device):
    """auto (CUDA where there is one, else CPU), cpu, cuda or cuda:N; anything else, or CUDA where there is none,
    is one line naming the choices."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available here; pass --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device}: not a device; pass auto, cpu, cuda or cuda:N") from None

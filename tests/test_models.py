"""The adapted ResNet-18 and the discriminator."""
import pytest
import torch
import torch.nn as nn

from models import Discriminator, ResNet18


def test_first_conv_is_3x3_stride_1_one_channel_and_no_maxpool():
    net = ResNet18()
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and net.conv1.in_channels == 1
    assert isinstance(net.maxpool, nn.Identity)


@pytest.mark.parametrize("size", [28, 128])  # synthetic, X-ray (scoring at 224: test_saliency.py)
def test_features_and_logits_shapes(size):
    net = ResNet18().eval()
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        z, logits = net.features_and_logits(x)
        assert z.shape == (2, 512) and logits.shape == (2, 2)
        assert torch.allclose(net(x), logits)
        assert torch.allclose(net.fc(z), logits)


def test_discriminator_shape_and_spectral_norm():
    d = Discriminator()
    assert d(torch.randn(5, 512)).shape == (5,)
    linears = [m for m in d.net if isinstance(m, nn.Linear)]
    assert [hasattr(m, "parametrizations") for m in linears] == [True, True, True, False]  # not the output layer

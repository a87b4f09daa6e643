"""The six methods of losses.py: masking, penalties, their closed forms, and who steps when."""
import pytest
import torch
import torch.nn.functional as F

import losses
import protocol
import train
from conftest import hparams
from models import ResNet18

PRIORS = ["actdiff", "adversarial", "gradmask", "rrr"]


def batch(b=4, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, size, size, generator=g)
    mask = torch.zeros(b, 1, size, size)
    mask[:, :, 1:4, 2:5] = 1
    return x, torch.arange(b) % 2, mask


def test_shuffle_keeps_inside_and_the_outside_multiset():
    x, _, mask = batch(b=8, size=10)
    out = losses.shuffle_outside(x, mask)
    assert torch.equal(out * mask, x * mask)
    for i in range(8):
        before = x[i][mask[i] == 0].sort().values
        after = out[i][mask[i] == 0].sort().values
        assert torch.equal(before, after)
    assert not torch.equal(out, x)
    assert not torch.equal(losses.shuffle_outside(x, mask), out)  # a fresh permutation each call


def test_shuffle_leaves_images_without_mask_alone():
    x, _, mask = batch()
    mask[1] = 0
    out = losses.shuffle_outside(x, mask)
    assert torch.equal(out[1], x[1])
    assert not torch.equal(out[0], x[0])


def test_zero_fill_zeroes_exactly_the_outside():
    x, _, mask = batch()
    out = losses.apply_mask(x, mask, hparams(), fill="zero")
    assert torch.equal(out, x * mask)


def _penalty(name, net, x, y, mask, hp):
    method = losses.build(name, hp, "cpu")
    _, terms = method(net, x, y, mask, hp)
    return terms["penalty"].item() if name != "adversarial" else None


@pytest.mark.parametrize("name", ["actdiff", "gradmask", "rrr"])
def test_penalty_is_zero_iff_mask_covers_image(name):
    torch.manual_seed(0)
    net = ResNet18().train()
    x, y, mask = batch(size=12)
    full = torch.ones_like(mask)
    assert _penalty(name, net, x, y, full, hparams()) == 0.0
    assert _penalty(name, net, x, y, mask, hparams()) > 0.0


@pytest.mark.parametrize("name", ["actdiff", "gradmask", "rrr"])
def test_images_without_mask_get_no_penalty_unless_asked(name, linear):
    x, y, _ = batch()
    empty = torch.zeros_like(x)
    assert _penalty(name, linear, x, y, empty, hparams()) == 0.0
    if name != "actdiff":  # actdiff's masked input is a shuffle; rrr/gradmask see every pixel as outside
        assert _penalty(name, linear, x, y, empty, hparams(empty_mask="penalize")) > 0.0


def test_gradmask_closed_form_on_linear_model(linear):
    x, y, mask = batch()
    _, terms = losses.gradmask(linear, x, y, mask, hparams())
    w = linear.fc.weight.detach()                            # (2, 36)
    per_pixel = (w[0] - w[1]).abs().view(1, 1, 6, 6)         # |d|y0 - y1|/dx|, the same for every image
    expected = (per_pixel * (1 - mask)).sum()
    assert torch.allclose(terms["penalty"], expected, rtol=1e-5)


def test_rrr_closed_form_on_linear_model(linear):
    x, y, mask = batch()
    _, terms = losses.rrr(linear, x, y, mask, hparams())
    w = linear.fc.weight.detach()
    p = F.softmax(linear(x), 1).detach()                    # (B, 2)
    grad = w.sum(0) - 2 * p @ w                              # d sum_k log p_k / dx = sum_k w_k - K sum_j p_j w_j
    expected = (grad.view(-1, 1, 6, 6) ** 2 * (1 - mask)).sum()
    assert torch.allclose(terms["penalty"], expected, rtol=1e-5)


@pytest.mark.parametrize("name", PRIORS)
def test_penalty_gradient_reaches_the_encoder(name):
    torch.manual_seed(0)
    net = ResNet18().train()
    x, y, mask = batch(size=12)

    def encoder_grad(lam):  # same seed, same shuffles, same discriminator: only lam differs
        torch.manual_seed(1)
        hp = hparams(lam=lam, disc_ratio=1)
        loss, _ = losses.build(name, hp, "cpu")(net, x, y, mask, hp)
        return torch.autograd.grad(loss, net.conv1.weight)[0]

    assert (encoder_grad(1.0) - encoder_grad(0.0)).abs().sum() > 0


def test_adversarial_moves_d_every_batch_and_encoder_every_kth():
    torch.manual_seed(0)
    net = ResNet18()
    x, y, mask = batch(size=12)
    hp = hparams(disc_ratio=3)
    method = losses.build("adversarial", hp, "cpu")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    assert not ({id(p) for p in method.opt.param_groups[0]["params"]} & {id(p) for p in net.parameters()})
    moved_encoder = []
    for step in range(6):
        d_before = [p.detach().clone() for p in method.disc.parameters()]
        e_before = net.conv1.weight.detach().clone()
        train.train_step(net, opt, method, x, y, mask, hp)
        assert any(not torch.equal(a, b) for a, b in zip(d_before, method.disc.parameters()))
        moved_encoder.append(not torch.equal(e_before, net.conv1.weight))
    assert moved_encoder == [True, False, False, True, False, False]


def test_adversarial_terms_are_sums_of_two_means_as_in_eqs_2_and_3():
    """Eq. 2 adds an expectation over masked features to one over unmasked features, so the loss is
    twice the mean over the concatenated batch; a single mean would halve lam's effect (eq. 3)."""
    torch.manual_seed(0)
    method = losses.build("adversarial", hparams(), "cpu")
    method.disc.eval()  # spectral norm's power iteration then stays put: D is the same function every call
    z_masked, z = torch.randn(5, 512), torch.randn(5, 512)
    d_masked, d = method.disc(z_masked), method.disc(z)
    bce = F.binary_cross_entropy_with_logits
    one_mean = bce(torch.cat([d_masked, d]), torch.cat([torch.ones(5), torch.zeros(5)]))
    disc_loss = method._disc_loss(z_masked, z)
    assert torch.allclose(disc_loss, bce(d_masked, torch.ones(5)) + bce(d, torch.zeros(5)))
    assert torch.allclose(disc_loss, 2 * one_mean)
    fool = method._disc_loss(z_masked, z, flip=True)
    assert torch.allclose(fool, F.softplus(d_masked).mean() + F.softplus(-d).mean())
    # The halves are weighted equally even when their sizes differ (a mean each, not one pooled mean).
    uneven = method._disc_loss(z_masked[:2], z)
    assert torch.allclose(uneven, bce(d_masked[:2], torch.ones(2)) + bce(d, torch.zeros(5)))


def test_every_method_of_the_protocol_is_one_loss_with_its_tuned_values():
    """protocol.METHODS (the tables' row order, read without torch) and losses.METHODS name the same methods in
    the same order; each builds into a loss that is a finite scalar whose gradient reaches the network, and
    every tuned setting in train.TUNED tunes exactly these methods, with hyperparameters train.py knows."""
    assert tuple(losses.METHODS) == protocol.METHODS
    torch.manual_seed(0)
    net = ResNet18().train()
    x, y, mask = batch(size=12)
    for name in protocol.METHODS:
        hp = hparams(disc_ratio=1)  # the adversarial method's first batch is an encoder turn either way
        loss, _ = losses.build(name, hp, "cpu")(net, x, y, mask, hp)
        assert loss.dim() == 0 and torch.isfinite(loss), name
        assert torch.autograd.grad(loss, net.fc.weight)[0].abs().sum() > 0, name
    for setting, methods in train.TUNED.items():
        assert tuple(methods) == protocol.METHODS, setting
        assert all(set(values) <= set(train.FALLBACK) for values in methods.values()), setting

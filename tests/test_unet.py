"""Tests of the magnitude-preserving primitives (models/backbones/mp_layers.py) and the UNet (models/backbones/unet.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from incdyn.models.backbones.mp_layers import (
    MPConv,
    MPFourier,
    WrapPad,
    mp_cat,
    mp_silu,
    mp_sum,
    normalize,
)
from incdyn.models.backbones.unet import UNet


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _rms(x: torch.Tensor) -> float:
    return x.square().mean().sqrt().item()


def _inputs(*, batch: int, channels: int, frames: int, height: int, width: int, seed: int = 0):
    """A network input ``[ctx ⊙ x_t, ctx]`` with a random pixel mask, and noise labels."""
    gen = torch.Generator().manual_seed(seed)
    xt = torch.randn(batch, channels, frames, height, width, generator=gen)
    mask = (torch.rand(batch, 1, 1, height, width, generator=gen) < 0.7).float()
    mask = mask.expand(batch, channels, frames, height, width)
    label = torch.randn(batch, generator=gen)
    return torch.cat([xt * mask, mask], dim=1), label


def _small_unet(**kwargs) -> UNet:
    torch.manual_seed(0)
    kwargs = dict(channels=1, frames=2, width=8) | kwargs
    return UNet(**kwargs)


def _wake(model: UNet, value: float = 0.5) -> UNet:
    """Open the zero-initialised gains so that the output and every gradient are nonzero."""
    with torch.no_grad():
        model.out_gain.fill_(value)
        model.emb_gain.fill_(value)
    return model


# --- primitives ------------------------------------------------------------------------------


def test_normalize_gives_unit_rms_rows():
    x = 3.0 * _randn(5, 7, 3, 3) + 1.0
    rows = normalize(x).flatten(1)
    torch.testing.assert_close(rows.square().mean(1), torch.ones(5), rtol=1e-3, atol=0)
    pixels = normalize(x, dim=1)  # pixel norm: unit RMS over channels at every pixel
    torch.testing.assert_close(pixels.square().mean(1), torch.ones(5, 3, 3), rtol=1e-3, atol=0)


def test_mp_silu_preserves_magnitude():
    assert _rms(mp_silu(_randn(200_000))) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 0.8])
def test_mp_sum_preserves_magnitude(t):
    a, b = _randn(200_000, seed=1), _randn(200_000, seed=2)
    assert _rms(mp_sum(a, b, t)) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(("na", "nb", "t"), [(16, 16, 0.5), (16, 48, 0.5), (32, 8, 0.3)])
def test_mp_cat_preserves_magnitude_and_balance(na, nb, t):
    a, b = _randn(64, na, 16, 16, seed=1), _randn(64, nb, 16, 16, seed=2)
    y = mp_cat(a, b, dim=1, t=t)
    assert y.shape == (64, na + nb, 16, 16)
    assert _rms(y) == pytest.approx(1.0, abs=0.01)
    # b carries the fraction t²/((1−t)² + t²) of the energy, whatever the channel counts.
    share = y[:, na:].square().sum() / y.square().sum()
    assert share.item() == pytest.approx(t**2 / ((1 - t) ** 2 + t**2), abs=0.01)


@pytest.mark.parametrize(("kernel", "shape"), [((), (4096, 96)), ((3, 3), (16, 24, 24, 24))])
def test_mpconv_preserves_magnitude(kernel, shape):
    torch.manual_seed(0)
    conv = MPConv(shape[1], 40, kernel, padding_mode="circular")
    x = _randn(*shape, seed=3)
    assert _rms(conv(x)) == pytest.approx(1.0, abs=0.03)
    assert _rms(conv(x, gain=0.5)) == pytest.approx(0.5, abs=0.02)


def test_mpconv_forced_weight_normalisation():
    torch.manual_seed(0)
    conv = MPConv(6, 4, (3, 3))
    with torch.no_grad():
        conv.weight.mul_(torch.tensor([0.1, 1.0, 7.0, 30.0])[:, None, None, None])
    before = conv.weight.detach().clone()
    conv.eval()(_randn(2, 6, 5, 5))
    assert torch.equal(conv.weight, before)  # evaluation normalises at use, stores nothing
    conv.train()(_randn(2, 6, 5, 5))
    # Each row now has unit RMS, i.e. norm √fan_in, up to normalize's eps = 1e-4 on the RMS.
    rms_before = before.flatten(1).square().mean(1).sqrt()
    expected = math.sqrt(6 * 9) * rms_before / (rms_before + 1e-4)
    norms = conv.weight.detach().flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, expected, rtol=1e-5, atol=0)
    assert (norms - math.sqrt(6 * 9)).abs().max() < 1e-2


def test_mpconv_gradient_is_orthogonal_to_weight():
    conv = MPConv(5, 3, (3, 3))
    conv(_randn(2, 5, 6, 6)).square().sum().backward()
    dots = (conv.weight.grad * conv.weight.detach()).flatten(1).sum(1)
    scale = conv.weight.grad.flatten(1).norm(dim=1) * conv.weight.detach().flatten(1).norm(dim=1)
    assert (dots.abs() < 1e-3 * scale).all()  # exactly orthogonal but for normalize's eps


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 1, 1), (2, 3, 2, 6)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_wrap_pad_matches_circular_pad(shape, channels_last):
    x = _randn(*shape).double()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = WrapPad.apply(x, 1)
    assert torch.equal(y, F.pad(x, (1, 1, 1, 1), mode="circular"))
    if channels_last and shape[1] > 1:
        assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(lambda x: WrapPad.apply(x, 1), (x,))


def test_mpfourier_is_fixed_and_unit_magnitude():
    emb = MPFourier(256)
    y = emb(_randn(512))
    assert y.shape == (512, 256)
    assert _rms(y) == pytest.approx(1.0, abs=0.03)
    assert emb.freqs.requires_grad is False
    assert set(emb.state_dict()) == {"freqs", "phases"}
    torch.testing.assert_close(MPFourier(256).freqs, emb.freqs)  # same seed, same features


# --- UNet ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "frames", "height", "width", "padding_mode"),
    [
        (1, 4, 32, 32, "zeros"),
        (3, 2, 30, 30, "zeros"),
        (9, 2, 64, 32, "zeros"),
        (2, 3, 27, 27, "circular"),
        (1, 1, 5, 7, "circular"),
        (1, 1, 3, 1, "zeros"),
    ],
)
def test_output_shape_and_zero_at_init(channels, frames, height, width, padding_mode):
    model = _small_unet(channels=channels, frames=frames, padding_mode=padding_mode)
    x, label = _inputs(batch=2, channels=channels, frames=frames, height=height, width=width)
    y = model(x, label)
    assert y.shape == (2, channels, frames, height, width)
    assert y.dtype == torch.float32 and y.is_contiguous()
    assert torch.count_nonzero(y) == 0  # zero-gain output layer


def test_output_nonzero_after_one_step():
    model = _small_unet(frames=3)
    x, label = _inputs(batch=2, channels=1, frames=3, height=16, width=16)
    target = _randn(2, 1, 3, 16, 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    F.mse_loss(model(x, label), target).backward()
    opt.step()
    y = model(x, label)
    assert torch.count_nonzero(y) == y.numel()


def test_activations_keep_unit_magnitude():
    model = _small_unet(channels=2, frames=4, width=16, attention_levels=(1,)).eval()
    seen = []
    for block in (*model.enc, *model.dec):
        block.register_forward_hook(lambda mod, inp, out: seen.append(_rms(out)))
    x, label = _inputs(batch=4, channels=2, frames=4, height=32, width=32)
    with torch.no_grad():
        model(x, label)
    assert len(seen) == len(model.enc) + len(model.dec)
    # Pooling and the masks' spatial correlation move block outputs a little; nothing drifts.
    assert all(0.6 < r < 1.5 for r in seen), seen


def test_circular_padding_is_equivariant_to_periodic_shifts():
    model = _wake(_small_unet(frames=2, padding_mode="circular", attention_levels=(2,))).eval()
    x, label = _inputs(batch=2, channels=1, frames=2, height=16, width=24)
    shift = (model.factor, 2 * model.factor)  # a multiple of the total downsampling factor
    with torch.no_grad():
        y = model(x, label)
        y_rolled = model(x.roll(shift, dims=(-2, -1)), label)
    assert _rms(y) > 0.1
    torch.testing.assert_close(y_rolled, y.roll(shift, dims=(-2, -1)), rtol=1e-4, atol=1e-5)


def test_gradient_reaches_every_parameter():
    model = _small_unet(frames=2, attention_levels=(0, 2), dropout=0.1)
    x, label = _inputs(batch=2, channels=1, frames=2, height=12, width=12)
    target = _randn(2, 1, 2, 12, 12)
    F.mse_loss(model(x, label), target).backward()
    # At initialisation the zero output gain blocks every gradient but its own.
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert (torch.count_nonzero(p.grad) > 0) == (name == "out_gain"), name
    model.zero_grad(set_to_none=True)
    F.mse_loss(_wake(model)(x, label), target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
        assert torch.isfinite(p.grad).all(), name


def test_state_dict_round_trip():
    model = _wake(_small_unet(channels=2, frames=3, attention_levels=(1,)))
    model(*_inputs(batch=2, channels=2, frames=3, height=12, width=12))  # forced weight norm
    torch.manual_seed(123)
    clone = UNet(channels=2, frames=3, width=8, attention_levels=(1,))
    clone.load_state_dict(model.state_dict())
    x, label = _inputs(batch=2, channels=2, frames=3, height=12, width=12, seed=1)
    with torch.no_grad():
        assert torch.equal(clone.eval()(x, label), model.eval()(x, label))


def test_channels_last_matches_contiguous_layout():
    model = _wake(_small_unet(frames=2, channels_last=True)).eval()
    other = _small_unet(frames=2, channels_last=False).eval()
    other.load_state_dict(model.state_dict())
    x, label = _inputs(batch=2, channels=1, frames=2, height=20, width=12)
    with torch.no_grad():
        torch.testing.assert_close(model(x, label), other(x, label), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        (dict(channels=0), "channels"),
        (dict(frames=1.5), "frames"),
        (dict(width=-8), "width"),
        (dict(mults=()), "mults"),
        (dict(mults=(1, 0)), "mults"),
        (dict(blocks_per_level=0), "blocks_per_level"),
        (dict(attention_levels=(3,)), "attention_levels"),
        (dict(dropout=1.0), "dropout"),
        (dict(padding_mode="reflect"), "padding_mode"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        UNet(**(dict(channels=1, frames=2, width=8) | kwargs))


def test_forward_rejects_bad_shapes():
    model = _small_unet(channels=2, frames=3)
    x, label = _inputs(batch=2, channels=2, frames=3, height=8, width=8)
    with pytest.raises(ValueError, match=r"\(B, 4, 3, H, W\)"):
        model(x[:, :2], label)  # only C channels: the mask is missing
    with pytest.raises(ValueError, match="frames=3"):
        model(x[:, :, :2], label)
    with pytest.raises(ValueError, match="noise_label"):
        model(x, label[:1])

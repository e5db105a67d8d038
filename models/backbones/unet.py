"""Magnitude-preserving UNet backbone after EDM2 (Karras et al. 2024, Sec. 3 and App. B) for
space-time fields ``(B, C, T, H, W)``: the denoiser ``D_θ(t, M_ctx ⊙ x_t, M_ctx)`` of Eq. 1.

Deviation from the paper's release: the release runs a 3-D video UNet (spatial convolutions,
temporal attention, RMSNorm), whose temporal attention grows with frames² and whose cost on a
CPU puts the paper's shapes out of reach. Here the T frames are folded into the channel axis and
a 2-D UNet runs over (H, W): the network input is ``(B, 2C·T, H, W)``, its output
``(B, C·T, H, W)``, so time is mixed by the channel dimension of every convolution (the
benchmark suite compares the two).

Architecture (EDM2 "config G" without class labels; fp32, so no activation clipping):
- input: ``[M_ctx ⊙ x_t, M_ctx]`` folded to ``2C·T`` channels plus a constant-ones channel;
  H and W are padded at the far end to a multiple of ``2^(levels−1)``, the output cropped back;
- noise embedding: MP Fourier features of ``noise_label`` → MP linear → MP-SiLU; every block
  scales its hidden channels by ``1 + g·(linear of the embedding)`` with a learned gain ``g``
  initialised to 0 (the per-block linear maps are stacked into one matmul: same function);
- encoder block: pixel norm, MP-SiLU, 3×3 conv, embedding scaling, MP-SiLU, dropout, 3×3 conv,
  MP-sum with the input (t = 0.3); ``blocks_per_level`` per level, each level after the first
  entered by such a block that first average-pools 2×2 (and maps channels by a 1×1 conv);
- decoder: two blocks at the coarsest level; every finer level entered by a block that first
  upsamples ×2 (nearest) and maps to the level's channels, then ``blocks_per_level`` blocks
  each fed the MP-concatenation of the running features and the matching encoder block's
  output. (EDM2 has ``blocks_per_level + 1`` here, the extra ones fed the input-conv and
  downsampling outputs; dropping them saves about a fifth of the work.)
- optional MP cosine self-attention (64 channels per head) in the blocks of
  ``attention_levels``;
- output: 3×3 conv with a learned gain initialised to 0, so the initial output is exactly 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from incdyn.models.backbones.mp_layers import (
    SILU_RMS,
    MPConv,
    MPFourier,
    mp_cat,
    mp_silu,
    mp_sum,
    mp_sum_weights,
    normalize,
)

RES_BALANCE = 0.3  # weight of the residual branch in the MP-sum of each block (EDM2 default)
ATTN_BALANCE = 0.3  # weight of the attention branch in its MP-sum (EDM2 default)
CONCAT_BALANCE = 0.5  # weight of the encoder skip in the decoder's MP-concatenation
CHANNELS_PER_HEAD = 64  # attention head width
PADDING_MODES = ("zeros", "circular")


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class Block(nn.Module):
    """EDM2 residual block; ``enc`` flavour pixel-normalises its input, ``dec`` does not.

    ``resample`` is ``None``, ``"down"`` (2×2 average pool first) or ``"up"`` (nearest ×2 first).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        *,
        flavor: str,
        resample: str | None = None,
        attention: bool = False,
        dropout: float = 0.0,
        padding_mode: str = "zeros",
        takes_skip: bool = False,
    ):
        super().__init__()
        self.flavor = flavor
        self.resample = resample
        self.dropout = dropout
        self.takes_skip = takes_skip  # the UNet concatenates an encoder skip before this block
        self.conv_skip = MPConv(cin, cout, (1, 1)) if cin != cout else None
        self.cout = cout
        self.conv_res0 = MPConv(cout if flavor == "enc" else cin, cout, (3, 3), padding_mode)
        self.conv_res1 = MPConv(cout, cout, (3, 3), padding_mode)
        self.num_heads = max(cout // CHANNELS_PER_HEAD, 1) if attention else 0
        if attention:
            self.attn_qkv = MPConv(cout, 3 * cout, (1, 1))
            self.attn_proj = MPConv(cout, cout, (1, 1))

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """x: (B, cin, H, W); scale: (B, cout) noise-embedding modulation ``1 + g·emb``."""
        # Main branch input h = silu(x); MP-SiLU's 1/0.596 is folded into conv_res0's gain.
        if self.flavor == "enc":
            if self.resample == "down":
                x = F.avg_pool2d(x, 2)
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm
            h = F.silu(x)
        elif self.resample == "up":
            # silu and the 1×1 skip conv commute with nearest upsampling: run them coarse.
            h = _upsample(F.silu(x))
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = _upsample(x)
        else:
            h = F.silu(x)
            if self.conv_skip is not None:
                x = self.conv_skip(x)
        y = self.conv_res0(h, gain=1.0 / SILU_RMS)
        y = F.silu(y * scale[:, :, None, None].to(y.dtype))
        if self.dropout > 0.0:
            y = F.dropout(y, p=self.dropout, training=self.training)
        # MP-sum (Eq. 88) with both weights and the second MP-SiLU's 1/0.596 folded into gains.
        wx, wy = mp_sum_weights(RES_BALANCE)
        x = torch.add(self.conv_res1(y, gain=wy / SILU_RMS), x, alpha=wx)
        if self.num_heads:
            x = self._attention(x)
        return x

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        # MP cosine self-attention (EDM2 App. B.5): q, k, v pixel-normalised per head.
        b, c, hh, ww = x.shape
        qkv = self.attn_qkv(x).reshape(b, self.num_heads, c // self.num_heads, 3, hh * ww)
        qkv = normalize(qkv, dim=2)
        q, k, v = (t.transpose(-1, -2) for t in qkv.unbind(3))  # (B, heads, HW, d)
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.attn_proj(y.transpose(-1, -2).reshape(b, c, hh, ww))
        return mp_sum(x, y, t=ATTN_BALANCE)


class UNet(nn.Module):
    """EDM2-style magnitude-preserving 2-D UNet over (H, W) with the frames folded into channels.

    Args:
        channels: physical channels ``C`` of the field.
        frames: frames ``T`` of the field (fixed: they are folded into conv channels).
        width: channels of the finest level.
        mults: channel multiplier per level; ``len(mults)`` levels, resolution halved per level.
        blocks_per_level: residual blocks per level in the encoder, and skip-fed blocks per level
            in the decoder (besides the down-/upsampling blocks and the two coarsest ones).
        attention_levels: level indices (0 = finest) whose blocks end in self-attention.
        dropout: dropout probability inside the residual blocks.
        padding_mode: ``"zeros"`` or ``"circular"`` (periodic PDE domains) for every 3×3 conv.
        channels_last: run the convolutions in ``torch.channels_last`` memory format (faster
            with oneDNN on CPU); inputs and outputs keep the ordinary layout.
        outputs: fields returned per channel (1: the denoiser's estimate; 2: e.g. a mean and a
            log-variance head, ``(B, 2C, T, H, W)``, for a DINCAE-style network).
    """

    def __init__(
        self,
        *,
        channels: int,
        frames: int,
        width: int = 64,
        mults: tuple[int, ...] = (1, 2, 2),
        blocks_per_level: int = 2,
        attention_levels: tuple[int, ...] = (),
        dropout: float = 0.0,
        padding_mode: str = "zeros",
        channels_last: bool = True,
        outputs: int = 1,
    ):
        super().__init__()
        _check_args(
            channels,
            frames,
            width,
            mults,
            blocks_per_level,
            attention_levels,
            dropout,
            padding_mode,
        )
        if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
            raise ValueError(f"outputs must be a positive int, got {outputs!r}")
        self.channels, self.frames, self.outputs = channels, frames, outputs
        self.padding_mode = padding_mode
        self.channels_last = channels_last
        self.levels = len(mults)
        self.factor = 2 ** (self.levels - 1)  # total downsampling: H, W are padded to multiples
        chans = [width * m for m in mults]
        cemb = max(chans)
        block = dict(dropout=dropout, padding_mode=padding_mode)

        self.emb_fourier = MPFourier(width)
        self.emb_noise = MPConv(width, cemb)
        self.conv_in = MPConv(2 * channels * frames + 1, chans[0], (3, 3), padding_mode)
        self.enc = nn.ModuleList()
        skips = []  # channels of the encoder-block outputs, one skip per decoder block
        for level, c in enumerate(chans):
            attn = level in attention_levels
            if level > 0:
                self.enc.append(Block(chans[level - 1], c, flavor="enc", resample="down", **block))
            for _ in range(blocks_per_level):
                self.enc.append(Block(c, c, flavor="enc", attention=attn, **block))
                skips.append(c)
        self.dec = nn.ModuleList()
        cur = chans[-1]
        for level in reversed(range(self.levels)):
            c, attn = chans[level], level in attention_levels
            if level == self.levels - 1:
                self.dec.append(Block(cur, cur, flavor="dec", attention=attn, **block))
                self.dec.append(Block(cur, cur, flavor="dec", **block))
            else:
                self.dec.append(Block(cur, c, flavor="dec", resample="up", **block))
            cur = c
            for _ in range(blocks_per_level):
                cin = cur + skips.pop()
                self.dec.append(
                    Block(cin, c, flavor="dec", attention=attn, takes_skip=True, **block)
                )
        self.conv_out = MPConv(cur, outputs * channels * frames, (3, 3), padding_mode)
        self.out_gain = nn.Parameter(torch.zeros([]))
        # Every block's emb→channel-scale linear layer (EDM2's per-block ``emb_linear``) stacked
        # into one: weight rows are normalised one by one, so this is the same map in one matmul.
        self.block_channels = [blk.cout for blk in (*self.enc, *self.dec)]
        self.emb_linear = MPConv(cemb, sum(self.block_channels))
        self.emb_gain = nn.Parameter(torch.zeros(len(self.block_channels)))  # g per block
        repeats = torch.tensor(self.block_channels)
        self.register_buffer("_gain_repeats", repeats, persistent=False)

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor) -> torch.Tensor:
        """x: (B, 2C, T, H, W) = channel concatenation [ctx ⊙ x_t (C channels), ctx mask
        repeated over the C channels]; noise_label: (B,) float (the caller passes e.g.
        log(sigma)/4); returns (B, C, T, H, W) clean-data estimate (``(B, outputs·C, T, H, W)``
        with ``outputs`` > 1)."""
        b, hh, ww = self._check_input(x, noise_label)
        emb = mp_silu(self.emb_noise(self.emb_fourier(noise_label.to(x.dtype))))
        gains = self.emb_gain.repeat_interleave(
            self._gain_repeats, output_size=sum(self.block_channels)
        )
        scales = (self.emb_linear(emb, gain=gains[:, None]) + 1.0).split(self.block_channels, 1)
        x = x.reshape(b, -1, hh, ww)
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)  # constant channel (EDM2)
        x = self._pad(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        x = self.conv_in(x)
        skips = []
        for block, scale in zip(self.enc, scales, strict=False):
            x = block(x, scale)
            if block.resample is None:
                skips.append(x)
        for block, scale in zip(self.dec, scales[len(self.enc) :], strict=True):
            if block.takes_skip:
                x = mp_cat(x, skips.pop(), t=CONCAT_BALANCE)
            x = block(x, scale)
        x = self.conv_out(x, gain=self.out_gain)
        x = x[:, :, :hh, :ww].contiguous()
        return x.view(b, self.outputs * self.channels, self.frames, hh, ww)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Pad H, W at the far end to multiples of ``factor``: zeros (the ones channel then marks
        the real domain) or, for periodic domains, the wrapped-around field."""
        hh, ww = x.shape[-2:]
        ph, pw = -hh % self.factor, -ww % self.factor
        if ph == 0 and pw == 0:
            return x
        if self.padding_mode == "zeros":
            return F.pad(x, (0, pw, 0, ph))
        rows = torch.arange(hh + ph, device=x.device) % hh
        cols = torch.arange(ww + pw, device=x.device) % ww
        return x.index_select(-2, rows).index_select(-1, cols)

    def _check_input(self, x: torch.Tensor, noise_label: torch.Tensor) -> tuple[int, int, int]:
        want = f"(B, {2 * self.channels}, {self.frames}, H, W)"
        if x.ndim != 5 or x.shape[1] != 2 * self.channels or x.shape[2] != self.frames:
            raise ValueError(
                f"x must be {want} = [ctx ⊙ x_t, ctx mask] for channels={self.channels}, "
                f"frames={self.frames}; got shape {tuple(x.shape)}"
            )
        if noise_label.shape != (x.shape[0],):
            raise ValueError(
                f"noise_label must have shape ({x.shape[0]},) to match x's batch; "
                f"got {tuple(noise_label.shape)}"
            )
        return x.shape[0], x.shape[3], x.shape[4]


def _check_args(
    channels, frames, width, mults, blocks_per_level, attention_levels, dropout, padding_mode
) -> None:
    def positive_int(name, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")

    positive_int("channels", channels)
    positive_int("frames", frames)
    positive_int("width", width)
    positive_int("blocks_per_level", blocks_per_level)
    if not isinstance(mults, tuple | list) or len(mults) == 0:
        raise ValueError(f"mults must be a non-empty tuple of positive ints, got {mults!r}")
    for m in mults:
        positive_int("each of mults", m)
    levels = tuple(range(len(mults)))
    if not isinstance(attention_levels, tuple | list) or any(
        lv not in levels or isinstance(lv, bool) for lv in attention_levels
    ):
        raise ValueError(
            f"attention_levels must be a tuple of level indices in {levels}, "
            f"got {attention_levels!r}"
        )
    if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")

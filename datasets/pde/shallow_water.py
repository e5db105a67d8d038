"""Rotating shallow water (paper Eq. 65a, App. G.1): a batched RK4 solver on an Arakawa C-grid.

The equations, on a doubly periodic square, with ``h`` the surface displacement and
``D = H + h`` the total depth,

    ∂u/∂t − f v = −g ∂h/∂x − (u·∇)u,   ∂v/∂t + f u = −g ∂h/∂y − (u·∇)v,   ∂h/∂t + ∇·(D u) = 0,

are integrated in their (identical) vector-invariant form

    ∂u/∂t = q V − ∂B/∂x,   ∂v/∂t = −q U − ∂B/∂y,   ∂h/∂t = −(∂U/∂x + ∂V/∂y),

with mass fluxes ``U = D u, V = D v``, potential vorticity ``q = (f + ζ)/D``,
``ζ = ∂v/∂x − ∂u/∂y`` and Bernoulli function ``B = g h + ½(u² + v²)``.

Space: Sadourny's (1975) energy-conserving C-grid scheme. ``h`` sits at cell centres, ``u`` on
west faces, ``v`` on south faces, ``ζ`` and ``q`` on south-west corners (``D`` there is the
4-point mean); ``U = D̄ˣ u``, ``V = D̄ʸ v``; ``B = g h + ¼(u²_w + u²_e + v²_s + v²_n)``; the
Coriolis/vorticity terms are ``(q V̄ˣ)‾ʸ`` and ``−(q Ūʸ)‾ˣ``. The semi-discrete system conserves
mass exactly and total energy :func:`total_energy` exactly; RK4 (classical) in time keeps mass
to round-off and drifts energy only by the (tiny) RK4 dissipation. There is no explicit
viscosity, so the stored data satisfy the inviscid equations that
``physics_metrics.shallow_water_residual`` checks. Stored fields are at cell centres (``u``
and ``v`` are the means of the two faces of each cell). Grid index: axis −2 is y, axis −1 is x.

    from incdyn.datasets.pde.shallow_water import PRESETS, generate
    sim = generate(PRESETS["small"], n=300, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator

from incdyn.datasets.simulation import Simulation
from incdyn.datasets.source_config import Int, Number, SourceConfig

CHANNELS = ("u", "v", "h")
MAX_COURANT = 1.0  # dt·c·√(1/dx²+1/dy²) limit for gravity waves (RK4 on this grid: ≈ 1.41)
ICVelocity = Literal["rest", "geostrophic"]
IC_VELOCITIES = get_args(ICVelocity)
Range = tuple[Number, Number]  # (lo, hi) of a uniform draw per sample
UNITS = dict(u="m/s", v="m/s", h="m", f="1/s", g="m/s^2", H="m", time="s", x="m", y="m")
_CHUNK = 128  # samples integrated together in generate(); bounds the float64 working memory


def _steps(duration: float, dt: float) -> int | None:
    """``duration / dt`` if it is a whole number ≥ 1 (to round-off), else None."""
    ratio = duration / dt
    steps = round(ratio)
    return steps if steps >= 1 and abs(ratio - steps) <= 1e-9 * max(1.0, ratio) else None


class ShallowWaterConfig(SourceConfig):
    """Random rotating shallow-water trajectories on a periodic square (units: SI-like, O(1)).

    Attributes:
        grid: cells per side ``N`` of the ``N × N`` grid; an integer ≥ 8.
        frames: stored frames ``T`` (≥ 1); frame 0 is the initial condition.
        dt: RK4 step in s (> 0); ``dt·c_max·√2·N/L`` must stay ≤ ``MAX_COURANT``, with
            ``c_max = √(g_max H_max (1 + bumps·amplitude_max))``.
        frame_interval: time between stored frames in s; a whole multiple of ``dt``.
        domain: side length ``L`` of the square in m (> 0).
        f_range: Coriolis parameter ``f`` in 1/s, drawn uniformly per sample (≥ 0; > 0 for
            geostrophic initial velocities).
        g_range: gravity ``g`` in m/s², drawn uniformly per sample (> 0).
        H_range: mean depth ``H`` in m, drawn uniformly per sample (> 0).
        bumps: number of Gaussian bumps in the initial ``h`` (≥ 1).
        amplitude_range: bump amplitude as a fraction of ``H`` (random sign), uniform;
            ``0 ≤ lo ≤ hi`` and ``bumps·hi < 1`` so that the depth stays positive.
        width_range: bump width ``σ`` in m, uniform (> 0).
        ic_velocity: ``"rest"`` (u = v = 0: geostrophic adjustment radiates gravity waves) or
            ``"geostrophic"`` (:func:`geostrophic_velocity`: the discrete *linear* balance of
            ``h``; the nonlinear terms stay unbalanced, and at the default ranges the Rossby
            number reaches O(1), so the flow still adjusts, more gently).
    """

    grid: Int = Field(64, ge=8)  # cells per side
    frames: Int = Field(50, ge=1)  # stored frames
    dt: Number = Field(0.1 / 3, gt=0.0)  # RK4 step, s (Courant number 0.87)
    frame_interval: Number = Field(0.1, gt=0.0)  # time between frames, s (3 steps)
    domain: Number = Field(2 * math.pi, gt=0.0)  # side L, m
    f_range: Range = (0.5, 2.0)  # Coriolis parameter, 1/s (≥ 0)
    g_range: Range = (0.5, 1.5)  # gravity, m/s² (> 0)
    H_range: Range = (0.5, 1.5)  # mean depth, m (> 0; Rossby radius √(gH)/f: 0.25–3 m)
    bumps: Int = Field(3, ge=1)  # Gaussian bumps in the initial h
    amplitude_range: Range = (0.05, 0.15)  # bump height / H (≥ 0), random sign
    width_range: Range = (0.5, 1.0)  # bump width σ, m (> 0)
    ic_velocity: ICVelocity = "rest"

    @field_validator("frame_interval")
    @classmethod
    def _whole_steps(cls, value: float, info: ValidationInfo) -> float:
        dt = info.data.get("dt")
        if dt is not None and _steps(value, dt) is None:
            raise ValueError(f"expected a whole multiple of dt={dt!r}")
        return value

    @field_validator("f_range", "g_range", "H_range", "amplitude_range", "width_range")
    @classmethod
    def _ordered_and_signed(cls, rng: tuple[float, float], info: ValidationInfo):
        positive = info.field_name in ("g_range", "H_range", "width_range")
        low_ok = rng[0] > 0 if positive else rng[0] >= 0
        if not (low_ok and rng[0] <= rng[1]):
            sign = ">" if positive else "≥"
            raise ValueError(f"expected a pair (lo, hi) of numbers with {sign} 0 lo ≤ hi")
        bumps = info.data.get("bumps") if info.field_name == "amplitude_range" else None
        if bumps is not None and bumps * rng[1] >= 1:
            raise ValueError(f"expected bumps·hi < 1 (bumps={bumps})")
        return rng

    @model_validator(mode="after")
    def _balanced_and_stable(self) -> ShallowWaterConfig:
        if self.ic_velocity == "geostrophic" and self.f_range[0] <= 0:
            raise ValueError(
                f"f_range={self.f_range!r}: expected f > 0 for geostrophic initial velocities"
            )
        if self.courant > MAX_COURANT:
            raise ValueError(
                f"dt={self.dt!r}: Courant number {self.courant:.3g} > {MAX_COURANT}; reduce dt"
            )
        return self

    @property
    def steps_per_frame(self) -> int:
        """RK4 steps between two stored frames."""
        return _steps(self.frame_interval, self.dt)  # type: ignore[return-value]

    @property
    def courant(self) -> float:
        """Worst-case gravity-wave Courant number ``dt·c_max·√(1/dx² + 1/dy²)``."""
        c_max = math.sqrt(
            self.g_range[1] * self.H_range[1] * (1 + self.bumps * self.amplitude_range[1])
        )
        return self.dt * c_max * math.sqrt(2) * self.grid / self.domain


PRESETS: dict[str, ShallowWaterConfig] = {
    # The paper's resolution (App. G.1: 64×64, 50 frames; 5k/1k/1k samples live elsewhere).
    "paper": ShallowWaterConfig(),
    # Small and quick: 32×32 grid, 16 frames.
    "small": ShallowWaterConfig(grid=32, frames=16, dt=0.2 / 3, frame_interval=0.2),
}


def _xm(a: torch.Tensor) -> torch.Tensor:
    return torch.roll(a, 1, dims=-1)  # a[..., i-1]


def _ym(a: torch.Tensor) -> torch.Tensor:
    return torch.roll(a, 1, dims=-2)  # a[..., j-1, :]


def _col(p: torch.Tensor | float) -> torch.Tensor | float:
    """A per-sample ``(B,)`` parameter broadcast against ``(B, H, W)`` fields."""
    return p[:, None, None] if isinstance(p, torch.Tensor) and p.ndim == 1 else p


def tendency(state: torch.Tensor, f, g, H, dx: float, dy: float) -> torch.Tensor:
    """``∂/∂t`` of a C-grid state ``(B, 3, H, W)`` = (u west faces, v south faces, h centres).

    ``f``, ``g``, ``H`` are ``(B,)`` tensors or floats; the scheme is the one in the module
    docstring.
    """
    f, g, H = _col(f), _col(g), _col(H)
    u, v, h = state.unbind(dim=1)
    depth = H + h
    depth_xm, depth_ym = _xm(depth), _ym(depth)
    pair_x = depth + depth_xm
    flux_u = (pair_x * u).mul_(0.5)  # U = D̄ˣ u at west faces
    flux_v = (depth + depth_ym).mul_(v).mul_(0.5)  # V = D̄ʸ v at south faces
    depth_c = pair_x.add_(depth_ym).add_(_ym(depth_xm)).mul_(0.25)  # D at corners
    zeta = (v - _xm(v)).div_(dx).sub_((u - _ym(u)).div_(dy))  # ζ at south-west corners
    q = zeta.add_(f).div_(depth_c)  # potential vorticity at corners
    u2, v2 = u * u, v * v
    bernoulli = (u2 + u2.roll(-1, -1)).add_(v2).add_(v2.roll(-1, -2)).mul_(0.25).add_(g * h)
    qv = (flux_v + _xm(flux_v)).mul_(q).mul_(0.5)  # q V̄ˣ at corners
    qu = (flux_u + _ym(flux_u)).mul_(q).mul_(0.5)  # q Ūʸ at corners
    out = torch.empty_like(state)
    du, dv, dh = out.unbind(dim=1)
    torch.add(qv, qv.roll(-1, -2), out=du).mul_(0.5).sub_((bernoulli - _xm(bernoulli)).div_(dx))
    torch.add(qu, qu.roll(-1, -1), out=dv).mul_(-0.5).sub_((bernoulli - _ym(bernoulli)).div_(dy))
    torch.sub(flux_u, flux_u.roll(-1, -1), out=dh).div_(dx)
    dh.sub_((flux_v.roll(-1, -2) - flux_v).div_(dy))
    return out


def step(state: torch.Tensor, f, g, H, dt: float, dx: float, dy: float) -> torch.Tensor:
    """One classical RK4 step of :func:`tendency`; ``state`` is ``(B, 3, H, W)``."""
    k = tendency(state, f, g, H, dx, dy)
    total = k.clone()
    k = tendency(torch.add(state, k, alpha=0.5 * dt), f, g, H, dx, dy)
    total.add_(k, alpha=2.0)
    k = tendency(torch.add(state, k, alpha=0.5 * dt), f, g, H, dx, dy)
    total.add_(k, alpha=2.0)
    k = tendency(torch.add(state, k, alpha=dt), f, g, H, dx, dy)
    return torch.add(state, total.add_(k), alpha=dt / 6)


def to_centres(state: torch.Tensor) -> torch.Tensor:
    """C-grid ``(…, 3, H, W)`` to cell centres: ``u``, ``v`` averaged over the two faces."""
    u, v, h = state.unbind(dim=-3)
    return torch.stack((0.5 * (u + u.roll(-1, -1)), 0.5 * (v + v.roll(-1, -2)), h), dim=-3)


def solve(
    state0: torch.Tensor,
    f,
    g,
    H,
    *,
    dt: float,
    dx: float,
    dy: float,
    steps_per_frame: int,
    frames: int,
    centred: bool = False,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Frames ``(B, T, 3, H, W)`` from the C-grid state ``state0`` ``(B, 3, H, W)``.

    Frame 0 is ``state0``; frame ``k`` is after ``k·steps_per_frame`` RK4 steps. With
    ``centred`` the frames are moved to cell centres (:func:`to_centres`); ``dtype`` (default:
    the state's) is the dtype of the returned frames. Raises ValueError if the state stops
    being finite.
    """
    out = torch.empty(
        (state0.shape[0], frames, *state0.shape[1:]),
        dtype=dtype or state0.dtype,
        device=state0.device,
    )
    state = state0
    for k in range(frames):
        if k:
            for _ in range(steps_per_frame):
                state = step(state, f, g, H, dt, dx, dy)
            if not torch.isfinite(state).all():
                raise ValueError(f"the state became non-finite by frame {k}; reduce dt={dt!r}")
        out[:, k] = to_centres(state) if centred else state
    return out


def geostrophic_velocity(h: torch.Tensor, f, g, dx: float, dy: float) -> torch.Tensor:
    """C-grid ``(u, v)`` ``(B, 2, H, W)`` in exact discrete linear geostrophic balance with ``h``.

    Solves ``f ū^{xy} = −g δ_y h`` at v-points and ``f v̄^{xy} = g δ_x h`` at u-points (the
    scheme's Coriolis averaging) in Fourier space; Nyquist modes, where the 4-point mean
    vanishes, are dropped. For ``h = A sin(k y)`` this is ``u = −(g/f) ∂h/∂y`` times
    ``tan(k dy/2)/(k dy/2)``.
    """
    ny, nx = h.shape[-2:]
    kw = dict(dtype=torch.float64, device=h.device)
    ay = 2 * math.pi * torch.fft.fftfreq(ny, **kw)[:, None]  # κ_y = k_y dy
    ax = 2 * math.pi * torch.fft.rfftfreq(nx, **kw)[None, :]
    keep = (torch.cos(ay / 2).abs() > 1e-8) & (torch.cos(ax / 2).abs() > 1e-8)
    cy, cx = torch.cos(ay / 2).clamp_min(1e-8), torch.cos(ax / 2).clamp_min(1e-8)
    h_hat = torch.fft.rfft2(h.to(torch.float64)) * keep
    ratio = _col(torch.as_tensor(g, **kw) / torch.as_tensor(f, **kw))
    u_hat = -2j * torch.tan(ay / 2) / dy * torch.exp(-0.5j * ax) / cx * h_hat
    v_hat = 2j * torch.tan(ax / 2) / dx * torch.exp(-0.5j * ay) / cy * h_hat
    u, v = (torch.fft.irfft2(a, s=(ny, nx)) for a in (u_hat, v_hat))
    return torch.stack((ratio * u, ratio * v), dim=1)


def _uniform(rng: tuple[float, float], shape: tuple[int, ...], gen: torch.Generator):
    r = torch.rand(shape, generator=gen, dtype=torch.float64, device=gen.device)
    return rng[0] + (rng[1] - rng[0]) * r


def random_initial_state(
    cfg: ShallowWaterConfig, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``n`` C-grid initial states ``(n, 3, N, N)`` float64 and their params ``{f, g, H}``.

    ``h`` is a sum of ``cfg.bumps`` periodic Gaussian bumps
    ``± a H exp(((cos(2π(x−x₀)/L) − 1) + (cos(2π(y−y₀)/L) − 1))·(L/2π)²/σ²)`` (≈ Gaussian of
    width σ for σ ≪ L, smooth across the boundary) with uniform centres, ``a`` from
    ``amplitude_range``, σ from ``width_range``; its spatial mean is removed so ``H`` is the
    mean depth. Velocities: see ``ShallowWaterConfig.ic_velocity``.
    """
    if n < 0:
        raise ValueError(f"n={n!r} must be ≥ 0")
    f = _uniform(cfg.f_range, (n,), generator)
    g = _uniform(cfg.g_range, (n,), generator)
    depth = _uniform(cfg.H_range, (n,), generator)
    shape = (n, cfg.bumps, 1, 1)
    x0 = _uniform((0.0, cfg.domain), shape, generator)
    y0 = _uniform((0.0, cfg.domain), shape, generator)
    width = _uniform(cfg.width_range, shape, generator)
    amp = _uniform(cfg.amplitude_range, shape, generator)
    sign = torch.where(_uniform((0.0, 1.0), shape, generator) < 0.5, -1.0, 1.0)
    dx = cfg.domain / cfg.grid
    xc = (torch.arange(cfg.grid, dtype=torch.float64, device=generator.device) + 0.5) * dx
    k = 2 * math.pi / cfg.domain
    phase = (torch.cos(k * (xc[None, :] - x0)) - 1) + (torch.cos(k * (xc[:, None] - y0)) - 1)
    bumps = sign * amp * torch.exp(phase / (k * width) ** 2)
    h = depth[:, None, None] * bumps.sum(dim=1)
    h = h - h.mean(dim=(-2, -1), keepdim=True)
    if cfg.ic_velocity == "geostrophic":
        uv = geostrophic_velocity(h, f, g, dx, dx)
    else:
        uv = torch.zeros((n, 2, cfg.grid, cfg.grid), dtype=torch.float64, device=h.device)
    return torch.cat((uv, h[:, None]), dim=1), {"f": f, "g": g, "H": depth}


def total_mass(h: torch.Tensor) -> torch.Tensor:
    """Sum of the displacement ``h`` ``(…, H, W)`` over the grid, ``(…)`` (× dx·dy: volume)."""
    return h.sum(dim=(-2, -1))


def total_energy(u: torch.Tensor, v: torch.Tensor, h: torch.Tensor, g, H) -> torch.Tensor:
    """Conserved energy of C-grid fields ``(B, H, W)``, summed over cells: ``(B,)``.

    ``E = Σ ½ D̄ˣ u² + Σ ½ D̄ʸ v² + Σ ½ g h²`` with ``D = H + h`` (× dx·dy: the integral), the
    exact invariant of the semi-discrete scheme. ``g``, ``H``: ``(B,)`` tensors or floats.
    """
    g, H = _col(g), _col(H)
    depth = H + h
    kinetic = 0.25 * ((depth + _xm(depth)) * u**2 + (depth + _ym(depth)) * v**2)
    return (kinetic + 0.5 * g * h**2).sum(dim=(-2, -1))


def generate(
    cfg: ShallowWaterConfig, n: int, generator: torch.Generator, *, chunk: int = _CHUNK
) -> Simulation:
    """``n`` trajectories: fields ``(n, T, 3, N, N)`` float32 at cell centres, params f, g, H.

    The solver runs on ``generator.device``; the returned tensors are on the CPU and the
    fields take ``n·T·3·N²·4`` bytes (2.5 MB a sample for the paper preset): generate large
    sets shard by shard. All initial states are drawn first, so the output depends only on ``cfg`` and the
    generator's state (not on ``chunk``, the number of samples integrated together).
    """
    state0, params = random_initial_state(cfg, n, generator)
    dx = cfg.domain / cfg.grid
    kwargs = dict(dt=cfg.dt, dx=dx, dy=dx, steps_per_frame=cfg.steps_per_frame)
    fields = torch.empty((n, cfg.frames, 3, cfg.grid, cfg.grid), dtype=torch.float32)
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        p = [params[k][sl] for k in ("f", "g", "H")]
        fields[sl] = solve(
            state0[sl], *p, frames=cfg.frames, centred=True, dtype=torch.float32, **kwargs
        )
    coords = (np.arange(cfg.grid) + 0.5) * dx  # cell centres
    return Simulation(
        fields=fields,
        params={k: p.cpu() for k, p in params.items()},
        channels=CHANNELS,
        time=np.arange(cfg.frames) * cfg.frame_interval,
        y=coords.copy(),
        x=coords,
        units=dict(UNITS),
    )

"""Input-convex networks ``g(x, c)``: PIACNN (the paper's), PICNN and ICNN (ablations).

All three share one interface, built so that everything depending on the equilibria only is
computed once per call for all ``L`` classes (the project's choice, see docs/design.md)::

    cond = net.condition(C)          # C: (L, d) -> per-class conditioning (u-path, attention)
    g = net(x, cond)                 # x: (B, L, d) -> (B, L)   class l uses c_l
    g = net(x, cond, cls)            # x: (N, d), cls: (N,) long -> (N,)

PIACNN (paper eqs. 6–8)::

    u₀ = c,   z₀ = x
    u_{i+1} = σ̃(Ã_i u_i + b̃_i)
    z_{i+1} = σ_i( A_i^(z) (a_i^(z) ∘ z_i) + A_i^(x) (a_i^(x) ∘ x) + A_i^(u) u_i + b_i )
    a_i^(z) = n_z · softmax(A_i^(zu) u_i + b_i^(z)),   a_i^(x) = d · softmax(A_i^(xu) u_i + b_i^(x))
    g(x, c) = z_k

The attention weights depend on ``c`` only and are positive, and ``A_i^(z) = softplus(raw)`` ≥ 0
is enforced inside ``forward``; with convex non-decreasing ``σ_i`` (softplus; identity on the
last layer) ``g`` is convex in ``x`` for every ``c``.  The softmax is scaled by the feature
dimension so that uniform attention is the identity: PICNN is PIACNN with all attention = 1.
Layer 0 has ``z₀ = x``, so its z-term would duplicate the x-term and is omitted.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NonNegLinear", "PIACNN", "PICNN", "ICNN", "build_convex"]

_ACT = {"softplus": F.softplus, "relu": F.relu}


def _inverse_softplus(w: torch.Tensor) -> torch.Tensor:
    return w + torch.log(-torch.expm1(-w))


class NonNegLinear(nn.Module):
    """``y = x Wᵀ`` with ``W = softplus(raw) ≥ 0`` at every call (no bias).

    The effective weights start uniformly in ``[0.5, 1.5] · init_scale / fan_in`` so that a
    stack of these layers neither explodes nor vanishes at initialisation (the project's choice, see docs/design.md).
    """

    def __init__(self, in_features: int, out_features: int, init_scale: float = 1.0):
        super().__init__()
        w0 = (0.5 + torch.rand(out_features, in_features)) * init_scale / in_features
        self.raw = nn.Parameter(_inverse_softplus(w0))

    @property
    def weight(self) -> torch.Tensor:
        return F.softplus(self.raw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t()


class PIACNN(nn.Module):
    """Partially input-attention-based convex network (see module docstring).

    ``dim``: ``d`` of ``x`` and ``c``; ``z_widths``: ``[n_1, …, n_k]`` (last = 1);
    ``u_widths``: ``[m_1, …, m_{k−1}]``; ``attention=False`` gives the PICNN.
    """

    def __init__(self, dim: int, z_widths=(256, 256, 1), u_widths=(256, 256),
                 activation: str = "softplus", attention: bool = True, init_scale: float = 1.0):
        super().__init__()
        z_widths, u_widths = list(z_widths), list(u_widths)
        if len(u_widths) != len(z_widths) - 1:
            raise ValueError(f"need len(u_widths) == len(z_widths) - 1, got {u_widths}, {z_widths}")
        self.dim, self.attention, self.k = dim, attention, len(z_widths)
        self.act = _ACT[activation]
        u_dims = [dim] + u_widths                     # u_0 = c, …, u_{k-1}
        z_in = [dim] + z_widths[:-1]                  # width of z_i
        self.u_layers = nn.ModuleList(nn.Linear(u_dims[i], u_dims[i + 1]) for i in range(self.k - 1))
        self.z_layers = nn.ModuleList(
            NonNegLinear(z_in[i], z_widths[i], init_scale) for i in range(1, self.k))
        self.x_layers = nn.ModuleList(nn.Linear(dim, z_widths[i], bias=False) for i in range(self.k))
        self.u_out = nn.ModuleList(nn.Linear(u_dims[i], z_widths[i]) for i in range(self.k))
        if attention:
            self.att_z = nn.ModuleList(nn.Linear(u_dims[i], z_in[i]) for i in range(1, self.k))
            self.att_x = nn.ModuleList(nn.Linear(u_dims[i], dim) for i in range(self.k))
        for lin in self.x_layers:  # the x-term sees attention-weighted x (mean weight 1)
            nn.init.normal_(lin.weight, std=1.0 / math.sqrt(dim))

    def condition(self, C: torch.Tensor) -> list[tuple]:
        """Per-layer ``(a^(z), a^(x), A^(u) u + b)`` for every class; ``C``: ``(L, d)``."""
        u = C
        cond = []
        for i in range(self.k):
            bias = self.u_out[i](u)
            if self.attention:
                ax = self.dim * torch.softmax(self.att_x[i](u), dim=-1)
                az = (self.z_layers[i - 1].raw.shape[1] * torch.softmax(self.att_z[i - 1](u), dim=-1)
                      if i > 0 else None)
            else:
                ax = az = None
            cond.append((az, ax, bias))
            if i < self.k - 1:
                u = F.softplus(self.u_layers[i](u))
        return cond

    def gradient_bound(self, cond: list[tuple], dtype: torch.dtype | None = None) -> torch.Tensor:
        """Upper bound of ``sup_x ‖∇_x g(x, c_k)‖₂`` per class: ``(L,)``, differentiable.

        ``∇z_{i+1} = diag(σ') [A_i^(z) diag(a_i^(z)) ∇z_i + A_i^(x) diag(a_i^(x))]`` with
        ``σ' ∈ [0, 1]`` (softplus, ReLU; the last layer is linear), so
        ``L_{z_{i+1}} ≤ ‖A_i^(z) diag(a_i^(z))‖₂ L_{z_i} + ‖A_i^(x) diag(a_i^(x))‖₂`` with exact
        spectral norms; ``cond`` from :meth:`condition`.  ``dtype`` (e.g. float64) casts the
        weights first."""
        L = cond[0][2].shape[0]
        Lz = None
        for i, (az, ax, _bias) in enumerate(cond):
            Ax = self.x_layers[i].weight
            Ax = Ax if dtype is None else Ax.to(dtype)
            Mx = Ax.unsqueeze(0).expand(L, -1, -1)
            if ax is not None:
                Mx = Mx * (ax if dtype is None else ax.to(dtype)).unsqueeze(1)
            nx = torch.linalg.matrix_norm(Mx, ord=2)
            if i == 0:
                Lz = nx
                continue
            Az = self.z_layers[i - 1].weight
            Az = Az if dtype is None else Az.to(dtype)
            Mz = Az.unsqueeze(0).expand(L, -1, -1)
            if az is not None:
                Mz = Mz * (az if dtype is None else az.to(dtype)).unsqueeze(1)
            Lz = torch.linalg.matrix_norm(Mz, ord=2) * Lz + nx
        return Lz

    def forward(self, x: torch.Tensor, cond: list[tuple], cls: torch.Tensor | None = None):
        if cls is not None:
            cond = [tuple(None if t is None else t[cls] for t in layer) for layer in cond]
        z = x
        for i, (az, ax, bias) in enumerate(cond):
            xin = x * ax if ax is not None else x
            pre = self.x_layers[i](xin) + bias
            if i > 0:
                pre = pre + self.z_layers[i - 1](z * az if az is not None else z)
            z = self.act(pre) if i < self.k - 1 else pre
        return z.squeeze(-1)


class PICNN(PIACNN):
    """PIACNN without attention (all softmax terms replaced by ones)."""

    def __init__(self, dim: int, z_widths=(256, 256, 1), u_widths=(256, 256),
                 activation: str = "softplus", init_scale: float = 1.0):
        super().__init__(dim, z_widths, u_widths, activation, attention=False, init_scale=init_scale)


class ICNN(nn.Module):
    """``L`` independent input-convex nets ``g_l(x)`` (no ``c`` path), evaluated batched.

    ``z_{i+1} = σ(A_i^(z) z_i + A_i^(x) x + b_i)`` with ``A^(z) = softplus(raw) ≥ 0``; weights of
    all classes are stacked as ``(L, out, in)`` tensors.
    """

    def __init__(self, dim: int, num_classes: int, z_widths=(256, 256, 1),
                 activation: str = "softplus", init_scale: float = 1.0):
        super().__init__()
        z_widths = list(z_widths)
        self.k, self.act, L = len(z_widths), _ACT[activation], num_classes
        z_in = [dim] + z_widths[:-1]
        self.wx = nn.ParameterList(
            nn.Parameter(torch.randn(L, z_widths[i], dim) / math.sqrt(dim)) for i in range(self.k))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(L, z_widths[i])) for i in range(self.k))
        self.wz_raw = nn.ParameterList(
            nn.Parameter(_inverse_softplus((0.5 + torch.rand(L, z_widths[i], z_in[i])) * init_scale
                                           / z_in[i])) for i in range(1, self.k))

    def condition(self, C: torch.Tensor):
        return None

    def gradient_bound(self, cond=None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Upper bound of ``sup_x ‖∇g_l(x)‖₂`` per class ``l``: ``(L,)``, differentiable (the
        recursion of :meth:`PIACNN.gradient_bound` without attention)."""
        cast = (lambda t: t) if dtype is None else (lambda t: t.to(dtype))   # noqa: E731
        Lz = None
        for i in range(self.k):
            nx = torch.linalg.matrix_norm(cast(self.wx[i]), ord=2)
            if i == 0:
                Lz = nx
                continue
            Wz = F.softplus(cast(self.wz_raw[i - 1]))
            Lz = torch.linalg.matrix_norm(Wz, ord=2) * Lz + nx
        return Lz

    def _eval(self, x: torch.Tensor, sl) -> torch.Tensor:
        # x: (..., L', d) with weights selected by sl (a slice or index tensor)
        z = x
        for i in range(self.k):
            pre = torch.einsum("...li,loi->...lo", x, self.wx[i][sl]) + self.b[i][sl]
            if i > 0:
                pre = pre + torch.einsum("...li,loi->...lo", z, F.softplus(self.wz_raw[i - 1][sl]))
            z = self.act(pre) if i < self.k - 1 else pre
        return z.squeeze(-1)

    def forward(self, x: torch.Tensor, cond=None, cls: torch.Tensor | None = None):
        if cls is None:
            return self._eval(x, slice(None))
        out = x.new_empty(x.shape[0])
        for l in torch.unique(cls).tolist():   # a loop over classes, not over points
            m = cls == l
            out = out.index_put((m,), self._eval(x[m].unsqueeze(-2), slice(l, l + 1)).squeeze(-1))
        return out


def build_convex(lcfg, dim: int, num_classes: int) -> nn.Module:
    """The classifier network named by ``lcfg.classifier`` (``piacnn | picnn | icnn``)."""
    if lcfg.classifier == "piacnn":
        return PIACNN(dim, lcfg.z_widths, lcfg.u_widths, lcfg.activation, True, lcfg.init_scale)
    if lcfg.classifier == "picnn":
        return PICNN(dim, lcfg.z_widths, lcfg.u_widths, lcfg.activation, lcfg.init_scale)
    if lcfg.classifier == "icnn":
        return ICNN(dim, num_classes, lcfg.z_widths, lcfg.activation, lcfg.init_scale)
    raise ValueError(f"unknown Lyapunov classifier {lcfg.classifier!r}; choose piacnn, picnn or icnn")

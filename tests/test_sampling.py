"""Algorithm 1 (boundary points), directions, projection and counterexamples."""
import math

import torch

from zubovnet.sampling import (boundary_directions, boundary_points, counterexamples,
                               radial_projection)


def _quadratic_W(C, Q):
    """W_k(p) = 1 − exp(−½ (p − c_k)ᵀ Q_k (p − c_k)), radially increasing about c_k."""
    def W(p, k):
        diff = p - C[k]
        return 1 - torch.exp(-0.5 * torch.einsum("ni,nij,nj->n", diff, Q[k], diff))
    return W


def _setup(L=4, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    C = torch.randn(L, d, generator=g, dtype=torch.float64)
    A = torch.randn(L, d, d, generator=g, dtype=torch.float64)
    Q = A @ A.transpose(1, 2) / d + 0.5 * torch.eye(d, dtype=torch.float64)
    return C, Q, _quadratic_W(C, Q)


def _reference_bisection(W1, rho, tol, n, init_step, rule="bisection"):
    """The same search, one direction at a time, with Python scalars and branches: step out by
    ``init_step`` until the level set is passed, then bisect (``rule="paper"``: halve only on a
    reversal, keep the step otherwise)."""
    s, a, bracketed = 0.0, init_step, False
    for _ in range(n):
        s += a
        w = W1(s)
        if w < rho - tol:
            want = 1
        elif w > rho + tol:
            want = -1
        else:
            return s, True
        reverse = (want > 0) != (a > 0)
        bracketed = bracketed or reverse
        halve = reverse or (bracketed and rule == "bisection")
        a = want * abs(a) * (0.5 if halve else 1.0)
    return s, False


def test_directions_shape_and_norm():
    C, _, _ = _setup()
    dirs, cls = boundary_directions(C, torch.tensor([0, 2]), variants=20, radius_max=0.5,
                                    generator=torch.Generator().manual_seed(0))
    assert dirs.shape == (2 * 3 * 21, C.shape[1]) and cls.shape == (2 * 3 * 21,)
    assert torch.allclose(dirs.norm(dim=1), torch.ones(len(dirs), dtype=dirs.dtype))
    prim = torch.nn.functional.normalize(C[1] - C[0], dim=0)
    assert torch.allclose(dirs[0], prim)                   # first primary of class 0 → c_1
    # variants stay within angle asin(0.5) of their primary
    block = dirs[:21]
    assert (block @ prim > math.cos(math.asin(0.5)) - 1e-9).all()


def test_boundary_points_on_level_set_and_equal_reference():
    C, Q, W = _setup()
    dirs, cls = boundary_directions(C, torch.arange(4), variants=5,
                                    generator=torch.Generator().manual_seed(1))
    rho, tol = 0.9, 1e-3
    for rule in ("bisection", "paper"):
        res = boundary_points(W, C, dirs, cls, rho=rho, tol=tol, max_iters=60, rule=rule)
        assert res.converged.all()
        assert ((W(res.points, cls) - rho).abs() <= tol + 1e-12).all()
        for i in range(0, len(dirs), 7):
            ray = lambda s: W((C[cls[i]] + s * dirs[i]).unsqueeze(0), cls[i:i + 1]).item()  # noqa: E731
            s_ref, ok = _reference_bisection(ray, rho, tol, 60, 1.0, rule)
            assert ok and s_ref == res.lengths[i].item()


def test_iteration_bound():
    # W along every ray is 1 − exp(−k s²) with slope ≤ 1 and the boundary inside the first step:
    # the bracket [0, Δ] halves each iteration, so at most ⌈log₂(Δ/ε)⌉ + 2 iterations.
    d, rho = 3, 0.5
    C = torch.zeros(1, d, dtype=torch.float64)
    for delta in (1.0, 2.0):
        for tol in (1e-2, 1e-4, 1e-6):
            k = math.log(1 / (1 - rho)) / (0.8 * delta) ** 2    # boundary at s = 0.8 Δ
            W = lambda p, c: 1 - torch.exp(-k * p.pow(2).sum(-1))   # noqa: E731
            slope = max(2 * k * s * math.exp(-k * s * s) for s in torch.linspace(0, delta, 1000).tolist())
            assert slope <= 1.0
            dirs = torch.nn.functional.normalize(torch.randn(50, d, dtype=torch.float64), dim=1)
            res = boundary_points(W, C, dirs, torch.zeros(50, dtype=torch.long), rho, tol, 200,
                                  init_step=delta)
            assert res.converged.all()
            assert res.iterations <= math.ceil(math.log2(delta / tol)) + 2


def test_one_evaluation_per_iteration():
    C, Q, W = _setup()
    calls = []
    def counting(p, k):
        calls.append(len(p))
        return W(p, k)
    dirs, cls = boundary_directions(C, torch.arange(4), variants=3)
    res = boundary_points(counting, C, dirs, cls, 0.9, 1e-3, 60)
    assert len(calls) == res.iterations                    # one batched call per iteration
    assert calls[0] == len(dirs) and all(a >= b for a, b in zip(calls, calls[1:]))  # active set shrinks


def test_radial_projection_inside():
    C, Q, W = _setup()
    cls = torch.randint(0, 4, (400,))
    p = C[cls] + 3 * torch.randn(400, C.shape[1], dtype=torch.float64)
    out = radial_projection(W, C, p, cls, rho=0.9, iters=30)
    assert (W(out, cls) <= 0.9).all()
    inside = W(p, cls) <= 0.9
    assert torch.equal(out[inside], p[inside])
    # projected points lie on the segment [c, p]
    u = torch.nn.functional.normalize(p - C[cls], dim=1)
    v = torch.nn.functional.normalize(out - C[cls], dim=1)
    assert torch.allclose((u * v).sum(1)[~inside], torch.ones((~inside).sum(), dtype=u.dtype))


def test_counterexamples_inside_region_and_do_not_decrease_l_con():
    C, Q, W = _setup()
    # a consistency-like residual with a non-trivial landscape
    def l_con(p, k):
        f = torch.sin(3 * p) - (p - C[k])
        diff = p - C[k]
        V = 0.5 * torch.einsum("ni,nij,nj->n", diff, Q[k], diff)
        V_dot = torch.einsum("ni,nij,nj->n", diff, Q[k], f)
        return torch.exp(-2 * V) * (V_dot + diff.pow(2).sum(-1)) ** 2
    cls = torch.randint(0, 4, (300,))
    starts = radial_projection(W, C, C[cls] + torch.randn(300, C.shape[1], dtype=torch.float64),
                               cls, 0.9)
    ce = counterexamples(l_con, W, C, starts, cls, steps=5, step_size=1.2, rho=0.9)
    assert (W(ce, cls) <= 0.9).all()
    before, after = l_con(starts, cls), l_con(ce, cls)
    assert (after >= before - 1e-12).all()
    assert after.mean() > 1.5 * before.mean()              # the ascent finds worse points


def test_secant_projection_matches_the_bisection_reference_with_fewer_evaluations():
    C, Q, W = _setup()
    cls = torch.randint(0, 4, (500,))
    p = C[cls] + 3 * torch.randn(500, C.shape[1], dtype=torch.float64)
    calls = {"bisection": 0, "secant": 0}

    def counted(method):
        def fn(x, k):
            calls[method] += x.shape[0]
            return W(x, k)
        return fn
    ref = radial_projection(counted("bisection"), C, p, cls, 0.9, 20, "bisection")
    fast = radial_projection(counted("secant"), C, p, cls, 0.9, 20, "secant")
    assert (W(fast, cls) <= 0.9).all()
    outside = W(p, cls) > 0.9
    # the same point to the precision of 20 bisections (2^-20 of the segment)
    seg = (p - C[cls]).norm(dim=1)
    assert ((fast - ref).norm(dim=1) <= 2.0 ** -19 * seg + 1e-12).all()
    assert torch.equal(fast[~outside], p[~outside])
    assert calls["secant"] < 0.4 * calls["bisection"]           # point-evaluations of W


def test_secant_projection_survives_a_saturated_W():
    """Far outside, W rounds to 1 (V = ∞ in float): the bracket keeps the answer valid."""
    C, Q, W = _setup()
    cls = torch.randint(0, 4, (50,))
    p = C[cls] + 1e3 * torch.randn(50, C.shape[1], dtype=torch.float64)
    out = radial_projection(W, C, p, cls, 0.9, 60, "secant")
    assert (W(out, cls) <= 0.9).all() and (W(out, cls) > 0.9 - 1e-4).all()


def test_region_points_fill_the_region_radially():
    from zubovnet.sampling import region_points
    C, Q, W = _setup()
    cls = torch.arange(4).repeat_interleave(300)
    g = torch.Generator().manual_seed(0)
    pts, frac, conv = region_points(W, C, cls, 0.9, g, 1e-4, 60, radius_power=1.0)
    assert bool(conv.all()) and (W(pts, cls) < 0.9).all()
    u = frac.sort().values                                      # uniform radius fraction (p = 1)
    assert float((u - torch.linspace(0, 1, len(u), dtype=u.dtype)).abs().max()) < 0.06


def test_secant_boundary_search_finds_the_algorithm_1_crossing_in_fewer_evaluations():
    C, Q, W = _setup()
    g = torch.Generator().manual_seed(1)
    dirs, cls = boundary_directions(C, torch.arange(4), variants=10, generator=g)
    calls = {}

    def counted(rule):
        def fn(p, k):
            calls[rule] = calls.get(rule, 0) + p.shape[0]
            return W(p, k)
        return fn
    for tol in (1e-2, 1e-4):
        ref = boundary_points(counted("bisection"), C, dirs, cls, 0.9, tol, 60)
        fast = boundary_points(counted("secant"), C, dirs, cls, 0.9, tol, 60, rule="secant")
        assert bool(fast.converged.all()) and bool(ref.converged.all())
        assert ((W(fast.points, cls) - 0.9).abs() <= tol).all()
        # the same crossing, to the resolution the tolerance allows along each ray
        slope = (W(ref.points + 1e-6 * dirs, cls) - W(ref.points, cls)) / 1e-6
        assert ((fast.lengths - ref.lengths).abs() <= 2 * tol / slope + 1e-9).all()
    assert calls["secant"] < 0.5 * calls["bisection"]

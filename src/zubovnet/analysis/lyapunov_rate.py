"""Mean rate of change of the true class's PRoA function along test trajectories (Table V).

Table V's last column: ``dW_y/dt = ∇W_y(h)·f(h) = e^{−V_y(h)} ∇V_y(h)·f(h)`` with
``W_y = 1 − e^{−V_y}``, averaged over the trajectory states ``h(t_0..t_Γ)`` of test images;
negative means ``W_y`` decreases along the learned flow.  ``zubovnet reproduce
table5-ablation`` writes it to ``RUN/lyapunov_derivative.json`` (``docs/reproduce.md``);
:func:`zubovnet.analysis.alignment.trajectory_containment` reports the same mean
(``mean_dW_dt``) beside the containment rate of Proposition 5.
"""
from __future__ import annotations

__all__ = ["mean_lyapunov_derivative"]


def mean_lyapunov_derivative(model, x, y, batch_size: int = 256,
                             device: str | object = "cpu") -> dict:
    """Mean of ``dW_y/dt = ∇W_y(h)·f(h) = e^{−V_y(h)} ∇V_y(h)·f(h)`` over the trajectory states
    ``h(t_0..t_Γ)`` of the images ``x`` (``(N, C, H, W)`` in [0, 1], labels ``y (N,)``), in
    eval mode (Table V, last column; negative = the target class's Lyapunov function decreases
    along the flow).  ``∇V_y·f`` is one forward-mode JVP.  Returns ``{"mean_dWdt",
    "fraction_negative", "states", "n"}``.
    """
    import torch
    from ..losses import directional_derivative
    model.to(device).eval()
    total, neg, count = 0.0, 0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        with torch.no_grad():
            traj = model.trajectory(xb)
        states = traj.reshape(-1, traj.shape[-1])
        cls = yb.repeat(traj.shape[0])
        f = model.dynamics.field(states).detach()
        V, V_dot = directional_derivative(lambda z: model.energy(z, cls), states, f)
        dW = (torch.exp(-V) * V_dot).detach()
        total += float(dW.sum())
        neg += int((dW < 0).sum())
        count += dW.numel()
    return {"mean_dWdt": total / max(count, 1), "fraction_negative": neg / max(count, 1),
            "states": count, "n": int(len(x))}

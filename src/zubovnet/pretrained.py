"""Checkpoints shipped with the package, loadable by name and offline.

Each name is a folder ``resources/pretrained/<name>/`` holding the final weights
(``model.safetensors``) and ``claim.json``: the configuration the model was trained with and
one claim record in the RobustBench spirit — dataset, threat model, ε, clean and robust
accuracy under each protocol with its sample count, the evaluation commands, the records the
numbers come from, the commit, and the clean accuracy on the first 200 test images that
``tests/test_pretrained.py`` reproduces exactly (``docs/results/fashion-mnist.md``).

    model, cfg, claim = zubovnet.load_pretrained("fashion_mnist-zubovnet")
    zubovnet eval pretrained:fashion_mnist-zubovnet --suite clean
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

__all__ = ["PREFIX", "available_pretrained", "load_pretrained", "pretrained_path"]

PREFIX = "pretrained:"


def _root() -> Path:
    return Path(str(resources.files("zubovnet") / "resources" / "pretrained"))


def available_pretrained() -> list[str]:
    """The names of the shipped checkpoints."""
    root = _root()
    return sorted(p.name for p in root.iterdir() if (p / "claim.json").is_file()) \
        if root.is_dir() else []


def pretrained_path(name: str) -> Path:
    """The folder of checkpoint ``name`` (with or without the ``pretrained:`` prefix)."""
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    names = available_pretrained()
    if name not in names:
        raise KeyError(f"unknown pretrained model {name!r}; available: "
                       f"{', '.join(names) or 'none'}")
    return _root() / name


def load_pretrained(name: str, device: str | torch.device = "cpu",
                    overrides: list[str] | None = None):
    """``(model, cfg, claim)`` of the shipped checkpoint ``name``; the model is in eval mode.
    ``overrides``: ``section.key=value`` changes to its configuration before the model is built
    (as :func:`zubovnet.load_checkpoint`).

    No network: the weights and the configuration are package files."""
    from safetensors.torch import load_file

    from .config import apply_overrides, config_from_dict
    from .models import build_model
    folder = pretrained_path(name)
    claim = json.loads((folder / "claim.json").read_text())
    cfg = config_from_dict(apply_overrides(claim["config"], overrides))
    model = build_model(cfg)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.to(device).eval(), cfg, claim


def _git_commit() -> str | None:
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _entry(rec: dict, key: str) -> dict | None:
    e = rec["results"].get(key)
    if not isinstance(e, dict) or e.get("accuracy") is None:
        return None
    return {"accuracy": e["accuracy"], "n": e.get("n"), "eps": e.get("eps"),
            "protocol": e.get("protocol"), "record_command": rec.get("command")}


def build_claim(name: str, cfg, records: list[dict], record_paths: list[str],
                check: dict) -> dict:
    """The claim record of a checkpoint: every number is read from an evaluation record."""
    from .config import config_to_dict
    claim: dict = {"name": name, "dataset": cfg.data.name, "model": cfg.model.name,
                   "threat_model": "Linf", "config": config_to_dict(cfg),
                   "records": record_paths, "commands": [r.get("command") for r in records],
                   "commit": _git_commit(), "check": check, "results": {}}
    for rec in records:
        res = rec["results"]
        if "clean" in res and "clean" not in claim["results"]:
            claim["results"]["clean"] = _entry(rec, "clean")
        corr = [v["accuracy"] for k, v in res.items()
                if k.startswith("corruption/") and isinstance(v, dict) and v.get("accuracy") is not None]
        if corr:
            claim["results"]["corruptions_mean"] = {"accuracy": sum(corr) / len(corr),
                                                    "n": res["clean"]["n"], "corruptions": len(corr),
                                                    "record_command": rec.get("command")}
        attacks = {k: v for k, v in res.items() if "@" in k and k.split("@")[0] in _PAPER_ATTACKS
                   and isinstance(v, dict) and v.get("accuracy") is not None}
        if attacks:   # the paper protocol (Table II): each attack and ε, and their mean
            for k in sorted(attacks):
                claim["results"][f"paper/{k}"] = _entry(rec, k)
            claim["results"]["paper/attacks_mean"] = {
                "accuracy": sum(v["accuracy"] for v in attacks.values()) / len(attacks),
                "n": res["clean"]["n"], "attacks": len(attacks),
                "record_command": rec.get("command")}
        for key, label in (("rigorous/pgd_paper", "pgd10_paper"), ("rigorous/autoattack", "autoattack"),
                           ("rigorous/worst_case", "rigorous_worst_case"),
                           ("alignment/ar@10T", "alignment_ar10T"),
                           ("autoattack@16/255", "table3/autoattack@16/255"),
                           ("square@16/255", "table3/square@16/255"),
                           ("vnifgsm@16/255", "table3/vnifgsm@16/255"),
                           ("alignment/reverse@h0", "alignment/reverse@h0"),
                           ("alignment/roa_in_proa", "alignment/roa_in_proa"),
                           ("certify@8/255", "certified@8/255")):
            if _entry(rec, key):
                claim["results"][label] = _entry(rec, key)
        for key in sorted(k for k in res if k.startswith("certify/")):
            if _entry(rec, key) and (key not in claim["results"]
                                     or res[key]["n"] > claim["results"][key]["n"]):
                claim["results"][key] = {**_entry(rec, key), "norm": res[key].get("norm"),
                                         "certificate": res[key].get("certificate")}
        if "certify" in rec and ("certificate" not in claim
                                 or rec["data"]["n"] > claim["certificate"]["n"]):
            c = rec["certify"]
            claim["certificate"] = {"kind": c.get("kind"), "certificate": c.get("certificate"),
                                    "n": rec["data"]["n"], "L_phi": c.get("L_phi"),
                                    "premises": c.get("premises")}
    return claim


#: the white-box attacks of the paper's Table II (``<attack>@<eps>`` keys of an attacks record)
_PAPER_ATTACKS = ("fgsm", "pgd", "bim", "apgd", "jitter")


def export_pretrained(run: str | Path, name: str, record_paths: list[str], images, labels,
                      root: str | Path | None = None) -> Path:
    """Ship ``run``'s latest checkpoint as ``name``: its weights and a claim built from the
    evaluation records; ``images``/``labels`` (the first 200 test images, ``(n, C, H, W)`` in
    [0, 1]) give the clean count the test reproduces."""
    from safetensors.torch import save_file

    from .training.checkpoint import load_checkpoint
    model, cfg, _ = load_checkpoint(run)
    with torch.no_grad():
        pred = torch.cat([model(images[i:i + 100]).argmax(1) for i in range(0, len(images), 100)])
    check = {"n": int(len(labels)), "subset": "first", "correct": int((pred == labels).sum()),
             "predictions": pred.tolist()}
    records = [json.loads(Path(p).read_text()) for p in record_paths]
    claim = build_claim(name, cfg, records, [str(p) for p in record_paths], check)
    folder = Path(root) if root is not None else _root() / name
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    (folder / "claim.json").write_text(json.dumps(claim, indent=1) + "\n")
    return folder

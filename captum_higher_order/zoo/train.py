"""Reproduce the zoo's weights: ``python -m captum_higher_order.zoo.train``.

Deterministic (fixed seeds, one CPU thread, full float32 on CPU) and quick
(well under a minute on one core). Writes, next to this file:

- ``digits_cnn.pt`` / ``digits_cnn.json``: the digits CNN and its test accuracy;
- ``digits_samples.json``: two held-out digits per class, shipped for the demo;
- ``planted_mlp.pt`` / ``planted_mlp.json``: the planted-interaction MLP and its
  test error.

Options: ``--out DIR`` writes elsewhere (the tests use that to check that the
script reproduces the committed accuracy); ``--only digits|planted``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from captum_higher_order.zoo import digits_cnn, planted_mlp

DIGITS_EPOCHS = 30
DIGITS_BATCH = 32
DIGITS_LR = 3e-3
PLANTED_TRAIN = 4096
PLANTED_TEST = 1024
PLANTED_STEPS = 1200
PLANTED_LR = 1e-2


def _state_to_cpu(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def train_digits(out_dir: str, seed: int = 0, epochs: int = DIGITS_EPOCHS) -> Dict[str, Any]:
    """Train :class:`DigitsCNN` with Adam + cross-entropy; return the metadata."""
    x_tr, y_tr, x_te, y_te = digits_cnn.digits_split()
    torch.manual_seed(seed)
    model = digits_cnn.DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=DIGITS_LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_tr), generator=gen)
        for start in range(0, len(order), DIGITS_BATCH):
            idx = order[start : start + DIGITS_BATCH]
            opt.zero_grad()
            loss_fn(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        train_acc = (model(x_tr).argmax(1) == y_tr).float().mean().item()
        test_acc = (model(x_te).argmax(1) == y_te).float().mean().item()
    torch.save(_state_to_cpu(model), os.path.join(out_dir, "digits_cnn.pt"))
    meta = {
        "model": "DigitsCNN",
        "data": "sklearn.datasets.load_digits, pixels / 16",
        "split": {
            "test_fraction": digits_cnn.TEST_FRACTION,
            "random_state": digits_cnn.SPLIT_SEED,
            "stratify": True,
            "n_train": len(x_tr),
            "n_test": len(x_te),
        },
        "training": {
            "optimizer": "Adam",
            "lr": DIGITS_LR,
            "schedule": "cosine",
            "epochs": epochs,
            "batch_size": DIGITS_BATCH,
            "seed": seed,
        },
        "train_accuracy": round(train_acc, 4),
        "test_accuracy": round(test_acc, 4),
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    with open(os.path.join(out_dir, "digits_cnn.json"), "w") as f:
        json.dump(meta, f, indent=2)
    _write_samples(out_dir, x_te, y_te)
    return meta


def _write_samples(out_dir: str, x_te: torch.Tensor, y_te: torch.Tensor, per_class: int = 2):
    """Two held-out digits per class, in class order, as raw 0..16 integers."""
    picked: List[int] = []
    for c in range(10):
        picked += torch.nonzero(y_te == c).flatten()[:per_class].tolist()
    images = (x_te[picked] * 16).round().to(torch.int64).reshape(len(picked), 8, 8)
    data = {
        "source": "sklearn digits, zoo test split (never used for training)",
        "scale": "divide by 16 for the model's [0, 1] inputs",
        "labels": y_te[picked].tolist(),
        "images": images.tolist(),
    }
    with open(os.path.join(out_dir, "digits_samples.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))


def train_planted(out_dir: str, seed: int = 0, steps: int = PLANTED_STEPS) -> Dict[str, Any]:
    """Fit :class:`PlantedMLP` to :func:`planted_function` (full-batch Adam, MSE)."""
    x_tr = planted_mlp.sample_inputs(PLANTED_TRAIN, seed=seed)
    x_te = planted_mlp.sample_inputs(PLANTED_TEST, seed=seed + 1)
    y_tr, y_te = planted_mlp.planted_function(x_tr), planted_mlp.planted_function(x_te)
    torch.manual_seed(seed)
    model = planted_mlp.PlantedMLP()
    opt = torch.optim.Adam(model.parameters(), lr=PLANTED_LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for _ in range(steps):
        opt.zero_grad()
        ((model(x_tr) - y_tr) ** 2).mean().backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        test_mse = ((model(x_te) - y_te) ** 2).mean().item()
        r2 = 1.0 - test_mse / y_te.var().item()
    torch.save(_state_to_cpu(model), os.path.join(out_dir, "planted_mlp.pt"))
    meta = {
        "model": "PlantedMLP (8-64-64-1, GELU)",
        "function": "2 x0 x1 + 1.5 x2 x3 x4 + sin(pi x5) + 0.5 x6, x ~ U[-1, 1]^8",
        "planted_pairs": [list(p) for p in planted_mlp.PLANTED_PAIRS],
        "planted_sets": [list(s) for s in planted_mlp.PLANTED_SETS],
        "training": {
            "optimizer": "Adam",
            "lr": PLANTED_LR,
            "schedule": "cosine",
            "steps": steps,
            "n_train": PLANTED_TRAIN,
            "seed": seed,
        },
        "test_mse": round(test_mse, 6),
        "test_r2": round(r2, 5),
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    with open(os.path.join(out_dir, "planted_mlp.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return meta


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m captum_higher_order.zoo.train",
        description="Reproduce the embedded models' weights (deterministic, CPU).",
    )
    parser.add_argument("--out", default=digits_cnn.ZOO_DIR, help="output folder")
    parser.add_argument("--only", choices=["digits", "planted"], default=None)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise-reproducible reductions
    try:
        if args.only in (None, "digits"):
            t0 = time.perf_counter()
            meta = train_digits(args.out)
            print(
                f"digits CNN: test accuracy {meta['test_accuracy']:.4f} "
                f"({meta['split']['n_test']} held-out digits), "
                f"{meta['num_parameters']} parameters, {time.perf_counter() - t0:.1f}s"
            )
        if args.only in (None, "planted"):
            t0 = time.perf_counter()
            meta = train_planted(args.out)
            print(
                f"planted MLP: test MSE {meta['test_mse']:.5f}, R^2 {meta['test_r2']:.4f}, "
                f"{meta['num_parameters']} parameters, {time.perf_counter() - t0:.1f}s"
            )
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Reproduce the tiny text model: ``python -m captum_higher_order.zoo.train_text``.

Deterministic (fixed seeds, one CPU thread, float32) and quick (well under a
minute on one core). Writes ``text_toy.pt`` and ``text_toy.json`` next to this
file, or into ``--out DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Dict, List, Optional

import torch

from captum_higher_order.zoo import text_toy

TRAIN = 6000
TEST = 1000
STEPS = 1500
BATCH = 128
LR = 3e-3


def _targets(sentences: List[List[str]]) -> torch.Tensor:
    return torch.tensor([text_toy.sentence_scores(s) for s in sentences])


def train_text(out_dir: str, seed: int = 0, steps: int = STEPS) -> Dict[str, Any]:
    """Fit :class:`~captum_higher_order.zoo.text_toy.TextToy` to the planted
    scores by least squares (Adam, cosine schedule); return the metadata."""
    torch.set_num_threads(1)
    train = text_toy.sample_sentences(TRAIN, seed=seed)
    test = text_toy.sample_sentences(TEST, seed=seed + 1)
    ids, mask = text_toy.encode(train)
    y = _targets(train)
    torch.manual_seed(seed)
    model = text_toy.TextToy()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        idx = torch.randint(TRAIN, (BATCH,), generator=gen)
        opt.zero_grad()
        loss = ((model(ids[idx], mask[idx]) - y[idx]) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    t_ids, t_mask = text_toy.encode(test)
    t_y = _targets(test)
    with torch.no_grad():
        pred = model(t_ids, t_mask)
    meta = {
        "model": "TextToy (embedding 32 + positions, 2 GELU encoder layers, mean pool, 2 outputs)",
        "scores": "y0 = 2 s (1 - 2 [not]) + [loved] - [hated]; y1 = 2 [sun and beach] + [hot]",
        "vocab": text_toy.VOCAB,
        "seed": seed, "steps": steps, "train": TRAIN, "test": TEST, "lr": LR,
        "test_mse": round(float(((pred - t_y) ** 2).mean()), 5),
        "test_sentiment_accuracy": round(float(((pred[:, 0] > 0) == (t_y[:, 0] > 0))
                                               .float().mean()), 4),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    os.makedirs(out_dir, exist_ok=True)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, os.path.join(out_dir, "text_toy.pt"))
    with open(os.path.join(out_dir, "text_toy.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args(argv)
    print(json.dumps(train_text(args.out, steps=args.steps), indent=1))


if __name__ == "__main__":
    main()

"""Produces the output shown in docs/dtd_root_check.md.

Trains a small BatchNorm CNN on scikit-learn's digits (8x8, pixels scaled to
[0, 1]) for a few seconds on the CPU, then runs DTDRootCheck with three rules
and the cascading randomisation check. No weights are saved.

    python docs/dtd_root_check_example.py
"""

import time

import torch
from captum.attr import InputXGradient, Saliency
from sklearn.datasets import load_digits
from torch import nn

from captum_higher_order.attr.dtd_root_check import DTDRootCheck
from captum_higher_order.attr.randomization import cascading_randomization


def digits_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(64, 10),
    )


def main() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y))
    train, test = perm[:1400], perm[1400:]
    model = digits_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = time.perf_counter()
    for _ in range(6):
        for idx in train.split(100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    print(f"trained in {time.perf_counter() - start:.1f} s, test accuracy {acc:.3f}")

    inputs, target = x[test[:6]], y[test[:6]]
    runs = (("z+", None, "all"), ("z+", None, "receptive_field"),
            ("zbox", {"low": 0.0, "high": 1.0}, "all"), ("lrp0", None, "all"))
    for rule, kwargs, support in runs:
        dtd = DTDRootCheck(model, rule=rule, rule_kwargs=kwargs)
        start = time.perf_counter()
        report = dtd.check(inputs, target=target, root_support=support)
        extra = "" if kwargs is None else f", rule_kwargs={kwargs}"
        call = "" if support == "all" else f", root_support={support!r}"
        print(f"\n>>> print(DTDRootCheck(model, rule={rule!r}{extra})"
              f".check(inputs, target=target{call}).summary())"
              f"  # {time.perf_counter() - start:.1f} s")
        print(report.summary())

    print("\n>>> print(cascading_randomization(lambda m: DTDRootCheck(m, rule='z+'), "
          "model, inputs, target=target).summary())")
    print(cascading_randomization(lambda m: DTDRootCheck(m, rule="z+"), model, inputs,
                                  target=target).summary())
    print("\n>>> print(cascading_randomization(InputXGradient, model, inputs, "
          "target=target).summary())")
    print(cascading_randomization(InputXGradient, model, inputs, target=target).summary())
    print("\n>>> print(cascading_randomization(Saliency, model, inputs, "
          "target=target).summary())")
    print(cascading_randomization(Saliency, model, inputs, target=target).summary())


if __name__ == "__main__":
    main()

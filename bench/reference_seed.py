"""A plain implementation of the seed recipe, as a user following PyTorch's CIFAR-10 tutorial writes it.

    CIFAR10_ROOT=/work/shared/cifar10 python bench/reference_seed.py            # 10 epochs, the yardstick
    python bench/reference_seed.py --epochs 2 --target 0.5                       # a quick check

torchvision's CIFAR10 dataset with ToTensor and Normalize, a DataLoader (batch 64, 2 workers), the seed
CNN, Adam at 1e-3, cross-entropy, fp32, and a test pass after every epoch. It prints one line per epoch
and the wall time at which the test accuracy first reached the target (the seed project's 78.46%).
That time is the denominator of the short configuration's ratio in bench/time_to_accuracy.py: the
same job done the usual way, on the same machine, in the same session. Nothing here is used by
the library; it exists to be compared with.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torchvision
import torchvision.transforms as transforms
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cifar_utils.core.models import build_network  # noqa: E402  (the seed CNN's architecture, nothing else)
from cifar_utils.paths import data_root  # noqa: E402
from cifar_utils.runs.provenance import machine_line, provenance  # noqa: E402

SEED_PROJECT_ACCURACY = 0.7846


def loaders(root: Path, batch_size: int, workers: int):
    normalise = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))]
    )
    train = torchvision.datasets.CIFAR10(str(root), train=True, download=False, transform=normalise)
    test = torchvision.datasets.CIFAR10(str(root), train=False, download=False, transform=normalise)
    return (
        torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=workers),
        torch.utils.data.DataLoader(test, batch_size=1000, shuffle=False, num_workers=workers),
    )


def test_accuracy(net: nn.Module, loader) -> float:
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (net(images).argmax(1) == labels).sum().item()
            total += len(labels)
    net.train()
    return correct / total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--target", type=float, default=SEED_PROJECT_ACCURACY, help="test accuracy to time (a fraction)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root")
    p.add_argument("--stop-at-target", action="store_true", help="stop once the target is reached")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    start = time.perf_counter()  # the data is read from disk inside the timed part, as a user's script does
    train_loader, test_loader = loaders(data_root(args.data_root), args.batch_size, args.workers)
    net = build_network("seed_cnn")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    reached = None
    for epoch in range(1, args.epochs + 1):
        for images, labels in train_loader:
            optimizer.zero_grad()
            criterion(net(images), labels).backward()
            optimizer.step()
        accuracy = test_accuracy(net, test_loader)
        elapsed = time.perf_counter() - start
        print(f"epoch {epoch}: test accuracy {100 * accuracy:.2f}% at {elapsed:.1f} s", flush=True)
        if reached is None and accuracy >= args.target:
            reached = (epoch, elapsed, accuracy)
            if args.stop_at_target:
                break
    if reached:
        print(
            f"REFERENCE reached={reached[2]:.4f} epoch={reached[0]} seconds={reached[1]:.1f} target={args.target:.4f}"
        )
    else:
        print(
            f"REFERENCE reached=none epochs={args.epochs} seconds={time.perf_counter() - start:.1f} "
            f"target={args.target:.4f}"
        )
    print(machine_line(provenance(torch.device("cpu")), "fp32"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

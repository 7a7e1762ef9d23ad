"""`make demo`: the newcomer's tour. For now: the estimator comparison at a reduced CNN width
(minutes on a laptop CPU); the SSL methods on digits join it as they land."""

from __future__ import annotations

from . import compare


def main() -> None:
    print("Estimator comparison (CNN-13 at width 32, TCDCN, one-layer; float64 and float32)")
    compare.main(["--out", "results/demo", "--width", "32", "--batch", "16", "--repeats", "3"])


if __name__ == "__main__":
    main()

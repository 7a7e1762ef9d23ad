"""Splits, index streams, batches (determinism), augmentation of landmarks, metrics."""

import dataclasses
import itertools

import pytest
import torch

from experiments import augment, sources
from experiments.data import BatchMaker, make_splits, stream
from experiments.metrics import landmark_metrics, normalised_errors


@pytest.fixture(scope="module")
def digits():
    return sources.load_digits()


@pytest.fixture(scope="module")
def faces():
    return sources.load_synthfaces(400, 50, seed=0)


def test_classification_split_is_class_balanced_and_disjoint(digits):
    data = make_splits(digits, seed=0, num_labels=50, val_size=100)
    assert torch.bincount(data.labeled.y, minlength=10).tolist() == [5] * 10
    assert len(data.val) == 100
    assert len(data.labeled) + len(data.unlabeled) + len(data.val) == len(digits.train_x)
    assert len(data.test) == 500
    rows = {tuple(x.flatten().tolist()) for x in data.labeled.x}
    assert not any(tuple(x.flatten().tolist()) in rows for x in data.unlabeled.x[:200])
    other = make_splits(digits, seed=1, num_labels=50, val_size=100)
    assert not torch.equal(other.labeled.x, data.labeled.x)
    assert torch.equal(other.val.x, data.val.x)  # validation does not move with the seed
    assert torch.equal(
        make_splits(digits, seed=0, num_labels=50, val_size=100).labeled.x, data.labeled.x
    )
    with pytest.raises(ValueError, match="positive multiple of 10"):
        make_splits(digits, seed=0, num_labels=55, val_size=100)


def test_landmark_split_uses_last_tenth_for_validation(faces):
    data = make_splits(faces, seed=0, label_fraction=0.05)
    assert torch.equal(data.val.x, faces.train_x[360:])
    assert len(data.labeled) == 18 and len(data.unlabeled) == 342
    mean = data.labeled.y.mean(0)
    assert torch.allclose(data.task.standardise(data.labeled.y).mean(0), torch.zeros(10), atol=1e-5)
    assert torch.allclose(data.task.to_pixels(data.task.standardise(mean[None]))[0], mean)


def test_separate_holdout_comes_from_validation(digits):
    data = make_splits(digits, seed=0, num_labels=50, val_size=100, holdout="separate")
    assert len(data.holdout) == 50 and len(data.val) == 50


def test_stream_is_a_permutation_per_epoch():
    seen = torch.cat([stream(10, 5, step, seed=0, name=1) for step in (0, 1)])
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(stream(10, 4, 3, 0, 1), stream(10, 4, 3, 0, 1))
    assert not torch.equal(stream(10, 10, 0, 0, 1), stream(10, 10, 0, 1, 1))
    across = stream(10, 4, 2, 0, 1)  # samples 8, 9 of epoch 0 and 0, 1 of epoch 1
    assert len(across) == 4


def test_translate_moves_landmarks_with_the_image():
    img = torch.zeros(2, 1, 20, 20)
    marks = torch.tensor([[5.0, 7.0, 12.0, 3.0], [10.0, 10.0, 8.0, 12.0]])
    for i, m in enumerate(marks):
        for x, y in m.reshape(-1, 2).long().tolist():
            img[i, 0, y, x] = 1.0
    offsets = torch.tensor([[3, -2], [-4, 4]])
    moved, moved_marks = augment.translate(img, offsets), augment.shift_landmarks(marks, offsets)
    for i in range(2):
        for x, y in moved_marks[i].reshape(-1, 2).long().tolist():
            assert moved[i, 0, y, x] == 1.0
        assert moved[i].sum() == 2.0


def test_batches_are_a_function_of_seed_and_step(faces):
    data = make_splits(faces, seed=0, label_fraction=0.05)
    sizes = {"labeled": 4, "unlabeled": 6, "holdout": 3}
    maker = BatchMaker(data, ("weak", "weak"), sizes, 0, 100, torch.device("cpu"), holdout=True)
    a, b = maker(7), maker(7)
    assert torch.equal(a.x, b.x) and torch.equal(a.u[1], b.u[1]) and torch.equal(a.y, b.y)
    assert not torch.equal(maker(8).x, a.x)
    assert a.hold_x.shape[0] == 3 and len(a.u_offsets) == 2 and a.u_true.shape == (6, 10)
    # the labeled targets are the shifted landmarks, standardised
    idx = stream(len(data.labeled), 4, 7, 0, 1)
    pixels = data.task.to_pixels(a.y)
    shift = pixels - data.labeled.y[idx]
    assert (
        shift.reshape(4, 5, 2) - shift.reshape(4, 5, 2)[:, :1]
    ).abs().max() < 1e-4  # one (dx, dy)
    assert shift.abs().max() <= faces.max_shift + 1e-4


def test_strong_augmentation_changes_images_deterministically(digits):
    imgs = digits.train_x[:8].float() / 255
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = augment.strong(imgs, g1, 1, False)
    b = augment.strong(imgs, g2, 1, False)
    assert torch.equal(a, b) and not torch.equal(a, imgs)
    assert a.shape == imgs.shape and a.min() >= 0 and a.max() <= 1


def test_nme_on_a_hand_computed_case():
    # eyes 10 px apart; errors: 0, 0, 3-4-5 triangle (5), 0, 0 → mean 1 → NME 0.1
    target = torch.tensor([[0.0, 0.0, 10.0, 0.0, 5.0, 5.0, 2.0, 8.0, 8.0, 8.0]])
    pred = target.clone()
    pred[0, 4:6] += torch.tensor([3.0, 4.0])
    assert torch.allclose(normalised_errors(pred, target), torch.tensor([0.1]))
    worse = pred.clone()
    worse[0, 0] += 1.0  # left eye 1 px off: mean error 1.2 → 0.12
    metrics = landmark_metrics(torch.cat([pred, worse]), torch.cat([target, target]))
    assert metrics["nme"] == pytest.approx(100 * (0.1 + 0.12) / 2)
    assert metrics["failure_rate"] == pytest.approx(50.0)  # only 0.12 exceeds 0.1


def test_imbalanced_split_has_long_tailed_class_counts(digits):
    from experiments.data import imbalanced_counts

    counts = imbalanced_counts(90, 10.0, 10)
    assert counts[0] == 90 and counts[-1] == 9  # M_1 · γ^(−c/(C−1)) from 90 down to 90/10
    assert all(a >= b for a, b in itertools.pairwise(counts))
    data = make_splits(digits, 0, val_size=100, imbalance=10.0, heads=(15, 90))
    assert torch.bincount(data.labeled.y, minlength=10).tolist() == imbalanced_counts(15, 10, 10)
    assert torch.bincount(data.unlabeled.y, minlength=10).tolist() == counts
    balanced = make_splits(digits, 0, num_labels=50, val_size=100)
    assert torch.equal(data.val.y, balanced.val.y)  # validation and test stay as they are
    assert torch.equal(data.test.y, balanced.test.y)
    with pytest.raises(ValueError, match=r"class 0 has .* fewer than the 100 labeled"):
        make_splits(digits, 0, val_size=100, imbalance=10.0, heads=(100, 90))


@pytest.mark.parametrize("name", ["fixmatch_digits", "impute_v1_synthfaces"])
def test_batches_built_by_workers_equal_those_built_in_process(name):
    """Steps 3..8 from 2 worker processes are bit-identical to maker(step) (strong views,
    landmark offsets and a hold-out batch included)."""
    from experiments import configs
    from experiments.build import build
    from experiments.config import smoke
    from experiments.data import batches

    run = build(smoke(configs.get(name)), seed=1, scale="smoke")
    here = list(batches(run.batches, 3, 9, workers=0))
    ahead = list(batches(run.batches, 3, 9, workers=2))
    assert [b.step for b in ahead] == list(range(3, 9))
    for a, b in zip(here, ahead, strict=True):
        for f in dataclasses.fields(a):
            va, vb = getattr(a, f.name), getattr(b, f.name)
            if isinstance(va, torch.Tensor):
                assert torch.equal(va, vb), f.name
            elif isinstance(va, list):
                assert all(torch.equal(x, y) for x, y in zip(va, vb, strict=True)), f.name
            else:
                assert va == vb, f.name
    assert ahead[0].x.dtype == torch.float32 and ahead[0].u[0].dtype == torch.float32

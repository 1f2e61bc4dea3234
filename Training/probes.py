"""Measurements behind the README's "What was tried" that need no training: each scores the held-out
clips of the runs in runs/ again (PyTorch on the FLAC originals, the product's windows), so every
figure is on speakers the scoring model never heard.

    python3 probes.py sex-threshold   # held-out sex accuracy per corpus as the sex decision moves
    python3 probes.py ensemble        # the plain and the speaker-normalised model, and their average
    python3 probes.py short-clips     # clips shorter than a window: zero-padded (shipped), trimmed, repeated
"""
import argparse
import json
import pathlib

import numpy as np
import soundfile
import torch

import frontend as fe
import model as cnn
import pitch
from train import FOLDS, clip_windows

RUNS = pathlib.Path(__file__).resolve().parent / "runs"
HELD_OUT = [f"fold{k}" for k in range(1, len(FOLDS) + 1)] + ["loco-tess", "loco-savee", "loco-urdu"]
WINDOW = int(fe.WINDOW_SECONDS * fe.SAMPLE_RATE)
SEX_OFFSETS = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]


def corpus_of(run):
    return "ravdess" if run.startswith("fold") else run.removeprefix("loco-")


def trimmed(wave):
    """A clip shorter than a window as one window of its own length (the CNN pools over time)."""
    return wave[None] if len(wave) < WINDOW else clip_windows(wave)


def repeated(wave):
    """A clip shorter than a window repeated to fill it."""
    return np.tile(wave, -(-WINDOW // len(wave)))[None, :WINDOW] if len(wave) < WINDOW else clip_windows(wave)


@torch.no_grad()
def score(name, data, windows=clip_windows, normalised=False):
    """Per held-out clip of runs/<name>: (emotion, sex, mean emotion probabilities, window sex logits
    female - male). `normalised`: runs/sn-<name> instead, fed its population mean (no profile)."""
    clips = json.loads((RUNS / f"{name}.json").read_text())["predictions"]  # sn- runs keep only summaries
    if normalised:
        name = f"sn-{name}"
    run = json.loads((RUNS / f"{name}.json").read_text())
    model = cnn.load(RUNS / f"{name}.safetensors", run["channels"])
    logmel = fe.LogMel()
    mean = torch.tensor(run["population_mean"], dtype=torch.float32) if normalised else None
    out = []
    for p in clips:
        parts = pathlib.Path(p["path"]).parts  # where it was trained, e.g. a lent GPU's /tmp/data
        wave, _ = soundfile.read(pathlib.Path(data, *parts[parts.index(p["corpus"]):]), dtype="float32")
        w = torch.from_numpy(np.ascontiguousarray(windows(wave), dtype=np.float32))
        emotion, sex = model(logmel(w, None if mean is None else mean.expand(len(w), -1)), pitch.window_stats(w))
        out.append((p["emotion"], p["sex"], emotion.softmax(-1).mean(0).numpy(), (sex[:, 1] - sex[:, 0]).numpy()))
    return out


def accuracy(clips, probs=None):
    """Emotion accuracy in %, of the clips' own probabilities or of `probs` in their place."""
    probs = [c[2] for c in clips] if probs is None else probs
    return 100.0 * np.mean([np.argmax(q) == c[0] for c, q in zip(clips, probs)])


def sex_threshold(data):
    """A clip's sex is the mean of its windows' P(female) (as the product does) with every window's
    logit moved by an offset: the offset that fixes one corpus breaks another."""
    by_corpus = {}
    for name in HELD_OUT:
        by_corpus.setdefault(corpus_of(name), []).extend(score(name, data))
    print("offset " + " ".join(f"{c:>8}" for c in by_corpus))
    for offset in SEX_OFFSETS:
        right = [100.0 * np.mean([(np.mean(1 / (1 + np.exp(-(c[3] + offset)))) > 0.5) == (c[1] == 1) for c in clips])
                 for clips in by_corpus.values()]
        print(f"{offset:+6.1f} " + " ".join(f"{r:8.1f}" for r in right))


def ensemble(data):
    for name in HELD_OUT:
        plain, normalised = score(name, data), score(name, data, normalised=True)
        mixed = [(a[2] + b[2]) / 2 for a, b in zip(plain, normalised)]
        print(f"{name:10} plain {accuracy(plain):5.1f}  speaker-normalised {accuracy(normalised):5.1f}  "
              f"average {accuracy(plain, mixed):5.1f}")


def short_clips(data):
    for name in HELD_OUT:
        print(f"{name:10} " + "  ".join(f"{label} {accuracy(score(name, data, windows)):5.1f}" for label, windows in
                                        [("zero-padded", clip_windows), ("trimmed", trimmed), ("repeated", repeated)]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("probe", choices=["sex-threshold", "ensemble", "short-clips"])
    p.add_argument("--data", default=str(pathlib.Path(__file__).resolve().parents[2] / "shared/data"))
    args = p.parse_args()
    torch.set_num_threads(2)
    {"sex-threshold": sex_threshold, "ensemble": ensemble, "short-clips": short_clips}[args.probe](args.data)


if __name__ == "__main__":
    main()

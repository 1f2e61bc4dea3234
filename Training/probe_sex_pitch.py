"""Does the window's pitch beside the encoder's features fix the sex head where it fails (TESS's two
women, ASED)? Leave one corpus out for every corpus with known sex: a sex head on the encoder
features mixed with fixed layer weights (the mean of those the thirteen splits learned), with and
without the two pitch statistics (pitch_cache.py), and on pitch alone; clip-level accuracy.

  python3 pitch_cache.py && python3 probe_sex_pitch.py
"""
import json
import pathlib

import numpy as np
import torch

import corpora
import train_head

MIX = np.array([0.162, 0.142, 0.170, 0.178, 0.083, 0.090, 0.085, 0.089], dtype=np.float32)


def pitch_of(folder):
    return np.concatenate([np.load(p)["pitch"] for c in corpora.ALL for p in sorted(pathlib.Path(folder).glob(f"{c}.*.npz"))])


def fit_sex(x, corpus, sex, steps=300, decay=0.05):
    torch.manual_seed(0)
    mean, std = x.mean(0), x.std(0) + 1e-4
    xt = torch.from_numpy((x - mean) / std)
    head = torch.nn.Linear(x.shape[1], 2)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=decay)
    w = torch.from_numpy(train_head.cell_weights(corpus, sex)).float()
    y = torch.from_numpy(np.maximum(sex, 0))
    for _ in range(steps):
        opt.zero_grad()
        (torch.nn.functional.cross_entropy(head(xt), y, reduction="none") * w).sum().backward()
        opt.step()
    return lambda z: torch.softmax(head(torch.from_numpy((z - mean) / std)), 1).detach().numpy()


def clip_accuracy(p, clip, sex):
    names, inverse = np.unique(clip, return_inverse=True)
    total = np.zeros((len(names), 2)); truth = np.zeros(len(names), dtype=int)
    np.add.at(total, inverse, p); truth[inverse] = sex
    return float((total.argmax(1) == truth).mean())


def main():
    torch.set_num_threads(2)
    x, corpus, clip, emotion, sex, speaker = train_head.load("runs/features", list(range(8)), "mean+std")  # as measured
    f0 = pitch_of("runs/pitch")
    assert len(f0) == len(x)
    results = {}
    for held in corpora.ALL:
        test = (corpus == held) & (sex >= 0)
        if not test.any():
            continue
        train = (corpus != held) & (sex >= 0)
        # Standardised with the training windows' statistics only, as train_head.py does: the held-out
        # corpus's own statistics would leak its recording conditions into the features.
        mean, std = x[corpus != held].mean(0), x[corpus != held].std(0) + 1e-4
        z = np.einsum("nld,l->nd", (x - mean) / std, MIX).astype(np.float32)
        inputs = {"encoder": z, "encoder+pitch": np.concatenate([z, f0], 1), "pitch": f0}
        results[held] = {name: clip_accuracy(fit_sex(v[train], corpus[train], sex[train])(v[test]), clip[test], sex[test])
                         for name, v in inputs.items()}
        print(held, {k: round(100 * v, 1) for k, v in results[held].items()}, flush=True)
    pathlib.Path("runs/probe-sex-pitch.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

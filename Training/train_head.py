"""Emotion and sex heads on the frozen Whisper encoder's cached window features (extract.py), scored
on people never heard: leave one corpus out for every corpus but RAVDESS, and RAVDESS 5-fold by
actor with the other eight corpora in every fold.

The head: a softmax-weighted sum of the per-layer pooled statistics (each layer standardised on the
training windows), then linear emotion (8) and sex (2) layers. The sex layer is fitted again, alone,
on the learned mix standardised once more (300 steps, no dropout): trained jointly it called TESS's
two women male (61.8 % held out; alone 92.5 %, probe_sex_pitch.py). Its standardisation is folded
into its weights, so the exported head keeps its shape. Every (corpus, class) cell weighs the
same in the emotion loss and every (corpus, sex) cell in the sex loss, so neither EmoSpeech's 6,624
clips nor TESS's one voice pair drowns the rest. A clip's label is the mean of its windows' probabilities,
as `analyze` and `evaluate` take it. Full-batch AdamW, 200 steps: the thirteen splits (eight corpora left
out, five RAVDESS folds) take 34 minutes on two CPU cores, 50 on one (`--threads 1`).

  python3 train_head.py                 # every split, a table and runs/head-cv.json
  python3 train_head.py --layers 0-3    # which pooled states to weight (0 = the input to block 0)
  python3 train_head.py --augmented runs/features-aug --held tess,urdu
                                        # train on the clean windows and their augmented copies
                                        # (extract.py --no-clean), score two splits (clean windows only)
  python3 train_head.py --export ../Models/emotion-whisper.safetensors
                                        # no scoring: one head on all nine corpora (states 0-7, as
                                        # shipped), for the product, and the golden fixture that pins
                                        # Swift's head to this one
  python3 train_head.py --exclude savee --export runs/loco-savee.safetensors --golden runs/g.safetensors
                                        # a held-out head, for `emotion-monitor evaluate`
"""
import argparse
import json
import pathlib
import time

import numpy as np
import torch

import corpora
import safetensors_io
import whisper
from model import EMOTIONS


def load(folder, layers):
    """Windows of every corpus: features (N, L, 2d) float32, and per window its clip's labels."""
    feats, info = [], []
    for corpus in corpora.ALL:
        clips = corpora.manifest("../../shared/data", corpus)
        for shard in sorted(pathlib.Path(folder).glob(f"{corpus}.*.npz")):
            z = np.load(shard)
            feats.append(z["features"][:, layers].astype(np.float32))
            info += [(corpus, int(r), clips[int(r)]) for r in z["clip"]]
    x = np.concatenate(feats)
    corpus = np.array([c for c, _, _ in info])
    clip = np.array([f"{c}/{r}" for c, r, _ in info])
    emotion = np.array([-1 if m["emotion"] is None else m["emotion"] for _, _, m in info])
    sex = np.array([-1 if m["sex"] is None else m["sex"] for _, _, m in info])
    speaker = np.array([m["speaker"] for _, _, m in info])
    return x, corpus, clip, emotion, sex, speaker


class Head(torch.nn.Module):
    def __init__(self, layers, width):
        super().__init__()
        self.mix = torch.nn.Parameter(torch.zeros(layers))
        self.emotion = torch.nn.Linear(width, len(EMOTIONS))
        self.sex = torch.nn.Linear(width, 2)
        self.drop = torch.nn.Dropout(0.2)

    def forward(self, x):  # (N, L, width), standardised
        z = self.drop(torch.einsum("nld,l->nd", x, torch.softmax(self.mix, 0)))  # no (N, L, width) temporary
        return self.emotion(z), self.sex(z)


def cell_weights(groups, labels):
    """Per-window weights making every (group, label) cell sum to the same, 0 where label < 0."""
    w = np.zeros(len(labels))
    keys = [(g, l) for g, l in zip(groups, labels)]
    cells = {k: 0 for k in keys if k[1] >= 0}
    for k in keys:
        if k[1] >= 0:
            cells[k] += 1
    for i, k in enumerate(keys):
        if k[1] >= 0:
            w[i] = 1.0 / cells[k]
    return w / max(w.sum(), 1e-12)


def fit(x, corpus, emotion, sex, steps, decay, seed=0):
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-4
    xt = torch.from_numpy((x - mean) / std)
    head = Head(x.shape[1], x.shape[2])
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=decay)
    we, ws = (torch.from_numpy(cell_weights(corpus, y)).float() for y in (emotion, sex))
    ye, ys = torch.from_numpy(np.maximum(emotion, 0)), torch.from_numpy(np.maximum(sex, 0))
    for _ in range(steps):
        opt.zero_grad()
        le, ls = head(xt)
        loss = ((torch.nn.functional.cross_entropy(le, ye, reduction="none", label_smoothing=0.1) * we).sum()
                + (torch.nn.functional.cross_entropy(ls, ys, reduction="none") * ws).sum())
        loss.backward()
        opt.step()
    head.eval()
    refit_sex(head, xt, corpus, sex)
    return head, mean, std


def refit_sex(head, x, corpus, sex, steps=300, decay=0.05):
    """Replaces the head's sex layer by one fitted alone on its mix of `x` (standardised windows) for
    the windows of known sex, that mix standardised again over them; the second standardisation is
    folded into the new layer."""
    torch.manual_seed(1)
    known = torch.from_numpy(sex >= 0)
    with torch.no_grad():
        z = torch.einsum("nld,l->nd", x[known], torch.softmax(head.mix, 0))
    zmean, zstd = z.mean(0), z.std(0) + 1e-4
    layer = torch.nn.Linear(z.shape[1], 2)
    opt = torch.optim.AdamW(layer.parameters(), lr=3e-3, weight_decay=decay)
    w = torch.from_numpy(cell_weights(corpus[sex >= 0], sex[sex >= 0])).float()
    y = torch.from_numpy(sex[sex >= 0])
    zt = (z - zmean) / zstd
    for _ in range(steps):
        opt.zero_grad()
        (torch.nn.functional.cross_entropy(layer(zt), y, reduction="none") * w).sum().backward()
        opt.step()
    with torch.no_grad():
        head.sex.weight.copy_(layer.weight / zstd)
        head.sex.bias.copy_(layer.bias - (layer.weight * zmean / zstd).sum(1))


def predict(model, x):
    head, mean, std = model
    with torch.no_grad():
        le, ls = head(torch.from_numpy((x - mean) / std))
    return torch.softmax(le, 1).numpy(), torch.softmax(ls, 1).numpy()


def score(pe, ps, clip, emotion, sex, classes):
    """Clip-level figures: mean probabilities over each clip's windows."""
    names, inverse = np.unique(clip, return_inverse=True)
    n = len(names)
    pe_c = np.zeros((n, pe.shape[1])); ps_c = np.zeros((n, 2)); counts = np.zeros(n)
    np.add.at(pe_c, inverse, pe); np.add.at(ps_c, inverse, ps); np.add.at(counts, inverse, 1)
    e_c = np.full(n, -1); s_c = np.full(n, -1)
    e_c[inverse] = emotion; s_c[inverse] = sex
    out = {"clips": int((e_c >= 0).sum())}
    has = e_c >= 0
    if has.any():
        idx = [EMOTIONS.index(c) for c in classes]
        own = np.array(idx)[pe_c[has][:, idx].argmax(1)]
        eight = pe_c[has].argmax(1)
        truth = e_c[has]
        out["accuracy"] = float((eight == truth).mean())
        out["own_accuracy"] = float((own == truth).mean())
        out["own_uar"] = float(np.mean([(own[truth == k] == k).mean() for k in idx if (truth == k).any()]))
        out["confusion"] = [[int(((truth == a) & (own == b)).sum()) for b in idx] for a in idx]
        out["labels"] = classes
    if (s_c >= 0).any():
        out["sex_accuracy"] = float((ps_c[s_c >= 0].argmax(1) == s_c[s_c >= 0]).mean())
        out["sex_clips"] = int((s_c >= 0).sum())
    return out


def classes_of(emotion, mask):
    return [EMOTIONS[k] for k in sorted(set(emotion[mask & (emotion >= 0)].tolist()))]


def export(model, layers, path, golden, encoder_path):
    """Writes the head (softmaxed layer weights, per-layer standardisation, the two linear layers)
    and a golden fixture: one window of a test clip, and the probabilities (and log-probabilities)
    this head gives it."""
    head, mean, std = model
    tensors = {"mix": torch.softmax(head.mix, 0).detach().numpy(), "mean": mean, "std": std}
    for name in ("emotion", "sex"):
        layer = getattr(head, name)
        tensors[f"{name}.weight"] = layer.weight.detach().numpy()
        tensors[f"{name}.bias"] = layer.bias.detach().numpy()
    safetensors_io.save(path, tensors, {"states": f"{layers[0]}-{layers[-1]}"})
    import soundfile as sf
    x, _ = sf.read("../Tests/Clips/Actor_02/03-01-03-02-01-01-02.flac", dtype="float32")
    window = x[8000:56000]  # 0.5 s in, 3 s: the golden test cuts the same samples
    encoder = whisper.Encoder(whisper.read_ct2(encoder_path), layers=max(layers) if max(layers) < 7 else None)
    with torch.no_grad():
        pooled = whisper.pooled(encoder.hidden_states(whisper.log_mel(torch.from_numpy(window[None]))))
    pe, ps = predict(model, pooled[:, layers].numpy())
    # Log-probabilities too: a saturated probability (the sex of a clear voice) would pin nothing.
    with torch.no_grad():
        le, ls = head(torch.from_numpy((pooled[:, layers].numpy() - mean) / std))
    safetensors_io.save(golden, {"emotion": pe[0], "sex": ps[0], "emotion_logprob": torch.log_softmax(le, 1)[0].numpy(),
                                 "sex_logprob": torch.log_softmax(ls, 1)[0].numpy()},
                        {"clip": "Tests/Clips/Actor_02/03-01-03-02-01-01-02.flac", "samples": "8000-56000"})
    print(f"wrote {path} and {golden}: emotion {pe[0].round(3).tolist()} sex {ps[0].round(3).tolist()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", default="runs/features")
    ap.add_argument("--augmented", help="a folder of augmented copies (extract.py --no-clean) to train on beside the clean windows")
    ap.add_argument("--held", default=",".join(corpora.ALL), help="which splits to score (ravdess = its 5 folds)")
    ap.add_argument("--layers", default="0-7")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--decay", type=float, default=0.05)
    ap.add_argument("--out", default="runs/head-cv.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export", help="fit one head on every window and write it here (safetensors)")
    ap.add_argument("--exclude", help="with --export: leave this corpus out (a held-out head for `emotion-monitor evaluate`)")
    ap.add_argument("--golden", default="../Tests/ModelTests/Fixtures/emotion-whisper.golden.safetensors")
    ap.add_argument("--encoder", default="/usr/local/share/emotion-monitor/whisper-base.bin")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lo, hi = map(int, args.layers.split("-"))
    layers = list(range(lo, hi + 1))
    started = time.time()
    x, corpus, clip, emotion, sex, speaker = load(args.features, layers)
    copy = np.zeros(len(x), bool)  # an augmented copy: trained on, never scored
    if args.augmented:
        parts = [(x, corpus, clip, emotion, sex, speaker), load(args.augmented, layers)]
        copy = np.concatenate([copy, np.ones(len(parts[1][0]), bool)])
        x, corpus, clip, emotion, sex, speaker = (np.concatenate(p) for p in zip(*parts))
        del parts
    print(f"{len(x)} windows ({copy.sum()} augmented), {len(np.unique(clip))} clips, layers {layers}, loaded in {time.time() - started:.0f} s")
    if args.export:
        keep = corpus != args.exclude
        model = fit(x[keep], corpus[keep], emotion[keep], sex[keep], args.steps, args.decay)
        return export(model, layers, args.export, args.golden, args.encoder)
    results = {}
    held_out = args.held.split(",")
    for held in [c for c in corpora.ALL[1:] if c in held_out]:
        test = corpus == held
        model = fit(x[~test], corpus[~test], emotion[~test], sex[~test], args.steps, args.decay)
        test &= ~copy
        pe, ps = predict(model, x[test])
        results[held] = score(pe, ps, clip[test], emotion[test], sex[test], classes_of(emotion, test))
        results[held]["mix"] = torch.softmax(model[0].mix, 0).detach().numpy().round(3).tolist()
        print(held, {k: v for k, v in results[held].items() if k != "confusion"}, f"{time.time() - started:.0f} s", flush=True)
    actors = np.array([int(s.split("-")[1]) if c == "ravdess" else 0 for s, c in zip(speaker, corpus)])
    folds = []
    for f in range(5 if "ravdess" in held_out else 0):
        test = (corpus == "ravdess") & ((actors - 1) // 4 == f)  # actors 01-04, 05-08, ...: the CNN's folds
        model = fit(x[~test], corpus[~test], emotion[~test], sex[~test], args.steps, args.decay)
        test &= ~copy
        pe, ps = predict(model, x[test])
        folds.append(score(pe, ps, clip[test], emotion[test], sex[test], list(EMOTIONS)))
    if folds:
        results["ravdess"] = {k: float(np.mean([f[k] for f in folds])) for k in ("accuracy", "own_uar", "sex_accuracy")}
        results["ravdess"]["std"] = float(np.std([f["accuracy"] for f in folds]))
        results["ravdess"]["per_fold"] = [f["accuracy"] for f in folds]
        results["ravdess"]["confusion"] = np.sum([f["confusion"] for f in folds], 0).tolist()
        results["ravdess"]["labels"] = list(EMOTIONS)
    print(f"{'held out':10} {'8-class':>8} {'own acc':>8} {'own UAR':>8} {'sex':>6}")
    for k, r in results.items():
        print(f"{k:10} {100 * r.get('accuracy', float('nan')):8.1f} {100 * r.get('own_accuracy', r.get('accuracy', float('nan'))):8.1f}"
              f" {100 * r.get('own_uar', float('nan')):8.1f} {100 * r.get('sex_accuracy', float('nan')):6.1f}")
    print(f"{time.time() - started:.0f} s in all")
    pathlib.Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()

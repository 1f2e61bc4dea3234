"""Emotion and sex heads on the frozen Whisper encoder's cached window features (extract.py), scored
on people never heard: leave one corpus out for every corpus but RAVDESS, and RAVDESS 5-fold by
actor with the other eight corpora in every fold.

The model: two heads on the per-layer pooled means over time (each layer standardised on the
training windows; `--pooling mean+std` adds each channel's std over time, which transferred worse:
mean own-class UAR 47.8 against 49.2 %, docs/accuracy.md), their logits averaged. A 'mix' head sums
the layers by learned softmax weights under linear emotion (8) and sex (2) layers (dropout 0.2,
weight decay 0.05); a 'concat' head's linear layers read every layer through weights of their own
(weight decay 1.0: it has eight times the weights). The mix
transfers better to TESS and ESD, the concat head to RAVDESS and ASED; together they beat either
(docs/accuracy.md, probe_heads.py). Each head's sex layer is fitted again, alone, on its input
standardised once more (300 steps, no dropout): trained jointly it called TESS's two women male
(61.8 % held out; alone 92.5 %, probe_sex_pitch.py). `--export` folds everything (standardisation,
mix, both heads) into one linear layer per output over the raw pooled states, which is all the
product reads. Every (corpus, class) cell weighs the same in the emotion loss and every (corpus, sex)
cell in the sex loss, so neither EmoSpeech's 6,624 clips nor TESS's one voice pair drowns the rest.
A clip's label is the mean of its windows' probabilities, as `analyze` and `evaluate` take it.
Full-batch AdamW, 200 steps. The shipped model also trains on one augmented copy of every clip
(extract.py --copies 1 --no-clean), scored on clean windows only; its thirteen splits (eight corpora
left out, five RAVDESS folds) take about 40 minutes on two CPU cores (probe_heads.py runs the two
heads apart and --combine scores them together, the same figures).

  python3 train_head.py --augmented runs/features-aug   # every split, a table and runs/head-cv.json
  python3 train_head.py --kind mix --layers 0-3         # one head, on the first four pooled states
  python3 train_head.py --augmented runs/features-aug --held tess,urdu    # two splits only
  python3 train_head.py --augmented runs/features-aug --export ../Models/emotion-whisper.safetensors
                                        # no scoring: the model on all nine corpora (states 0-7, as
                                        # shipped), for the product, and the golden fixture that pins
                                        # Swift's model to this one
  python3 train_head.py --augmented runs/features-aug --exclude savee --export runs/loco-savee.safetensors \
      --golden runs/g.safetensors       # a held-out model and its card, for `emotion-monitor evaluate`
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


# Which of each state's pooled statistics the heads read: the cache holds [mean over time, std over time].
POOLING = ("mean", "mean+std")


def pooled_part(features, pooling):
    """`features` (..., 2d): each state's mean and std over time; the part `pooling` names."""
    return features[..., :features.shape[-1] // 2] if pooling == "mean" else features


def load(folder, layers, pooling="mean"):
    """Windows of every corpus: features (N, L, d or 2d: `pooled_part`) float32, and per window its clip's labels."""
    feats, info = [], []
    for corpus in corpora.ALL:
        clips = corpora.manifest("../../shared/data", corpus)
        for shard in sorted(pathlib.Path(folder).glob(f"{corpus}.*.npz")):
            z = np.load(shard)
            feats.append(pooled_part(z["features"][:, layers], pooling).astype(np.float32))
            info += [(corpus, int(r), clips[int(r)]) for r in z["clip"]]
    x = np.concatenate(feats)
    corpus = np.array([c for c, _, _ in info])
    clip = np.array([f"{c}/{r}" for c, r, _ in info])
    emotion = np.array([-1 if m["emotion"] is None else m["emotion"] for _, _, m in info])
    sex = np.array([-1 if m["sex"] is None else m["sex"] for _, _, m in info])
    speaker = np.array([m["speaker"] for _, _, m in info])
    return x, corpus, clip, emotion, sex, speaker


class Head(torch.nn.Module):
    """Emotion (8) and sex (2) logits from standardised pooled states. 'mix': one softmax-weighted
    sum of the states (weights learned) under linear layers; 'concat': linear layers over every state
    (a weight per state and channel: more to learn, and it hears other things)."""

    def __init__(self, layers, width, kind="mix"):
        super().__init__()
        assert kind in ("mix", "concat"), kind
        self.kind = kind
        self.mix = torch.nn.Parameter(torch.zeros(layers))
        inputs = layers * width if kind == "concat" else width
        self.emotion = torch.nn.Linear(inputs, len(EMOTIONS))
        self.sex = torch.nn.Linear(inputs, 2)
        self.drop = torch.nn.Dropout(0.2)

    @property
    def states_first(self):
        """The layout `forward` takes: (L, N, width) for a mix, (N, L, width) for 'concat'."""
        return self.kind != "concat"

    def mixed(self, x):
        """Standardised states in this head's layout -> the emotion and sex layers' input."""
        if self.kind == "concat":
            return x.reshape(len(x), -1)
        # One matrix-vector product over the states: 5x faster than einsum, and no (L, N, width) temporary.
        layers, n, width = x.shape
        return (torch.softmax(self.mix, 0) @ x.reshape(layers, -1)).reshape(n, width)

    def forward(self, x):
        z = self.mixed(x)
        if self.kind != "concat":
            z = self.drop(z)
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


# AdamW's weight decay per kind of head: the concat head, with a weight per state and channel, needs
# the stronger pull (held-out mean own-class UAR 44.3 % at 0.05, 45.3 % at 1.0; probe_heads.py).
DECAY = {"mix": 0.05, "concat": 1.0}
DEAD_STD = 1e-3  # a channel whose std over the training windows is below this is treated as constant (`fit`)


def fit(x, corpus, emotion, sex, steps=200, decay=None, kind="mix", seed=0):
    """A model: a list of (head, mean, std), one per kind in `kind` ('mix+concat': an ensemble of two,
    their logits averaged). `decay` None: the kind's own (DECAY)."""
    if "+" in kind:
        return [m for k in kind.split("+") for m in fit(x, corpus, emotion, sex, steps, decay, k, seed)]
    decay = DECAY[kind] if decay is None else decay
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0)
    # A channel that varies less than the float16 cache resolves (about 5e-4 at the values where this
    # happens: layer 0's channels ruled by the position embedding) holds rounding, not voice; a weight
    # divided by its std would amplify the product's float32 rounding into the logits (SAVEE's held-out
    # sex in Swift: 0 % against PyTorch's 99 %). An infinite std reads it as a constant 0.
    std = np.where(std < DEAD_STD, np.inf, std + 1e-4).astype(np.float32)
    head = Head(x.shape[1], x.shape[2], kind)
    xt = standardised(x, mean, std, head.states_first)
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
    return [(head, mean, std)]


def refit_sex(head, x, corpus, sex, steps=300, decay=0.05):
    """Replaces the head's sex layer by one fitted alone on its mix of `x` (standardised windows) for
    the windows of known sex, that mix standardised again over them; the second standardisation is
    folded into the new layer."""
    torch.manual_seed(1)
    known = torch.from_numpy(sex >= 0)
    with torch.no_grad():
        z = head.mixed(x[:, known] if head.states_first else x[known])
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


def standardised(x, mean, std, states_first):
    """(N, L, width) windows standardised, as (L, N, width) when `states_first`."""
    z = (x - mean) / std
    return torch.from_numpy(np.ascontiguousarray(z.transpose(1, 0, 2)) if states_first else z)


def log_probabilities(model, x):
    """(N, 8 + 2): the emotion and sex log-probabilities `model` gives the windows `x` (N, L, width),
    from its members' mean logits."""
    le, ls = 0, 0
    with torch.no_grad():
        for head, mean, std in model:
            e, s = head(standardised(x, mean, std, head.states_first))
            le, ls = le + e / len(model), ls + s / len(model)
    return torch.cat([torch.log_softmax(le, 1), torch.log_softmax(ls, 1)], 1).numpy()


def folded(model):
    """The model as one linear layer per head over the raw pooled states flattened ([L * width]), as
    the product runs it: each member's layer weights and standardisation folded in, members averaged."""
    out = {}
    for name in ("emotion", "sex"):
        weight, bias = 0, 0
        for head, mean, std in model:
            layer = getattr(head, name)
            w = layer.weight.detach().numpy().astype(np.float64)
            if head.kind == "concat":
                w = w.reshape(len(w), *mean.shape)
            else:
                w = w[:, None, :] * torch.softmax(head.mix, 0).detach().numpy()[None, :, None]
            w = w / std
            weight = weight + w.reshape(len(w), -1) / len(model)
            bias = bias + (layer.bias.detach().numpy() - (w * mean).sum((1, 2))) / len(model)
        out[f"{name}.weight"], out[f"{name}.bias"] = weight.astype(np.float32), bias.astype(np.float32)
    return out


def probabilities(logp):
    """Emotion and sex probabilities from `log_probabilities` (or a mean of several: an ensemble)."""
    return tuple(torch.softmax(torch.from_numpy(p), 1).numpy() for p in (logp[:, :len(EMOTIONS)], logp[:, len(EMOTIONS):]))


def predict(model, x):
    return probabilities(log_probabilities(model, x))


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


def export(model, layers, pooling, path, golden, encoder_path):
    """Writes the heads folded (`folded`) and a golden fixture: one window of a test clip, and the
    probabilities and log-probabilities the unfolded model gives it, so that the fixture pins the
    folding as well as Swift."""
    assert layers[0] == 0, "the product feeds the states from the first on"
    weights = folded(model)
    if pooling == "mean":  # the product feeds each state's mean and std: zero weights on the std
        for name, w in weights.items():
            if name.endswith(".weight"):
                w = w.reshape(len(w), len(layers), -1)
                weights[name] = np.concatenate([w, np.zeros_like(w)], 2).reshape(len(w), -1)
    safetensors_io.save(path, weights, {"states": f"{layers[0]}-{layers[-1]}"})
    import soundfile as sf
    x, _ = sf.read("../Tests/Clips/Actor_02/03-01-03-02-01-01-02.flac", dtype="float32")
    window = x[8000:56000]  # 0.5 s in, 3 s: the golden test cuts the same samples
    encoder = whisper.Encoder(whisper.read_ct2(encoder_path), layers=max(layers) if max(layers) < 7 else None)
    with torch.no_grad():
        pooled = whisper.pooled(encoder.hidden_states(whisper.log_mel(torch.from_numpy(window[None]))))
    logp = log_probabilities(model, pooled_part(pooled[:, layers].numpy(), pooling))
    pe, ps = probabilities(logp)
    # Log-probabilities too: a saturated probability (the sex of a clear voice) would pin nothing.
    safetensors_io.save(golden, {"emotion": pe[0], "sex": ps[0], "emotion_logprob": logp[0, :len(EMOTIONS)],
                                 "sex_logprob": logp[0, len(EMOTIONS):]},
                        {"clip": "Tests/Clips/Actor_02/03-01-03-02-01-01-02.flac", "samples": "8000-56000"})
    print(f"wrote {path} and {golden}: emotion {pe[0].round(3).tolist()} sex {ps[0].round(3).tolist()}")


class Data:
    """Every cached window (clean, then any augmented copies) with its clip's labels."""

    def __init__(self, features, augmented, layers, pooling="mean"):
        self.layers = layers
        self.x, self.corpus, self.clip, self.emotion, self.sex, self.speaker = load(features, layers, pooling)
        self.copy = np.zeros(len(self.x), bool)  # an augmented copy: trained on, never scored
        if augmented:
            parts = [(self.x, self.corpus, self.clip, self.emotion, self.sex, self.speaker), load(augmented, layers, pooling)]
            self.copy = np.concatenate([self.copy, np.ones(len(parts[1][0]), bool)])
            self.x, self.corpus, self.clip, self.emotion, self.sex, self.speaker = (np.concatenate(p) for p in zip(*parts))

    def fit(self, keep, **recipe):
        """A model (`fit`) on the windows `keep`."""
        return fit(self.x[keep], self.corpus[keep], self.emotion[keep], self.sex[keep], **recipe)

    def score(self, test, classes, logp):
        """Figures of the clean windows `test` from their log-probabilities (one row per clean window)."""
        test = test[~self.copy]
        pe, ps = probabilities(logp[test])
        return score(pe, ps, self.clip[~self.copy][test], self.emotion[~self.copy][test], self.sex[~self.copy][test], classes)

    def splits(self, held_out):
        """(name, windows held out) of every split named in `held_out`: each corpus but RAVDESS left
        out, and RAVDESS's 5 folds by actor (01-04, 05-08, ...: the CNN's folds)."""
        out = [(held, self.corpus == held) for held in corpora.ALL[1:] if held in held_out]
        actors = np.array([int(s.split("-")[1]) if c == "ravdess" else 0 for s, c in zip(self.speaker, self.corpus)])
        return out + [(f"ravdess{f + 1}", (self.corpus == "ravdess") & ((actors - 1) // 4 == f))
                      for f in range(5 if "ravdess" in held_out else 0)]


def cross_validate(data, held_out, **recipe):
    """Every clean window's log-probabilities from the head of the split that held it out, for the
    splits named in `held_out` (a corpus left out; 'ravdess': its 5 folds by actor; zero elsewhere)."""
    logp = np.zeros(((~data.copy).sum(), len(EMOTIONS) + 2), np.float32)
    for name, test in data.splits(held_out):
        logp[test[~data.copy]] = log_probabilities(data.fit(~test, **recipe), data.x[test & ~data.copy])
        print(f"{name} fitted", flush=True)
    return logp


def figures(data, held_out, logp):
    """Per held-out corpus (RAVDESS: the mean of its folds) the figures of `score`, from `cross_validate`'s log-probabilities."""
    results, folds = {}, []
    for name, test in data.splits(held_out):
        if name.startswith("ravdess"):
            folds.append(data.score(test, list(EMOTIONS), logp))
        else:
            results[name] = data.score(test, classes_of(data.emotion, test), logp)
    if folds:
        results["ravdess"] = {k: float(np.mean([f[k] for f in folds])) for k in ("accuracy", "own_uar", "sex_accuracy")}
        results["ravdess"]["std"] = float(np.std([f["accuracy"] for f in folds]))
        results["ravdess"]["per_fold"] = [f["accuracy"] for f in folds]
        results["ravdess"]["confusion"] = np.sum([f["confusion"] for f in folds], 0).tolist()
        results["ravdess"]["labels"] = list(EMOTIONS)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", default="runs/features")
    ap.add_argument("--augmented", help="a folder of augmented copies (extract.py --no-clean) to train on beside the clean windows")
    ap.add_argument("--held", default=",".join(corpora.ALL), help="which splits to score (ravdess = its 5 folds)")
    ap.add_argument("--layers", default="0-7")
    ap.add_argument("--kind", default="mix+concat", help="mix, concat, or an ensemble of them, logits averaged (the shipped mix+concat)")
    ap.add_argument("--pooling", choices=POOLING, default="mean",
                    help="which of each state's statistics over time the heads read (the shipped heads: the mean)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--decay", type=float, help="AdamW's weight decay (default: each kind's own, DECAY)")
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
    data = Data(args.features, args.augmented, layers, args.pooling)
    print(f"{len(data.x)} windows ({data.copy.sum()} augmented), {len(np.unique(data.clip))} clips, layers {layers}, "
          f"loaded in {time.time() - started:.0f} s")
    recipe = {"steps": args.steps, "decay": args.decay, "kind": args.kind}
    if args.export:
        model = data.fit(data.corpus != args.exclude, **recipe)
        export(model, layers, args.pooling, args.export, args.golden, args.encoder)
        if args.exclude:  # a card for `emotion-monitor evaluate --model`: the shipped one's, naming these weights
            card = json.loads(pathlib.Path("../Models/emotion-whisper.json").read_text())
            path = pathlib.Path(args.export)
            card.update(name=f"{card['name']} without {args.exclude}", weights=path.name)
            card.pop("evaluation")
            path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        return
    results = figures(data, args.held.split(","), cross_validate(data, args.held.split(","), **recipe))
    print(f"{'held out':10} {'8-class':>8} {'own acc':>8} {'own UAR':>8} {'sex':>6}")
    for k, r in results.items():
        print(f"{k:10} {100 * r.get('accuracy', float('nan')):8.1f} {100 * r.get('own_accuracy', r.get('accuracy', float('nan'))):8.1f}"
              f" {100 * r.get('own_uar', float('nan')):8.1f} {100 * r.get('sex_accuracy', float('nan')):6.1f}")
    print(f"{time.time() - started:.0f} s in all")
    pathlib.Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()

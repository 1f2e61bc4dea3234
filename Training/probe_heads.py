"""Which head on the cached encoder features (extract.py) generalises best to people never heard?
Loads the cache once and runs every split (leave one corpus out, RAVDESS 5-fold by actor) for each
variant named, keeping every clean window's held-out log-probabilities in runs/probe/NAME.npz, and
prints own-class UAR per held-out corpus, their mean, RAVDESS's 8-class accuracy and held-out sex.
`--combine` scores ensembles of variants already run (their log-probabilities averaged, which a
linear head can fold into one layer) without fitting anything (the same figures as
`train_head.py --kind A+B`: the same heads, seeds and windows).

  python3 probe_heads.py mix concat                      # variants below
  python3 probe_heads.py mix --augmented runs/features-aug   # saved as mix+aug
  python3 probe_heads.py --combine mix concat+aug        # an ensemble of two saved runs
  python3 probe_heads.py --combine mix --sex concat      # emotion from one, sex from another
"""
import argparse
import pathlib
import time

import numpy as np
import torch

import corpora
import train_head
from model import EMOTIONS

# name: the recipe (keyword arguments of train_head.Data.fit)
VARIANTS = {
    "mix": {},
    "concat": {"kind": "concat"},
    "concat-decay0.05": {"kind": "concat", "decay": 0.05},
}
SAVED = pathlib.Path("runs/probe")


def line(name, r):
    emotional = [k for k in r if k not in ("ravdess", "baved") and "own_uar" in r[k]]
    return (f"{name:24} mean own UAR {100 * np.mean([r[k]['own_uar'] for k in emotional]):5.1f} | "
            + " ".join(f"{k} {100 * r[k]['own_uar']:.1f}" for k in emotional)
            + (f" | ravdess {100 * r['ravdess']['accuracy']:.1f}" if "ravdess" in r else "")
            + " | sex " + " ".join(f"{k} {100 * r[k]['sex_accuracy']:.1f}" for k in r if "sex_accuracy" in r[k]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="*", help=", ".join(VARIANTS))
    ap.add_argument("--combine", nargs="+", help="saved runs (NAME or NAME+aug) to average")
    ap.add_argument("--sex", nargs="+", help="with --combine: saved runs whose sex log-probabilities to average instead")
    ap.add_argument("--features", default="runs/features")
    ap.add_argument("--augmented")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    held = corpora.ALL
    data = train_head.Data(args.features, None if args.combine else args.augmented, list(range(8)), "mean+std")  # as measured
    if args.combine:
        logp = np.mean([np.load(SAVED / f"{name}.npz")["logp"] for name in args.combine], axis=0)
        if args.sex:
            logp[:, len(EMOTIONS):] = np.mean([np.load(SAVED / f"{name}.npz")["logp"][:, len(EMOTIONS):] for name in args.sex], axis=0)
        name = " + ".join(args.combine) + (f" (sex {' + '.join(args.sex)})" if args.sex else "")
        return print(line(name, train_head.figures(data, held, logp)))
    SAVED.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        started = time.time()
        name = variant + ("+aug" if args.augmented else "")
        logp = train_head.cross_validate(data, held, **VARIANTS[variant])
        np.savez(SAVED / f"{name}.npz", logp=logp)
        print(line(name, train_head.figures(data, held, logp)) + f" | {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()

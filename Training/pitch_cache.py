"""Caches the pitch statistics (pitch.py: median log2 F0 / 150 Hz and the voiced fraction) of every
window extract.py cached, in the same order, so that a sex head can be tried with pitch beside the
encoder's features without decoding the corpora again.

  python3 pitch_cache.py            # runs/pitch/<corpus>.<shard>.npz beside runs/features, resumable

Each file holds `pitch` (windows, 2) float32 and `clip`, which must equal the features file's.
"""
import argparse
import os
import pathlib
import time

import numpy as np
import soundfile as sf
import torch

import corpora
import extract
import frontend as fe
import pitch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../../shared/data")
    ap.add_argument("--features", default="runs/features")
    ap.add_argument("--out", default="runs/pitch")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    for source in sorted(pathlib.Path(args.features).glob("*.npz")):
        target = pathlib.Path(args.out, source.name)
        if target.exists():
            continue
        corpus = source.name.split(".")[0]
        clips = corpora.manifest(args.data, corpus)
        z = np.load(source)
        assert (z["copy"] == 0).all(), "clean windows only"
        started, stats, rows = time.time(), [], []
        for row in dict.fromkeys(z["clip"].tolist()):
            x, rate = sf.read(clips[row]["path"], dtype="float32", always_2d=True)
            assert rate == fe.SAMPLE_RATE
            batch, _ = extract.windows(x.mean(axis=1), 0, 0)
            stats.append(pitch.window_stats(torch.from_numpy(batch)).numpy().astype(np.float32))
            rows += [row] * len(batch)
        assert rows == z["clip"].tolist(), f"{source}: windows differ from the features'"
        np.savez(str(target) + ".tmp.npz", pitch=np.concatenate(stats), clip=np.array(rows))
        os.replace(str(target) + ".tmp.npz", target)
        print(f"{source.name}: {len(rows)} windows in {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()

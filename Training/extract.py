"""Caches the frozen Whisper encoder's pooled layer statistics for every window of every clip of the
nine corpora, so that heads train in minutes (train_head.py) rather than re-running the encoder.

Windows are the product's: the clip's speech region covered by 3 s windows 0.5 s apart (one centred
window for a shorter region, zero-padded), as `analyze` and `evaluate` lay them (frontend.py).
`--copies N` adds N augmented copies of each window (reverb and coloured noise from augment.py,
gain +-6 dB), each drawn from a generator seeded by the clip, so a rerun draws the same copies.

  python3 extract.py --encoder /usr/local/share/emotion-monitor/whisper-base.bin --shard 0/2 &
  python3 extract.py --encoder /usr/local/share/emotion-monitor/whisper-base.bin --shard 1/2

writes runs/features/<corpus>.<shard>.npz (resumable: a finished corpus shard is skipped), with
features (windows, layers, 2 x width) float16, clip (window -> row of the manifest list), copy.
"""
import argparse
import os
import pathlib
import time
import zlib

import numpy as np
import soundfile as sf
import torch

import augment
import corpora
import frontend as fe
import whisper


def windows(x, copies, seed):
    """(windows, 48000) float32: the clip's analysis windows, then `copies` augmented copies of them."""
    region = fe.speech_region(x)
    if region is None:
        return None, []
    w = int(fe.WINDOW_SECONDS * fe.SAMPLE_RATE)
    clean = np.stack([fe.cut(x, s, w) for s in fe.window_starts(region, len(x))])
    batches, tags = [clean], [0] * len(clean)
    rng = np.random.default_rng(seed)
    for c in range(copies):
        waves = torch.from_numpy(clean.copy())
        gen = augment.generator(rng, "cpu")
        augment.apply(waves, rng, gen, reverb_p=0.5, noise_p=0.6, eq_p=0.0)
        waves *= 10 ** (rng.uniform(-6, 6) / 20)
        batches.append(waves.clamp(-1, 1).numpy())
        tags += [c + 1] * len(clean)
    return np.concatenate(batches), tags


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../../shared/data")
    ap.add_argument("--encoder", default="/usr/local/share/emotion-monitor/whisper-base.bin")
    ap.add_argument("--out", default="runs/features")
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--copies", type=int, default=0)
    ap.add_argument("--corpora", default=",".join(corpora.ALL))
    args = ap.parse_args()
    torch.set_num_threads(1)
    index, count = map(int, args.shard.split("/"))
    encoder = whisper.Encoder(whisper.read_ct2(args.encoder))
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    for corpus in args.corpora.split(","):
        target = pathlib.Path(args.out, f"{corpus}.{index}.npz")
        if target.exists():
            continue
        clips = corpora.manifest(args.data, corpus)
        started, feats, rows, tags = time.time(), [], [], []
        for row in range(index, len(clips), count):
            x, rate = sf.read(clips[row]["path"], dtype="float32", always_2d=True)
            assert rate == fe.SAMPLE_RATE, clips[row]["path"]
            batch, copy = windows(x.mean(axis=1), args.copies, zlib.crc32(clips[row]["path"].encode()))
            if batch is None:
                continue
            with torch.no_grad():
                states = encoder.hidden_states(whisper.log_mel(torch.from_numpy(batch)))
                feats.append(whisper.pooled(states).numpy().astype(np.float16))
            rows += [row] * len(batch)
            tags += copy
        np.savez(str(target) + ".tmp.npz", features=np.concatenate(feats), clip=np.array(rows), copy=np.array(tags))
        os.replace(str(target) + ".tmp.npz", target)
        print(f"{corpus} shard {args.shard}: {len(rows)} windows in {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()

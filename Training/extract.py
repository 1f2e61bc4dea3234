"""Caches the frozen Whisper encoder's pooled layer statistics for every window of every clip of the
nine corpora, so that heads train in minutes (train_head.py) rather than re-running the encoder.

Windows are the product's: the clip's speech region covered by 3 s windows 0.5 s apart (one centred
window for a shorter region, zero-padded), as `analyze` and `evaluate` lay them (frontend.py).
`--copies N` adds N augmented copies of each clip's windows, each drawn from a generator seeded by the
clip, so a rerun draws the same copies: on half of them the clip is first played 0.9-1.1x as fast
(pitch, formants and tempo together: a new voice; its windows are laid again), then reverb (50 %)
and coloured noise (60 %) from augment.py, a channel EQ (50 %, augment.equaliser applied to the
waveform, since Whisper's front end takes no power-spectrum gain) and gain +-6 dB. `--no-clean`
writes the copies alone (a folder beside the clean features, which train_head.py adds with `--augmented`).

  python3 extract.py --encoder /usr/local/share/emotion-monitor/whisper-base.bin --shard 0/2 &
  python3 extract.py --encoder /usr/local/share/emotion-monitor/whisper-base.bin --shard 1/2
  python3 extract.py --copies 1 --no-clean --out runs/features-aug --shard 0/2 &   # 19 min with 1/2

writes runs/features/<corpus>.<shard>.npz (resumable: a finished corpus shard is skipped), with
features (windows, layers, 2 x width) float16, clip (window -> row of the manifest list), copy.
"""
import argparse
import os
import pathlib
import time
import zlib

import numpy as np
import scipy.signal
import soundfile as sf
import torch

import augment
import corpora
import frontend as fe
import whisper


SPEEDS = [(10, 11), (20, 21), (20, 19), (10, 9)]  # (up, down): played 1.1, 1.05, 0.95, 0.9x as fast


def laid(x):
    """(windows, 48000) float32: the product's windows over the speech region of `x`, or None."""
    region = fe.speech_region(x)
    if region is None:
        return None
    w = int(fe.WINDOW_SECONDS * fe.SAMPLE_RATE)
    return np.stack([fe.cut(x, s, w) for s in fe.window_starts(region, len(x))])


def channel(waves, rng):
    """augment.equaliser's random channel on half of the (k, samples) windows, in the waveform."""
    n = waves.shape[1]
    f = np.fft.rfftfreq(n, 1 / fe.SAMPLE_RATE)
    for i in np.nonzero(rng.random(len(waves)) < 0.5)[0]:
        gain = np.sqrt(np.interp(f, augment.FREQS, augment.equaliser(rng)))
        waves[i] = torch.from_numpy(np.fft.irfft(np.fft.rfft(waves[i].numpy()) * gain, n).astype(np.float32))


def windows(x, copies, seed, clean=True):
    """(windows, 48000) float32 and each window's copy (0 clean): the clip's analysis windows (unless
    not `clean`), then `copies` augmented copies of them."""
    base = laid(x)
    if base is None:
        return None, []
    batches, tags = ([base], [0] * len(base)) if clean else ([], [])
    rng = np.random.default_rng(seed)
    for c in range(copies):
        voice = x
        if rng.random() < 0.5:
            up, down = SPEEDS[rng.integers(len(SPEEDS))]
            voice = scipy.signal.resample_poly(x, up, down).astype(np.float32)
        cut = laid(voice)
        if cut is None:
            continue
        waves = torch.from_numpy(cut)
        augment.apply(waves, rng, augment.generator(rng, "cpu"), reverb_p=0.5, noise_p=0.6, eq_p=0.0)
        channel(waves, rng)
        waves *= 10 ** (rng.uniform(-6, 6) / 20)
        batches.append(waves.clamp(-1, 1).numpy())
        tags += [c + 1] * len(cut)
    return (np.concatenate(batches), tags) if batches else (None, [])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../../shared/data")
    ap.add_argument("--encoder", default="/usr/local/share/emotion-monitor/whisper-base.bin")
    ap.add_argument("--out", default="runs/features")
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--copies", type=int, default=0)
    ap.add_argument("--no-clean", action="store_true", help="write the augmented copies only")
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
            batch, copy = windows(x.mean(axis=1), args.copies, zlib.crc32(clips[row]["path"].encode()),
                                  clean=not args.no_clean)
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

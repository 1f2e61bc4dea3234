"""Move the corpora to a lent GPU machine and back to FLAC there (Training/gpu.sh).

    python3 Training/opus.py pack ../shared/data .gpu/data     # here: 16 kHz Ogg/Opus, about 20 kbit/s
    python3 Training/opus.py unpack .gpu/data /tmp/data        # there: FLAC, which decodes 6x faster

The device tool carries at most 64 MiB of working tree and not ../shared: 227 MB of FLAC become about
50 MB of Opus, same names and folders. Training on the Opus copies is a mild extra channel
augmentation; every published figure is scored again by `emotion-monitor evaluate` on the FLAC originals.
"""
import multiprocessing
import os
import pathlib
import sys

import soundfile

OPUS_LEVEL = 0.9  # libsndfile's compression level for Opus: 0.9 gives about 19 kbit/s at 16 kHz


def convert(job):
    source, target, opus = job
    target.parent.mkdir(parents=True, exist_ok=True)
    x, rate = soundfile.read(source, dtype="float32")
    if opus:
        soundfile.write(target, x, rate, format="OGG", subtype="OPUS", compression_level=OPUS_LEVEL)
    else:
        soundfile.write(target, x, rate, format="FLAC", subtype="PCM_16")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        sys.exit(__doc__.strip().splitlines()[0] + "\nusage: opus.py pack|unpack SOURCE TARGET")
    mode, source, target = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    suffix, new = (".flac", ".ogg") if mode == "pack" else (".ogg", ".flac")
    jobs = [(f, target / f.relative_to(source).with_suffix(new), mode == "pack")
            for f in sorted(source.rglob("*" + suffix))]
    with multiprocessing.Pool(os.cpu_count()) as pool:
        pool.map(convert, jobs, chunksize=16)
    print(f"{mode}: {len(jobs)} files into {target}")


if __name__ == "__main__":
    main()

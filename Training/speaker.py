"""Speaker normalisation: subtract a speaker's mean log-mel spectrum (over their speech frames) from
every frame before the window z-normalisation. Mirrored by Sources/Features/SpeakerMean.swift.

A log-mel frame counts as speech when the mean energy of the two 10 ms energy frames it starts
with is above VOICE_DBFS: the same voice gate that decides which live windows are classified.
"""
import numpy as np
import torch

import frontend as fe

VOICE_DBFS = -60.0


def speech_mask(wave, n_frames):
    """(n_frames,) bool: which log-mel frames of `wave` are speech."""
    x = np.asarray(wave, dtype=np.float64)
    n = len(x) // fe.SPEECH_FRAME
    energy = (x[: n * fe.SPEECH_FRAME].reshape(n, fe.SPEECH_FRAME) ** 2).mean(axis=1)
    per = fe.HOP // fe.SPEECH_FRAME
    mask = np.zeros(n_frames, dtype=bool)
    for t in range(n_frames):
        e = energy[t * per:(t + 1) * per]
        mask[t] = len(e) == per and 10 * np.log10(e.mean() + 1e-20) >= VOICE_DBFS
    return mask


class SpeechSum:
    """Sum and count of speech frames: means combine across clips without keeping frames."""

    def __init__(self):
        self.total = np.zeros(fe.N_MELS)
        self.count = 0

    def add_clip(self, logmel, wave):
        mask = speech_mask(wave, len(logmel))
        self.total += logmel[mask].sum(axis=0)
        self.count += int(mask.sum())
        return self

    def mean(self, prior=None, prior_frames=0.0):
        """The mean, pulled toward `prior` as if it had been seen for `prior_frames` frames."""
        if prior is None:
            return self.total / max(self.count, 1)
        return (prior_frames * prior + self.total) / (prior_frames + self.count)


def clip_logmel(logmel_module, wave):
    with torch.no_grad():
        wave = torch.from_numpy(np.asarray(wave, dtype=np.float32)).to(logmel_module.fb.device)
        return logmel_module.logmel(wave[None])[0].double().cpu().numpy()

"""Speaker and channel augmentation: new voices and new rooms from a few acted corpora.

Measured in ../shared/research/robustness.md: these add 5-16 points over an unseen corpus's own
classes at little cost on RAVDESS. Waveform parts (reverb, coloured noise) act on the crops in torch,
on whatever device the batch lives (the GPU when training there, where numpy would starve it); the
spectral parts (EQ, VTLP) are handed to frontend.LogMel as a power-spectrum gain and a warped mel bank.
Parameters come from the numpy generator and sample noise from a torch generator seeded by it, so a
run resumed from its checkpoint (which holds the numpy state) draws the same batches.
"""
import numpy as np
import torch

import frontend as fe

VTLP_FACTORS = np.linspace(0.88, 1.12, 9)
BINS = fe.N_FFT // 2 + 1
FREQS = np.arange(BINS) * fe.SAMPLE_RATE / fe.N_FFT
LONGEST_RT60 = 0.9


def vtlp_banks():
    """(9, bins, mels) warped mel banks, the factor-1.0 one in the middle."""
    return torch.tensor(np.stack([fe.mel_filterbank(a).T for a in VTLP_FACTORS]), dtype=torch.float32)


def generator(rng, device):
    """A torch generator on `device` for one batch's noise, seeded from the numpy generator."""
    return torch.Generator(device=device).manual_seed(int(rng.integers(2 ** 63 - 1)))


def _uniform(rng, lo, hi, n, like):
    return torch.from_numpy(rng.uniform(lo, hi, n)).to(like)


def reverb(waves, rng, gen):
    """(k, samples) -> the same in synthetic rooms: Gaussian noise under an exponential decay (RT60
    0.15-0.9 s) after a direct path 0-12 dB stronger than the tail, convolved, level restored."""
    k, n = waves.shape
    rt60 = _uniform(rng, 0.15, LONGEST_RT60, k, waves)[:, None]
    t = torch.arange(int(LONGEST_RT60 * fe.SAMPLE_RATE), device=waves.device) / fe.SAMPLE_RATE
    tail = torch.randn(k, len(t), generator=gen, device=waves.device) * torch.exp(-6.91 * t / rt60) * (t < rt60)
    tail *= 10 ** (-_uniform(rng, 0, 12, k, waves)[:, None] / 20) / tail.norm(dim=1, keepdim=True)
    tail[:, 0] += 1.0
    size = 1 << (n + len(t) - 1).bit_length()  # linear, not circular, convolution
    wet = torch.fft.irfft(torch.fft.rfft(waves, size) * torch.fft.rfft(tail, size), size)[:, :n]
    gain = ((waves ** 2).mean(dim=1, keepdim=True) / (wet ** 2).mean(dim=1, keepdim=True).clamp_min(1e-20)).sqrt()
    return wet * gain


def coloured_noise(beta, n, gen):
    """(k,) exponents -> (k, n) noise with power falling as 1/f^beta (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = torch.fft.rfft(torch.randn(len(beta), n, generator=gen, device=beta.device))
    f = torch.fft.rfftfreq(n, 1 / fe.SAMPLE_RATE, device=beta.device).clamp_min(20.0)
    noise = torch.fft.irfft(spectrum * f ** (-beta[:, None] / 2), n)
    return noise / (noise ** 2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-20)


def equaliser(rng):
    """(bins,) power gain of a random channel: a tilt of +-6 dB across 0-8 kHz, a low-pass edge at
    3.4-8 kHz and a high-pass edge at 0-300 Hz, 40 dB per kHz / per 100 Hz beyond the edges
    (telephone, laptop and far-field microphones)."""
    db = rng.uniform(-6, 6) * (FREQS / FREQS[-1] - 0.5)
    low_pass = rng.uniform(3400, 8000)
    high_pass = rng.uniform(0, 300)
    db -= 40 * np.maximum(FREQS - low_pass, 0) / 1000
    db -= 40 * np.maximum(high_pass - FREQS, 0) / 100
    return 10 ** (db / 10)


def apply(waves, rng, gen, reverb_p=0.4, noise_p=0.4, eq_p=0.5):
    """Augment a (B, samples) float32 batch in place; returns the (B, bins) EQ gains for LogMel."""
    b, n = waves.shape
    rooms = torch.from_numpy(np.nonzero(rng.random(b) < reverb_p)[0]).to(waves.device)
    if len(rooms):
        waves[rooms] = reverb(waves[rooms], rng, gen)
    noisy = torch.from_numpy(np.nonzero(rng.random(b) < noise_p)[0]).to(waves.device)
    if len(noisy):
        power = (waves[noisy] ** 2).mean(dim=1, keepdim=True)
        snr = _uniform(rng, 5, 30, len(noisy), waves)[:, None]
        beta = torch.from_numpy(rng.integers(0, 3, len(noisy))).to(waves)
        waves[noisy] += coloured_noise(beta, n, gen) * (power / 10 ** (snr / 10)).sqrt()
    eq = np.ones((b, BINS), dtype=np.float32)
    for i in np.nonzero(rng.random(b) < eq_p)[0]:
        eq[i] = equaliser(rng)
    return torch.from_numpy(eq).to(waves.device)

